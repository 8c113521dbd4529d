"""Handlers on a user's pair (``poutine.scale`` / ``poutine.mask``) and what ``loss_terms`` reports,
each against Pyro's own ELBOs or a hand computation, in float64."""

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
pyro = pytest.importorskip("pyro")
dist = pytest.importorskip("pyro.distributions")
from pyro import poutine  # noqa: E402
from pyro.infer import Trace_ELBO, TraceEnum_ELBO  # noqa: E402

from infovae.errors import UnsupportedModelError  # noqa: E402
from infovae.objectives import InfoVAE_ELBO  # noqa: E402

F64 = torch.float64


def discrete_pair(N=50, K=3, C=4):
    torch.manual_seed(0)
    y = torch.randint(0, C, (N,))
    Wd = torch.randn(K, C, dtype=F64) * 2
    Q = torch.randn(N, K, dtype=F64)

    def model(y):
        with pyro.plate("data", N):
            z = pyro.sample("z", dist.Categorical(logits=torch.zeros(N, K, dtype=F64)))
            pyro.sample("y", dist.Categorical(logits=Wd[z]), obs=y)

    def guide(y):
        with pyro.plate("data", N):
            pyro.sample("z", dist.Categorical(logits=Q), infer={"enumerate": "parallel"})

    return model, guide, y, Wd, Q


def entropy(p):
    return -(p * p.log()).sum(-1)


def test_a_scale_on_the_whole_pair_scales_every_term():
    """poutine.scale(model, 1/N), poutine.scale(guide, 1/N): the loss is the plain one (by hand) over N,
    marginal and JSD terms included, and every reported term is scaled alike (the identity holds)."""
    N, K = 50, 3
    model, guide, y, Wd, Q = discrete_pair(N, K)
    beta, gamma, delta = 0.5, 5.0, 1.0
    q = torch.softmax(Q, -1)  # [N, K]
    log_lik = torch.log_softmax(Wd, -1)[:, y].T  # [N, K]: log p(y_i | z=k)
    recon = (q * log_lik).sum(-1).mean()
    kl = (q * (q.log() - math.log(1 / K))).sum(-1).mean()
    q_bar = q.mean(0)
    marginal = (q_bar * (q_bar.log() - math.log(1 / K))).sum()
    decoders = torch.softmax(Wd, -1)  # the K decoders, the same for every example
    jsd = entropy(decoders.mean(0)) - entropy(decoders).mean()
    plain = -N * (recon - beta * kl - gamma * marginal + delta * jsd)

    scaled_model, scaled_guide = poutine.scale(model, scale=1.0 / N), poutine.scale(guide, scale=1.0 / N)
    elbo = InfoVAE_ELBO(beta=beta, marginal="kl", marginal_weight=gamma, jsd_weight=delta)
    assert elbo.loss(model, guide, y) == pytest.approx(plain.item(), rel=1e-12)
    assert elbo.loss(scaled_model, scaled_guide, y) == pytest.approx(plain.item() / N, rel=1e-12)
    terms, scaled = elbo.loss_terms(model, guide, y), elbo.loss_terms(scaled_model, scaled_guide, y)
    assert terms.keys() == scaled.keys()
    for name, value in terms.items():
        assert scaled[name] == pytest.approx(value / N, rel=1e-12), name
    identity = -(scaled["recon"] - beta * scaled["kl"] - gamma * scaled["marginal"] + delta * scaled["jsd"])
    assert scaled["loss"] / N == pytest.approx(identity, rel=1e-12)
    # At beta=1 and no other term: TraceEnum_ELBO's scaled loss.
    expected = TraceEnum_ELBO(max_plate_nesting=1).loss(scaled_model, scaled_guide, y)
    assert InfoVAE_ELBO().loss(scaled_model, scaled_guide, y) == pytest.approx(expected, rel=1e-12)


def test_batch_terms_refuse_sites_of_different_scales():
    """A scale on the latent only: the marginal term has no one scale to take; a weighted one is refused
    with a message naming the sites' scales, and loss_terms leaves it out with a warning."""
    y = discrete_pair()[2]

    def guide_annealed(y):
        with pyro.plate("data", len(y)), poutine.scale(scale=0.3):
            logits = torch.arange(3 * len(y), dtype=F64).reshape(len(y), 3).sin()
            pyro.sample("z", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})

    def model_annealed(y):
        with pyro.plate("data", len(y)):
            with poutine.scale(scale=0.3):
                z = pyro.sample("z", dist.Categorical(logits=torch.zeros(len(y), 3, dtype=F64)))
            pyro.sample("y", dist.Categorical(logits=torch.zeros(len(y), 4, dtype=F64) + z[..., None]), obs=y)

    with pytest.raises(UnsupportedModelError, match=r"'marginal' term .*scales differ.*model site 'z': 0.3"):
        InfoVAE_ELBO(marginal="kl", marginal_weight=1.0).loss(model_annealed, guide_annealed, y)
    with pytest.warns(UserWarning, match="leaves out the term") as caught:
        terms = InfoVAE_ELBO().loss_terms(model_annealed, guide_annealed, y)
    assert {"marginal", "mi", "jsd"}.isdisjoint(terms)
    left_out = {str(w.message).split("'")[1] for w in caught if "leaves out the term" in str(w.message)}
    assert left_out == {"marginal", "mi", "jsd"}  # each named in its own warning
    expected = TraceEnum_ELBO(max_plate_nesting=1).loss(model_annealed, guide_annealed, y)
    assert terms["loss"] == pytest.approx(expected, rel=1e-12)


def side_context(variant, sides, side, mask):
    if side not in sides:
        return poutine.scale(scale=1.0)
    return poutine.scale(scale=0.3) if variant == "scale" else poutine.mask(mask=mask)


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("variant", ["scale", "mask"])
@pytest.mark.parametrize("sides", [("model", "guide"), ("model",), ("guide",)])
def test_a_handler_on_the_latent_of_one_side_is_trace_elbos(discrete, variant, sides):
    """A scale or mask on the latent site in the model only or the guide only acts on that side's log
    p or log q, as Trace_ELBO / TraceEnum_ELBO weigh each site (beta=1, no other term)."""
    torch.manual_seed(0)
    B, D, C, K = 6, 2, 3, 3
    y = torch.randint(0, C, (B,))
    W, L = torch.randn(D, C, dtype=F64), torch.randn(B, D, dtype=F64)
    Wd, Q = torch.randn(K, C, dtype=F64), torch.randn(B, K, dtype=F64)
    mask = torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)

    def model(y):
        with pyro.plate("data", B):
            with side_context(variant, sides, "model", mask):
                if discrete:
                    z = pyro.sample("z", dist.Categorical(logits=torch.zeros(B, K, dtype=F64)))
                else:
                    z = pyro.sample("z", dist.Normal(torch.zeros(B, D, dtype=F64), 1.0).to_event(1))
            pyro.sample("y", dist.Categorical(logits=Wd[z] if discrete else z @ W), obs=y)

    def guide(y):
        with pyro.plate("data", B), side_context(variant, sides, "guide", mask):
            if discrete:
                pyro.sample("z", dist.Categorical(logits=Q), infer={"enumerate": "parallel"})
            else:
                pyro.sample("z", dist.Normal(L, 0.5).to_event(1))

    reference = TraceEnum_ELBO(max_plate_nesting=1) if discrete else Trace_ELBO()
    pyro.set_rng_seed(0)
    expected = reference.loss(model, guide, y)
    pyro.set_rng_seed(0)
    assert InfoVAE_ELBO().loss(model, guide, y) == pytest.approx(expected, rel=1e-12)


def gaussian_pair(B=6, D=2, C=3):
    torch.manual_seed(0)
    y = torch.randint(0, C, (B,))
    W, L = torch.randn(D, C, dtype=F64), torch.randn(B, D, dtype=F64)

    def model(y):
        with pyro.plate("data", B):
            z = pyro.sample("z", dist.Normal(torch.zeros(B, D, dtype=F64), 1.0).to_event(1))
            pyro.sample("y", dist.Categorical(logits=z @ W), obs=y)

    def guide(y):
        with pyro.plate("data", B):
            pyro.sample("z", dist.Normal(L, 0.5).to_event(1))

    return model, guide, y


@pytest.mark.parametrize("options", [{"marginal": "mmd", "marginal_weight": 10.0}, {"jsd_weight": 1.0}, {}])
def test_loss_terms_loss_is_loss_at_the_same_seed(options):
    """Two particles: loss_terms draws the unweighted terms' randomness after the loss's, so its loss is
    loss()'s (and differentiable_loss's) from the same seed."""
    model, guide, y = gaussian_pair()
    elbo = InfoVAE_ELBO(num_particles=2, **options)
    pyro.set_rng_seed(0)
    expected = elbo.loss(model, guide, y)
    pyro.set_rng_seed(0)
    assert elbo.loss_terms(model, guide, y)["loss"] == pytest.approx(expected, rel=1e-12)
    pyro.set_rng_seed(0)
    assert elbo.differentiable_loss(model, guide, y).item() == pytest.approx(expected, rel=1e-12)


def test_loss_terms_report_the_global_latents_term():
    """A global latent w: loss_terms returns its log q - log p (global_kl), by hand, and the identity
    loss / N == -(recon - beta kl) + global_kl / N holds."""
    torch.manual_seed(0)
    N, D, C = 8, 2, 3
    y = torch.randint(0, C, (N,))
    L = torch.randn(N, D, dtype=F64)

    def model():
        w = pyro.sample("w", dist.Normal(torch.zeros(D, C, dtype=F64), 1.0).to_event(2))
        with pyro.plate("data", N):
            z = pyro.sample("z", dist.Normal(torch.zeros(N, D, dtype=F64), 1.0).to_event(1))
            pyro.sample("y", dist.Categorical(logits=z @ w), obs=y)

    def guide():
        pyro.sample("w", dist.Normal(torch.full((D, C), 0.3, dtype=F64), 0.5).to_event(2))
        with pyro.plate("data", N):
            pyro.sample("z", dist.Normal(L, 0.5).to_event(1))

    pyro.set_rng_seed(0)
    terms = InfoVAE_ELBO(beta=0.5).loss_terms(model, guide)
    pyro.set_rng_seed(0)
    q_w = dist.Normal(torch.full((D, C), 0.3, dtype=F64), 0.5)
    w = q_w.rsample()
    global_kl = q_w.log_prob(w).sum() - dist.Normal(torch.zeros(D, C, dtype=F64), 1.0).log_prob(w).sum()
    assert terms["global_kl"] == pytest.approx(global_kl.item(), rel=1e-12)
    identity = -(terms["recon"] - 0.5 * terms["kl"]) + terms["global_kl"] / N
    assert terms["loss"] / N == pytest.approx(identity, rel=1e-12)


def test_loss_terms_of_a_poisson_observation_leave_out_the_jsd():
    """A Poisson likelihood (no JSD) with jsd_weight=0: loss_terms reports the other terms, by hand,
    and leaves out the JSD with a warning that says why; a weighted JSD is still refused."""
    torch.manual_seed(0)
    B, K = 6, 3
    y = torch.poisson(torch.full((B, 4), 3.0, dtype=F64))
    R = torch.rand(K, 4, dtype=F64) * 5
    Q = torch.randn(B, K, dtype=F64)

    def model(y):
        with pyro.plate("data", B):
            z = pyro.sample("z", dist.Categorical(logits=torch.zeros(B, K, dtype=F64)))
            pyro.sample("y", dist.Poisson(R[z]).to_event(1), obs=y)

    def guide(y):
        with pyro.plate("data", B):
            pyro.sample("z", dist.Categorical(logits=Q))

    elbo = InfoVAE_ELBO(beta=0.5, marginal="kl", marginal_weight=1.0)
    with pytest.warns(UserWarning, match=r"leaves out the term 'jsd'.*Poisson"):
        terms = elbo.loss_terms(model, guide, y)
    q = torch.softmax(Q, -1)
    log_lik = dist.Poisson(R[:, None, :]).log_prob(y).sum(-1).T  # [B, K]
    recon = (q * log_lik).sum(-1).mean()
    kl = (q * (q.log() - math.log(1 / K))).sum(-1).mean()
    q_bar = q.mean(0)
    marginal = (q_bar * (q_bar.log() - math.log(1 / K))).sum()
    mi = (q * (q.log() - q_bar.log())).sum(-1).mean()
    expected = {"recon": recon, "kl": kl, "marginal": marginal, "mi": mi, "loss": -B * (recon - 0.5 * kl - marginal)}
    assert terms.keys() == expected.keys()
    for name, value in expected.items():
        assert terms[name] == pytest.approx(value.item(), rel=1e-12), name
    assert elbo.loss(model, guide, y) == pytest.approx(terms["loss"], rel=1e-12)
    with pytest.raises(UnsupportedModelError, match="Poisson"):
        InfoVAE_ELBO(jsd_weight=1.0).loss(model, guide, y)


def test_loss_terms_of_a_masked_observation_leave_out_the_jsd():
    """A masked Bernoulli observation (no JSD), continuous latent, jsd_weight=0: loss_terms works and
    its loss is loss()'s at the same seed; recon and kl are Trace_ELBO's split."""
    torch.manual_seed(0)
    B, P, D = 6, 5, 3
    x, y = torch.randn(B, P, dtype=F64), torch.bernoulli(torch.full((B, P), 0.5, dtype=F64))
    m = torch.rand(B, P) > 0.4
    W, A = torch.randn(D, P, dtype=F64), torch.randn(P, D, dtype=F64) * 0.3

    def guide(x, y):
        with pyro.plate("data", B):
            pyro.sample("z", dist.Normal(x @ A, 0.7).to_event(1))

    def model(x, y):
        with pyro.plate("data", B):
            z = pyro.sample("z", dist.Normal(torch.zeros(B, D, dtype=F64), 1.0).to_event(1))
            pyro.sample("y", dist.Bernoulli(logits=z @ W).mask(m).to_event(1), obs=y)

    elbo = InfoVAE_ELBO(marginal="moment", marginal_weight=1.0)
    pyro.set_rng_seed(0)
    expected = elbo.loss(model, guide, x, y)
    pyro.set_rng_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        terms = elbo.loss_terms(model, guide, x, y)
    assert any("leaves out the term 'jsd'" in str(w.message) for w in caught)
    assert "jsd" not in terms
    assert terms["loss"] == pytest.approx(expected, rel=1e-12)
    pyro.set_rng_seed(0)
    trace_elbo = Trace_ELBO().loss(model, guide, x, y)
    assert -B * (terms["recon"] - terms["kl"]) == pytest.approx(trace_elbo, rel=1e-12)


@pytest.mark.parametrize("variant", ["scale", "mask"])
@pytest.mark.parametrize("sides", [("model",), ("guide",)])
def test_numpyro_handlers_on_one_side_and_on_the_pair(variant, sides):
    """The NumPyro twin: a scale or mask on the latent of one side is Trace_ELBO's loss; a scale on the
    whole pair scales the loss and every reported term alike (marginal and JSD included)."""
    jax = pytest.importorskip("jax")
    pytest.importorskip("numpyro")
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as ndist
    from numpyro import handlers
    from numpyro.infer import Trace_ELBO as NumPyroTraceELBO

    from infovae.numpyro.objectives import InfoVAE_ELBO as NumPyroInfoVAE

    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        B, D, C = 6, 2, 3
        keys = jax.random.split(jax.random.PRNGKey(0), 4)
        y = jax.random.randint(keys[0], (B,), 0, C)
        W, L = jax.random.normal(keys[1], (D, C)), jax.random.normal(keys[2], (B, D))
        mask = jnp.array([1, 1, 0, 1, 0, 1], dtype=bool)

        def context(side):
            if side not in sides:
                return handlers.scale(scale=1.0)
            return handlers.scale(scale=0.3) if variant == "scale" else handlers.mask(mask=mask)

        def model(y):
            with numpyro.plate("data", B):
                with context("model"):
                    z = numpyro.sample("z", ndist.Normal(jnp.zeros((B, D)), 1.0).to_event(1))
                numpyro.sample("y", ndist.Categorical(logits=z @ W), obs=y)

        def guide(y):
            with numpyro.plate("data", B), context("guide"):
                numpyro.sample("z", ndist.Normal(L, 0.5).to_event(1))

        expected = float(NumPyroTraceELBO().loss(keys[3], {}, model, guide, y))
        assert float(NumPyroInfoVAE().loss(keys[3], {}, model, guide, y)) == pytest.approx(expected, rel=1e-12)

        sides = ()  # the plain pair, then scaled as a whole
        elbo = NumPyroInfoVAE(marginal="mmd", marginal_weight=3.0, jsd_weight=1.0, jsd_samples=3)
        plain = elbo.loss_terms(keys[3], {}, model, guide, y)
        scaled = elbo.loss_terms(keys[3], {}, handlers.scale(model, scale=1 / B), handlers.scale(guide, scale=1 / B), y)
        assert plain.keys() == scaled.keys()
        for name, value in plain.items():
            assert float(scaled[name]) == pytest.approx(float(value) / B, rel=1e-12), name
    finally:
        jax.config.update("jax_enable_x64", old)
