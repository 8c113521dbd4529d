"""InfoVAE_ELBO: exact values in float64 against independent computations, agreement with Pyro's
own ELBOs, Pyro's ELBO contract, gradients, and the errors for unsupported input."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.optim import Adam

from infovae.guides import CVAEGuide
from infovae.models import CVAEConfig, CVAEModel
from infovae.objectives import InfoVAE_ELBO, UnsupportedModelError, mmd

from .pairs import InjectedNoise, linear_gaussian_pair, plate, table_pair

pytestmark = pytest.mark.usefixtures("float64")

N_DATA, BATCH, K, C = 20, 6, 3, 4


def softmax(a, axis=-1):
    e = np.exp(a - a.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def np_entropy(p):
    return -(p * np.log(p)).sum(-1)


@pytest.fixture
def tables():
    gen = torch.Generator().manual_seed(1)
    return dict(
        q_logits=torch.randn(N_DATA, K, generator=gen) * 2,
        prior_logits=torch.randn(K, generator=gen),
        dec_logits=torch.randn(K, C, generator=gen) * 2,
    )


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(2)
    idx = torch.randperm(N_DATA, generator=gen)[:BATCH]
    y = torch.randint(0, C, (BATCH,), generator=gen)
    return idx, y


def hand_terms(tables, idx, y, mixture="prior"):
    """Every term of the objective for the table pair, computed in numpy from the definitions."""
    q = softmax(tables["q_logits"].numpy()[idx.numpy()])  # [B, K]
    p = softmax(tables["prior_logits"].numpy())  # [K]
    P = softmax(tables["dec_logits"].numpy())  # [K, C]
    recon = (q * np.log(P[:, y.numpy()]).T).sum(1)
    kl = (q * np.log(q / p)).sum(1)
    qbar = q.mean(0)
    marginal = (qbar * np.log(qbar / p)).sum()
    weights = {"prior": np.broadcast_to(p, q.shape), "posterior": q, "uniform": np.full(q.shape, 1 / K)}[mixture]
    jsd = np_entropy(weights @ P) - weights @ np_entropy(P)
    mi = (q * np.log(q / qbar)).sum(1).mean()
    return dict(recon=recon.mean(), kl=kl.mean(), marginal=marginal, jsd=jsd.mean(), mi=mi)


# -- exact values -----------------------------------------------------------------------------


@pytest.mark.parametrize("mixture", ["prior", "posterior", "uniform"])
@pytest.mark.parametrize("num_data", [None, N_DATA])
def test_discrete_terms_match_hand_computation(tables, batch, mixture, num_data):
    idx, y = batch
    model, guide = table_pair(**tables)
    beta, gamma, delta = 0.3, 2.5, 0.7
    elbo = InfoVAE_ELBO(beta=beta, marginal="kl", marginal_weight=gamma, jsd_weight=delta, jsd_mixture=mixture)
    terms = elbo.loss_terms(model, guide, idx, y, num_data=num_data)
    expected = hand_terms(tables, idx, y, mixture)
    for name, value in expected.items():
        assert terms[name] == pytest.approx(value, rel=1e-12, abs=1e-14), name
    n = num_data or BATCH
    objective = expected["recon"] - beta * expected["kl"] - gamma * expected["marginal"] + delta * expected["jsd"]
    assert terms["loss"] == pytest.approx(-n * objective, rel=1e-12)
    assert elbo.loss(model, guide, idx, y, num_data=num_data) == pytest.approx(terms["loss"], rel=1e-12)


@pytest.mark.parametrize("likelihood", ["factorised", "bernoulli"])
def test_discrete_jsd_of_a_factorised_event_is_the_sum_over_factors(batch, likelihood):
    idx, _ = batch
    gen = torch.Generator().manual_seed(3)
    T = 5
    if likelihood == "bernoulli":
        dec = torch.randn(K, T, generator=gen)
        y = torch.randint(0, 2, (BATCH, T), generator=gen).double()
        factor_probs = torch.stack([1 - dec.sigmoid(), dec.sigmoid()], -1)  # [K, T, 2]
    else:
        dec = torch.randn(K, T, C, generator=gen)
        y = torch.randint(0, C, (BATCH, T), generator=gen)
        factor_probs = dec.softmax(-1)
    prior = torch.randn(K, generator=gen)
    model, guide = table_pair(torch.randn(N_DATA, K, generator=gen), prior, dec, likelihood)
    terms = InfoVAE_ELBO(jsd_weight=1.0).loss_terms(model, guide, idx, y)
    w = prior.softmax(-1).numpy()
    per_factor = [np_entropy(w @ factor_probs[:, t].numpy()) - w @ np_entropy(factor_probs[:, t].numpy()) for t in range(T)]
    assert terms["jsd"] == pytest.approx(sum(per_factor), rel=1e-12)
    assert terms["jsd"] <= T * math.log(K)


def test_beta_one_equals_traceenum_elbo_on_a_user_pair(tables, batch):
    idx, y = batch
    model, guide = table_pair(**tables)
    for num_data in (None, N_DATA):
        ours = InfoVAE_ELBO(beta=1.0).loss(model, guide, idx, y, num_data=num_data)
        ref = TraceEnum_ELBO(max_plate_nesting=1).loss(model, config_enumerate(guide, "parallel"), idx, y, num_data=num_data)
        assert ours == pytest.approx(ref, rel=1e-12)


def cvae_batch(config, batch_size=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, config.x_dim, generator=gen)
    if config.likelihood == "categorical":
        y = torch.randint(0, config.num_classes, (batch_size, config.y_dim), generator=gen)
    elif config.likelihood == "bernoulli":
        y = torch.randint(0, 2, (batch_size, config.y_dim), generator=gen).double()
    else:
        y = torch.randn(batch_size, config.y_dim, generator=gen)
    return x, y


@pytest.mark.parametrize("likelihood", ["categorical", "bernoulli", "gaussian"])
@pytest.mark.parametrize("prior", ["fixed", "learned"])
@pytest.mark.parametrize("latent", ["discrete", "gaussian"])
def test_beta_one_equals_pyro_elbo_on_the_cvae(likelihood, prior, latent):
    config = CVAEConfig(
        x_dim=3, y_dim=4, num_classes=3, latent=latent, latent_size=5, prior=prior, likelihood=likelihood, hidden=16
    )
    model, guide = CVAEModel(config), CVAEGuide(config)
    x, y = cvae_batch(config)
    if latent == "discrete":
        ref = TraceEnum_ELBO(max_plate_nesting=1).loss(model, config_enumerate(guide, "parallel"), x, y, num_data=30)
        ours = InfoVAE_ELBO().loss(model, guide, x, y, num_data=30)
    else:
        pyro.set_rng_seed(5)
        ref = Trace_ELBO().loss(model, guide, x, y, num_data=30)
        pyro.set_rng_seed(5)
        ours = InfoVAE_ELBO().loss(model, guide, x, y, num_data=30)
    assert ours == pytest.approx(ref, rel=1e-12)


def gaussian_setup(learned_prior=False):
    gen = torch.Generator().manual_seed(4)
    d, D, B = 2, 3, 8
    params = dict(
        weight=torch.randn(d, D, generator=gen),
        enc=torch.randn(D, d, generator=gen) * 0.5,
        log_scale=torch.randn(d, generator=gen) * 0.3 - 0.5,
        learned_prior=torch.randn(2, d, generator=gen) if learned_prior else None,
    )
    x, y = torch.randn(B, 2, generator=gen), torch.randn(B, D, generator=gen)
    eps = torch.randn(B, d, generator=gen)
    return params, x, y, eps


def normal_log_prob(v, loc, scale):
    return (-0.5 * ((v - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)).sum(-1)


@pytest.mark.parametrize("learned_prior", [False, True])
def test_continuous_terms_match_hand_computation(learned_prior):
    params, x, y, eps = gaussian_setup(learned_prior)
    model, guide = linear_gaussian_pair(**params)
    beta, gamma = 0.4, 3.0
    elbo = InfoVAE_ELBO(beta=beta, marginal="moment", marginal_weight=gamma)
    terms = elbo.loss_terms(model, InjectedNoise("z", eps)(guide), x, y, num_data=40)

    W, A = params["weight"].numpy(), params["enc"].numpy()
    s = np.exp(params["log_scale"].numpy())
    loc = y.numpy() @ A
    z = loc + s * eps.numpy()
    prior_loc = np.zeros_like(z) if not learned_prior else x.numpy() @ params["learned_prior"].numpy()
    recon = normal_log_prob(y.numpy(), z @ W, 1.0)
    kl = normal_log_prob(z, loc, s) - normal_log_prob(z, prior_loc, 1.0)
    # Moment-matched KL, from the aggregate moments written out.
    m_q, m_p = loc.mean(0), prior_loc.mean(0)
    S_q = np.diag(s**2) + np.cov(loc.T, bias=True)
    S_p = np.eye(2) + np.cov(prior_loc.T, bias=True)
    S_p_inv = np.linalg.inv(S_p)
    marginal = 0.5 * (
        np.trace(S_p_inv @ S_q) + (m_p - m_q) @ S_p_inv @ (m_p - m_q) - 2 + np.linalg.slogdet(S_p)[1] - np.linalg.slogdet(S_q)[1]
    )
    log_q_cross = np.stack([normal_log_prob(z[i], loc, s) for i in range(len(z))])  # [i, j]
    mi = np.mean(np.diag(log_q_cross) - (np.log(np.exp(log_q_cross).mean(1))))
    assert terms["recon"] == pytest.approx(recon.mean(), rel=1e-12)
    assert terms["kl"] == pytest.approx(kl.mean(), rel=1e-12)
    assert terms["marginal"] == pytest.approx(marginal, rel=1e-10)
    assert terms["mi"] == pytest.approx(mi, rel=1e-10)
    expected = -40 * (recon.mean() - beta * kl.mean() - gamma * marginal + 0.0 * terms["jsd"])
    assert terms["loss"] == pytest.approx(expected, rel=1e-10)


def test_mmd_term_compares_posterior_and_prior_draws():
    """The MMD term is the U-statistic between the guide's draws and one prior draw per example,
    reproduced here from the same random stream."""
    params, x, y, _ = gaussian_setup()
    model, guide = linear_gaussian_pair(**params)
    elbo = InfoVAE_ELBO(beta=0.0, marginal="mmd", marginal_weight=10.0, kernel="rbf")
    pyro.set_rng_seed(11)
    loss = elbo.loss(model, guide, x, y)
    pyro.set_rng_seed(11)
    eps = dist.Normal(0.0, 1.0).rsample((len(x), 2))
    prior_draws = dist.Normal(0.0, 1.0).rsample((len(x), 2))
    z = y @ params["enc"] + params["log_scale"].exp() * eps
    recon = dist.Normal(z @ params["weight"], 1.0).log_prob(y).sum(-1)
    expected = -recon.sum() + 10.0 * len(x) * mmd(z, prior_draws, kernel="rbf")
    assert loss == pytest.approx(expected.item(), rel=1e-12)


def test_beta_scales_exactly_the_kl(tables, batch):
    idx, y = batch
    model, guide = table_pair(**tables)
    kw = dict(marginal="kl", marginal_weight=0.5, jsd_weight=0.2)
    losses = {b: InfoVAE_ELBO(beta=b, **kw).loss(model, guide, idx, y, num_data=N_DATA) for b in (0.0, 1.0, 3.7)}
    assert losses[3.7] - losses[0.0] == pytest.approx(3.7 * (losses[1.0] - losses[0.0]), rel=1e-10)
    kl = InfoVAE_ELBO(beta=1.0, **kw).loss_terms(model, guide, idx, y, num_data=N_DATA)["kl"]
    assert losses[1.0] - losses[0.0] == pytest.approx(N_DATA * kl, rel=1e-10)


@pytest.mark.parametrize("latent", ["discrete", "gaussian"])
@pytest.mark.parametrize("num_data", [None, 50])
def test_loss_over_n_is_the_per_example_objective(latent, num_data):
    config = CVAEConfig(x_dim=3, y_dim=4, num_classes=3, latent=latent, latent_size=4, prior="learned", hidden=16)
    model, guide = CVAEModel(config), CVAEGuide(config)
    x, y = cvae_batch(config, batch_size=10)
    marginal = "kl" if latent == "discrete" else "mmd"
    beta, gamma, delta = 0.5, 7.0, 1.5
    elbo = InfoVAE_ELBO(beta=beta, marginal=marginal, marginal_weight=gamma, jsd_weight=delta)
    t = elbo.loss_terms(model, guide, x, y, num_data=num_data)
    n = num_data or 10
    assert t["loss"] / n == pytest.approx(-(t["recon"] - beta * t["kl"] - gamma * t["marginal"] + delta * t["jsd"]), rel=1e-12)


def test_from_alpha_lambda():
    elbo = InfoVAE_ELBO.from_alpha_lambda(1.0, 100.0, marginal="mmd")
    assert (elbo.beta, elbo.marginal_weight, elbo.marginal) == (0.0, 100.0, "mmd")
    elbo = InfoVAE_ELBO.from_alpha_lambda(0.0, 1.0)
    assert (elbo.beta, elbo.marginal_weight) == (1.0, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        InfoVAE_ELBO.from_alpha_lambda(1.5, 1.0, marginal="kl")
    with pytest.raises(ValueError, match="alpha \\+ lam"):
        InfoVAE_ELBO.from_alpha_lambda(0.2, 0.3)
    with pytest.raises(ValueError, match="lam must be a finite number"):
        InfoVAE_ELBO.from_alpha_lambda(0.2, float("nan"))


# -- the ELBO contract and gradients ----------------------------------------------------------


def all_terms_elbo(latent):
    if latent == "discrete":
        return InfoVAE_ELBO(beta=0.5, marginal="kl", marginal_weight=3.0, jsd_weight=0.5)
    return InfoVAE_ELBO(beta=0.5, marginal="mmd", marginal_weight=3.0, jsd_weight=0.5, jsd_samples=3)


@pytest.mark.parametrize("latent", ["discrete", "gaussian"])
def test_loss_differentiable_loss_and_loss_and_grads_agree(latent):
    config = CVAEConfig(x_dim=3, y_dim=4, num_classes=3, latent=latent, latent_size=4, prior="learned", hidden=16)
    model, guide = CVAEModel(config), CVAEGuide(config)
    x, y = cvae_batch(config)
    elbo = all_terms_elbo(latent)
    values, grads = [], []
    for how in ("loss", "differentiable_loss", "loss_and_grads"):
        pyro.set_rng_seed(3)
        model.zero_grad(), guide.zero_grad()
        if how == "loss":
            values.append(elbo.loss(model, guide, x, y, num_data=40))
        elif how == "differentiable_loss":
            value = elbo.differentiable_loss(model, guide, x, y, num_data=40)
            value.backward()
            values.append(value.item())
            grads.append([p.grad.clone() for p in [*model.parameters(), *guide.parameters()]])
        else:
            values.append(elbo.loss_and_grads(model, guide, x, y, num_data=40))
            grads.append([p.grad.clone() for p in [*model.parameters(), *guide.parameters()]])
    assert values[0] == pytest.approx(values[1], rel=1e-12) and values[1] == pytest.approx(values[2], rel=1e-12)
    for g1, g2 in zip(*grads):
        torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("latent", ["discrete", "gaussian"])
@pytest.mark.parametrize("term", ["recon_kl", "marginal", "jsd"])
def test_gradients_flow_to_encoder_decoder_and_learned_prior(latent, term):
    config = CVAEConfig(x_dim=3, y_dim=4, num_classes=3, latent=latent, latent_size=4, prior="learned", hidden=16)
    model, guide = CVAEModel(config), CVAEGuide(config)
    x, y = cvae_batch(config)
    marginal = "kl" if latent == "discrete" else "mmd"
    weights = {
        "recon_kl": dict(beta=1.0),
        "marginal": dict(beta=0.0, marginal=marginal, marginal_weight=1.0),
        "jsd": dict(beta=0.0, jsd_weight=1.0),
    }[term]
    pyro.set_rng_seed(0)
    loss = InfoVAE_ELBO(**weights).differentiable_loss(model, guide, x, y)
    if term == "recon_kl":
        loss.backward()
        groups = {"encoder": guide.encoder, "decoder": model.decoder_rest, "prior": model.prior_net}
    else:
        # Subtract the reconstruction (same latent draw) so that only the term under test remains.
        pyro.set_rng_seed(0)
        recon = InfoVAE_ELBO(beta=0.0).differentiable_loss(model, guide, x, y)
        (loss - recon).backward()
        groups = {
            "marginal": {"encoder": guide.encoder, "prior": model.prior_net},
            "jsd": {"decoder": model.decoder_rest, "prior": model.prior_net},
        }[term]
    for name, module in groups.items():
        total = sum(p.grad.abs().sum() for p in module.parameters() if p.grad is not None)
        assert total > 0, f"no gradient reaches the {name}"


def test_discrete_gradient_matches_finite_differences(tables, batch):
    idx, y = batch

    def loss(q_logits, prior_logits, dec_logits):
        model, guide = table_pair(q_logits, prior_logits, dec_logits)
        elbo = InfoVAE_ELBO(beta=0.7, marginal="kl", marginal_weight=2.0, jsd_weight=0.9, jsd_mixture="posterior")
        return elbo.differentiable_loss(model, guide, idx, y, num_data=N_DATA)

    inputs = tuple(v.clone().requires_grad_() for v in tables.values())
    assert torch.autograd.gradcheck(loss, inputs)


@pytest.mark.parametrize("marginal", ["moment", "mmd"])
def test_continuous_gradient_matches_finite_differences(marginal):
    params, x, y, eps = gaussian_setup(learned_prior=True)

    def loss(weight, enc, log_scale, learned_prior):
        pyro.set_rng_seed(7)  # the same prior draws at every evaluation
        model, guide = linear_gaussian_pair(weight, enc, log_scale, learned_prior)
        elbo = InfoVAE_ELBO(beta=0.3, marginal=marginal, marginal_weight=2.0, jsd_weight=0.4, jsd_samples=3)
        return elbo.differentiable_loss(model, InjectedNoise("z", eps)(guide), x, y)

    inputs = tuple(v.clone().requires_grad_() for v in params.values())
    assert torch.autograd.gradcheck(loss, inputs)


# -- JSD properties for continuous latents and decoders ---------------------------------------


def test_continuous_latent_jsd_is_zero_when_the_decoder_ignores_z_and_large_when_it_copies_it():
    params, x, y, _ = gaussian_setup()

    def pair(gain):
        def model(x, y):
            with plate(len(x), None):
                z = pyro.sample("z", dist.Normal(torch.zeros(len(x), 2), 1.0).to_event(1))
                logits = gain * z[..., :1] * torch.tensor([-1.0, 1.0])
                pyro.sample("y", dist.Categorical(logits=logits), obs=y)

        def guide(x, y):
            with plate(len(x), None):
                pyro.sample("z", dist.Normal(torch.zeros(len(x), 2), 1.0).to_event(1))

        return model, guide

    y = torch.randint(0, 2, (len(x),))
    elbo = InfoVAE_ELBO(jsd_weight=1.0, jsd_samples=16)
    assert elbo.loss_terms(*pair(0.0), x, y)["jsd"] == pytest.approx(0.0, abs=1e-12)
    # Near-deterministic decoders for z_1 < 0 and z_1 > 0: the JSD is near H(split) ~ log 2.
    pyro.set_rng_seed(0)
    values = [elbo.loss_terms(*pair(200.0), x, y)["jsd"] for _ in range(20)]
    assert 0.55 < np.mean(values) <= math.log(2) + 1e-9


def test_gaussian_decoder_jsd_is_a_monte_carlo_estimate():
    """Two unit Gaussians far apart: JSD -> log 2; the same Gaussian twice: exactly 0."""

    def pair(separation):
        def model(x, y):
            with plate(len(x), None):
                z = pyro.sample("z", dist.Categorical(logits=torch.zeros(2)))
                pyro.sample("y", dist.Normal(separation * (2.0 * z - 1.0), 1.0), obs=y)

        def guide(x, y):
            with plate(len(x), None):
                pyro.sample("z", dist.Categorical(logits=torch.zeros(len(x), 2)))

        return model, guide

    x, y = torch.zeros(200, 1), torch.zeros(200)
    elbo = InfoVAE_ELBO(jsd_weight=1.0)
    assert elbo.loss_terms(*pair(0.0), x, y)["jsd"] == pytest.approx(0.0, abs=1e-15)
    far = elbo.loss_terms(*pair(20.0), x, y)["jsd"]
    assert far == pytest.approx(math.log(2), abs=1e-6)
    # Half a standard deviation apart: the estimate's mean is the true JSD of the two Gaussians.
    estimates = [elbo.loss_terms(*pair(0.5), x, y)["jsd"] for _ in range(10)]
    grid = torch.linspace(-12, 12, 200001)
    p0, p1 = dist.Normal(-0.5, 1.0).log_prob(grid).exp(), dist.Normal(0.5, 1.0).log_prob(grid).exp()
    m = 0.5 * (p0 + p1)
    exact = (0.5 * (p0 * (p0 / m).log() + p1 * (p1 / m).log())).sum().item() * (grid[1] - grid[0]).item()
    assert np.mean(estimates) == pytest.approx(exact, abs=4 * np.std(estimates, ddof=1) / math.sqrt(len(estimates)))


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(beta=-1.0), "beta must be a finite number >= 0"),
        (dict(beta=float("nan")), "beta must be"),
        (dict(beta="1"), "beta must be"),
        (dict(beta=True), "beta must be"),
        (dict(marginal="kl", marginal_weight=-0.1), "marginal_weight must be"),
        (dict(marginal="kl", marginal_weight=float("inf")), "marginal_weight must be"),
        (dict(jsd_weight=-2.0), "jsd_weight must be"),
        (dict(marginal="wasserstein"), "marginal must be one of"),
        (dict(marginal_weight=1.0), "marginal_weight=1.0 needs a marginal divergence"),
        (dict(kernel="gaussian"), "kernel must be one of"),
        (dict(kernel_scales=(0.0, 1.0)), "kernel scales"),
        (dict(bandwidth=-1.0), "bandwidth must be"),
        (dict(jsd_mixture="data"), "jsd_mixture must be one of"),
        (dict(num_particles=0), "num_particles must be an integer >= 1"),
        (dict(max_plate_nesting=0), "max_plate_nesting must be"),
        (dict(jsd_samples=1), "jsd_samples must be an integer >= 2"),
        (dict(latent_site=""), "latent_site must be None, a non-empty string"),
        (dict(latent_site="y", obs_site="y"), "must differ"),
        (dict(latent_site=("z", "z")), "sequence of distinct ones"),
        (dict(marginal_sites=("z",)), "pass marginal=... for them"),
        (dict(marginal_sites={"z": "wasserstein"}), "marginal_sites maps 'z' to 'wasserstein'"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InfoVAE_ELBO(**kwargs)


def test_divergence_that_does_not_fit_the_latent_is_refused(tables, batch):
    idx, y = batch
    with pytest.raises(ValueError, match="marginal='mmd' needs a continuous latent, but site 'z'"):
        InfoVAE_ELBO(marginal="mmd", marginal_weight=1.0).loss(*table_pair(**tables), idx, y)
    params, x, yc, _ = gaussian_setup()
    pair = linear_gaussian_pair(**params)
    with pytest.raises(ValueError, match="marginal='kl' needs a discrete latent, but site 'z'"):
        InfoVAE_ELBO(marginal="kl", marginal_weight=1.0).loss(*pair, x, yc)
    with pytest.raises(ValueError, match="jsd_mixture='uniform' needs a discrete latent"):
        InfoVAE_ELBO(jsd_weight=1.0, jsd_mixture="uniform").loss(*pair, x, yc)


def _model(second_latent=False, observed_z=False, extra_obs=False, in_plate=True):
    def model(x, y):
        ctx = plate(len(x), None) if in_plate else pyro.poutine.messenger.Messenger()
        with ctx:
            z = pyro.sample(
                "z", dist.Categorical(logits=torch.zeros(len(x), 2)), obs=torch.zeros(len(x)).long() if observed_z else None
            )
            if second_latent:
                pyro.sample("w", dist.Normal(0.0, 1.0).expand([len(x)]))
            logits = torch.stack([z.double(), -z.double()], -1).unsqueeze(-2).expand(z.shape + (3, 2))
            pyro.sample("y", dist.Categorical(logits=logits).to_event(1), obs=y)
            if extra_obs:
                pyro.sample("x_obs", dist.Normal(0.0, 1.0).expand([len(x)]), obs=x[:, 0])

    return model


def _guide(second_latent=False, latent=None, in_plate=True, name="z"):
    def guide(x, y):
        ctx = plate(len(x), None) if in_plate else pyro.poutine.messenger.Messenger()
        with ctx:
            pyro.sample(name, latent(len(x)) if latent else dist.Categorical(logits=torch.zeros(len(x), 2)))
            if second_latent:
                pyro.sample("w", dist.Normal(0.0, 1.0).expand([len(x)]))

    return guide


class _NoRsampleNormal(dist.Normal):
    has_rsample = False


@pytest.mark.parametrize(
    "model, guide, match",
    [
        (_model(), _guide(second_latent=True), "latent site 'w' has distribution Normal with event_dim 0"),
        (
            _model(second_latent=True),
            _guide(),
            "the model has sample site\\(s\\) \\['w'\\] besides .*sample \\['w'\\] in the guide\\)",
        ),
        (_model(observed_z=True), _guide(), "site 'z' is observed in the model but the guide samples it as a latent"),
        (_model(), _guide(name="u"), "the guide samples site 'u', which the model does not"),
        (_model(), _guide(in_plate=False), "site 'z' must be inside exactly one vectorised data plate"),
        (
            _model(),
            _guide(latent=lambda n: _NoRsampleNormal(torch.zeros(n, 2), 1.0).to_event(1)),
            "latent site 'z' has distribution _NoRsampleNormal .* has_rsample=False",
        ),
        (
            _model(),
            _guide(latent=lambda n: dist.Poisson(torch.ones(n))),
            "latent site 'z' has distribution Poisson",
        ),
    ],
)
def test_unsupported_model_shapes_name_the_site(model, guide, match):
    x, y = torch.zeros(5, 1), torch.zeros(5, 3).long()
    with pytest.raises(UnsupportedModelError, match=match):
        InfoVAE_ELBO().loss(model, guide, x, y)


def test_batch_dims_beyond_the_data_plate_are_refused():
    params, x, y, _ = gaussian_setup()
    _, guide = linear_gaussian_pair(**params)

    def model(x, y):
        with plate(len(x), None):
            z = pyro.sample("z", dist.Normal(torch.zeros(len(x), 2), 1.0).to_event(1))
            # y's factors left as batch dims (no .to_event) on the left of the plate.
            pyro.sample("y", dist.Normal(z.sum(-1).expand(3, len(x)), 1.0), obs=y.T)

    with pytest.raises(UnsupportedModelError, match="site 'y' gives log-probabilities of shape \\(3, 8\\).*to_event"):
        InfoVAE_ELBO().loss(model, guide, x, y)


def test_unobserved_obs_site_is_refused():
    def model(x, y):
        with plate(len(x), None):
            pyro.sample("z", dist.Categorical(logits=torch.zeros(2)))
            pyro.sample("y", dist.Normal(0.0, 1.0))

    with pytest.raises(UnsupportedModelError, match="site 'y' is not observed in the model"):
        InfoVAE_ELBO(obs_site="y").loss(model, _guide(), torch.zeros(4, 1), None)
    # Without names, 'y' is an unobserved site the guide does not sample.
    with pytest.raises(UnsupportedModelError, match="sample \\['y'\\] in the guide"):
        InfoVAE_ELBO().loss(model, _guide(), torch.zeros(4, 1), None)


# -- training in each regime ------------------------------------------------------------------

REGIMES = {
    "standard VAE": dict(beta=1.0),
    "beta-VAE + marginal": dict(beta=2.0, marginal_weight=0.5),
    "InfoVAE": dict(beta=0.0, marginal_weight=100.0),
    "InfoVAE + JSD": dict(beta=0.0, marginal_weight=100.0, jsd_weight=1.0),
}


def strategy_like_data(n=256, seed=0):
    """Two hidden strategies that choose opposite actions given the sign of the context."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen)
    s = torch.randint(0, 2, (n,), generator=gen)
    p = torch.sigmoid(4.0 * x[:, :1] * (2.0 * s[:, None] - 1.0)).expand(n, 6)
    y = torch.bernoulli(p, generator=gen).long()
    return x, y


@pytest.mark.slow
@pytest.mark.parametrize("latent", ["discrete", "gaussian"])
@pytest.mark.parametrize("regime", REGIMES)
def test_svi_in_each_regime_lowers_the_loss(latent, regime):
    x, y = strategy_like_data()
    config = CVAEConfig(x_dim=2, y_dim=6, num_classes=2, latent=latent, latent_size=2 if latent == "gaussian" else 4, hidden=32)
    model, guide = CVAEModel(config), CVAEGuide(config)
    weights = dict(REGIMES[regime])
    if "marginal_weight" in weights:
        weights["marginal"] = "kl" if latent == "discrete" else "mmd"
    elbo = InfoVAE_ELBO(**weights)
    svi = SVI(model, guide, Adam({"lr": 1e-2}), elbo)
    evaluate = InfoVAE_ELBO(beta=1.0)
    pyro.set_rng_seed(1)
    before = np.mean([evaluate.loss(model, guide, x, y) for _ in range(5)])
    losses = [svi.step(x[i % 4 * 64 : (i % 4 + 1) * 64], y[i % 4 * 64 : (i % 4 + 1) * 64], num_data=256) for i in range(150)]
    after = np.mean([evaluate.loss(model, guide, x, y) for _ in range(5)])
    assert np.isfinite(losses).all()
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    assert after < before
