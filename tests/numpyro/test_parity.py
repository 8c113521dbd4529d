"""The NumPyro twin against the Pyro side: divergences, every loss term, gradients and optimisation
steps on the same weights and data, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pyro
import pytest
import torch
from numpyro.infer import Trace_ELBO
from numpyro.primitives import Messenger
from pyro import poutine

from infovae import objectives as pt
from infovae.architecture import CVAEConfig
from infovae.guides import CVAEGuide as TorchGuide
from infovae.models import CVAEModel as TorchModel
from infovae.numpyro import objectives as jx
from infovae.numpyro.guides import CVAEGuide
from infovae.numpyro.models import CVAEModel
from infovae.numpyro.weights import numpyro_to_state_dicts, numpyro_to_torch, torch_to_numpyro

RTOL = 1e-8


def close(a, b, rtol=RTOL, atol=1e-11):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# -- divergences ------------------------------------------------------------------------------


def test_divergences_agree():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 3)), rng.normal(1.0, 2.0, size=(7, 3))
    for kernel in ("imq", "rbf"):
        for bandwidth in (None, "median", 0.8):
            close(pt.mmd(torch.as_tensor(x), torch.as_tensor(y), kernel, bandwidth=bandwidth), jx.mmd(jnp.asarray(x), jnp.asarray(y), kernel, bandwidth=bandwidth))
    q, p = rng.dirichlet(np.ones(5), size=4), rng.dirichlet(np.ones(5), size=4)
    close(pt.categorical_kl(torch.as_tensor(q), torch.as_tensor(p)), jx.categorical_kl(jnp.asarray(q), jnp.asarray(p)))
    loc, scale = rng.normal(size=(6, 2)), rng.uniform(0.3, 2, size=(6, 2))
    ploc, pscale = rng.normal(size=(6, 2)), rng.uniform(0.3, 2, size=(6, 2))
    t = [torch.as_tensor(a) for a in (loc, scale, ploc, pscale)]
    j = [jnp.asarray(a) for a in (loc, scale, ploc, pscale)]
    close(pt.moment_matched_kl(*t[:2]), jx.moment_matched_kl(*j[:2]))
    close(pt.moment_matched_kl(*t), jx.moment_matched_kl(*j))
    probs = rng.dirichlet(np.ones(4), size=(3, 5, 2))
    for w in (rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3), size=5).T):
        close(pt.jensen_shannon(torch.as_tensor(probs), torch.as_tensor(w)), jx.jensen_shannon(jnp.asarray(probs), jnp.asarray(w)))
        cross = rng.normal(size=(3, 3, 5))
        close(pt.monte_carlo_jensen_shannon(torch.as_tensor(cross), torch.as_tensor(w)), jx.monte_carlo_jensen_shannon(jnp.asarray(cross), jnp.asarray(w)))


def test_divergence_errors_agree():
    for fn, args, match in (
        (jx.mmd, (jnp.zeros((1, 2)), jnp.zeros((3, 2))), "at least 2 draws"),
        (jx.mmd, (jnp.zeros((3, 2)), jnp.zeros((3, 2)), "laplace"), "kernel must be one of"),
        (jx.jensen_shannon, (jnp.ones((1, 3)) / 3, jnp.ones(1)), "at least 2 distributions"),
        (jx.moment_matched_kl, (jnp.zeros(3), jnp.ones(3)), "loc and scale"),
    ):
        with pytest.raises(ValueError, match=match):
            fn(*args)


# -- the objective on the same weights --------------------------------------------------------


def setup(latent, likelihood, prior, batch=7, seed=0):
    config = CVAEConfig(x_dim=3, y_dim=4, num_classes=3, latent=latent, latent_size=4, prior=prior, likelihood=likelihood, hidden=16)
    pyro.set_rng_seed(seed)
    torch_model, torch_guide = TorchModel(config), TorchGuide(config)
    params = torch_to_numpyro(torch_model, torch_guide)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 3))
    if likelihood == "categorical":
        y = rng.integers(0, 3, (batch, 4))
    elif likelihood == "bernoulli":
        y = rng.integers(0, 2, (batch, 4)).astype(float)
    else:
        y = rng.normal(size=(batch, 4))
    return config, (torch_model, torch_guide), params, (CVAEModel(config), CVAEGuide(config)), x, y


class TorchNoise(pyro.poutine.messenger.Messenger):
    def __init__(self, eps):
        super().__init__()
        self.eps = eps

    def _pyro_sample(self, msg):
        if msg["name"] == "z" and msg["value"] is None:
            base = msg["fn"].base_dist
            msg["value"] = base.loc + base.scale * self.eps


class JaxNoise(Messenger):
    def __init__(self, fn, eps):
        super().__init__(fn)
        self.eps = eps

    def process_message(self, msg):
        if msg["name"] == "z" and msg["type"] == "sample" and msg["value"] is None:
            base = msg["fn"].base_dist
            msg["value"] = base.loc + base.scale * self.eps


@pytest.mark.parametrize("likelihood", ["categorical", "bernoulli", "gaussian"])
@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_discrete_terms_agree_exactly(likelihood, prior):
    config, (tm, tg), params, (jm, jg), x, y = setup("discrete", likelihood, prior)
    # The JSD of a Gaussian decoder is a Monte-Carlo estimate: compared where it is exact.
    kw = dict(beta=0.4, marginal="kl", marginal_weight=3.0, jsd_weight=0.0 if likelihood == "gaussian" else 0.7, jsd_mixture="posterior")
    ours = pt.InfoVAE_ELBO(**kw).loss_terms(tm, tg, torch.as_tensor(x), torch.as_tensor(y), num_data=30)
    theirs = jx.InfoVAE_ELBO(**kw).loss_terms(jax.random.PRNGKey(0), params, jm, jg, jnp.asarray(x), jnp.asarray(y), num_data=30)
    for name, value in ours.items():
        if likelihood == "gaussian" and name == "jsd":
            continue
        close(value, theirs[name])


@pytest.mark.parametrize("marginal", ["moment", None])
def test_continuous_terms_agree_with_injected_noise(marginal):
    config, (tm, tg), params, (jm, jg), x, y = setup("gaussian", "categorical", "learned")
    eps = np.random.default_rng(1).normal(size=(7, 4))
    kw = dict(beta=0.4, marginal=marginal, marginal_weight=3.0 if marginal else 0.0)
    ours = pt.InfoVAE_ELBO(**kw).loss_terms(tm, TorchNoise(torch.as_tensor(eps))(tg), torch.as_tensor(x), torch.as_tensor(y), num_data=30)
    theirs = jx.InfoVAE_ELBO(**kw).loss_terms(
        jax.random.PRNGKey(0), params, jm, JaxNoise(jg, jnp.asarray(eps)), jnp.asarray(x), jnp.asarray(y), num_data=30
    )
    for name in ("loss", "recon", "kl", "marginal", "mi"):
        close(ours[name], theirs[name])


@pytest.mark.parametrize("latent", ["discrete", "gaussian"])
def test_gradients_agree(latent):
    config, (tm, tg), params, (jm, jg), x, y = setup(latent, "categorical", "learned")
    eps = np.random.default_rng(2).normal(size=(7, 4))
    if latent == "discrete":
        kw = dict(beta=0.4, marginal="kl", marginal_weight=3.0, jsd_weight=0.7)
        t_guide, j_guide = tg, jg
    else:
        kw = dict(beta=0.4, marginal="moment", marginal_weight=3.0)
        t_guide, j_guide = TorchNoise(torch.as_tensor(eps))(tg), JaxNoise(jg, jnp.asarray(eps))
    pt.InfoVAE_ELBO(**kw).loss_and_grads(tm, t_guide, torch.as_tensor(x), torch.as_tensor(y), num_data=30)
    elbo = jx.InfoVAE_ELBO(**kw)
    grads = jax.grad(lambda p: elbo.loss(jax.random.PRNGKey(0), p, jm, j_guide, jnp.asarray(x), jnp.asarray(y), num_data=30))(params)
    model_grads, guide_grads = numpyro_to_state_dicts(grads)
    for module, expected in ((tm, model_grads), (tg, guide_grads)):
        for name, p in module.named_parameters():
            close(p.grad, expected[name], rtol=1e-7, atol=1e-10)


def test_adam_steps_stay_together():
    config, (tm, tg), params, (jm, jg), x, y = setup("discrete", "bernoulli", "learned", batch=16)
    kw = dict(beta=0.5, marginal="kl", marginal_weight=2.0, jsd_weight=0.3)
    svi = pyro.infer.SVI(tm, tg, pyro.optim.Adam({"lr": 0.01}), pt.InfoVAE_ELBO(**kw))
    elbo, opt = jx.InfoVAE_ELBO(**kw), optax.adam(0.01)
    state = opt.init(params)
    for _ in range(5):
        svi.step(torch.as_tensor(x), torch.as_tensor(y))
        grads = jax.grad(lambda p: elbo.loss(jax.random.PRNGKey(0), p, jm, jg, jnp.asarray(x), jnp.asarray(y)))(params)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    model_state, guide_state = numpyro_to_state_dicts(params)
    for module, expected in ((tm, model_state), (tg, guide_state)):
        for name, value in module.state_dict().items():
            close(value, expected[name], rtol=1e-6, atol=1e-9)


def test_weights_round_trip():
    config, (tm, tg), params, _, _, _ = setup("gaussian", "gaussian", "learned")
    fresh_model, fresh_guide = TorchModel(config), TorchGuide(config)
    numpyro_to_torch(params, fresh_model, fresh_guide)
    for a, b in ((tm, fresh_model), (tg, fresh_guide)):
        for name, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[name]), name


# -- NumPyro's own ELBOs, jit -----------------------------------------------------------------


def test_beta_one_equals_numpyro_trace_elbo_with_the_same_key():
    config, _, params, (jm, jg), x, y = setup("gaussian", "bernoulli", "learned")
    key = jax.random.PRNGKey(5)
    ours = jx.InfoVAE_ELBO().loss(key, params, jm, jg, jnp.asarray(x), jnp.asarray(y), num_data=30)
    theirs = Trace_ELBO().loss(key, params, jm, jg, jnp.asarray(x), jnp.asarray(y), num_data=30)
    close(ours, theirs, rtol=1e-12)


def test_beta_one_discrete_is_the_exact_negative_elbo():
    """Sum over the latent's values, written from the model's and guide's distributions directly."""
    config, _, params, (jm, jg), x, y = setup("discrete", "categorical", "learned")
    x, y = jnp.asarray(x), jnp.asarray(y)
    q = jg.posterior(params, x, y).probs  # [B, K]
    log_p = jm.prior(params, x).logits - jax.scipy.special.logsumexp(jm.prior(params, x).logits, -1, keepdims=True)
    log_lik = jm.decoder(params, x, jnp.arange(4)[:, None]).log_prob(y).T  # [B, K]
    elbo = (q * (log_lik + log_p - jnp.log(q))).sum()
    close(jx.InfoVAE_ELBO().loss(jax.random.PRNGKey(0), params, jm, jg, x, y), -elbo, rtol=1e-12)


def test_jitted_loss_compiles_once_per_shape():
    config, _, params, (jm, jg), x, y = setup("gaussian", "categorical", "learned", batch=8)
    elbo = jx.InfoVAE_ELBO(beta=0.0, marginal="mmd", marginal_weight=5.0, jsd_weight=0.1)
    traces = []

    @jax.jit
    def step(params, key, x, y):
        traces.append(1)  # runs only while tracing
        loss, grads = jax.value_and_grad(lambda p: elbo.loss(key, p, jm, jg, x, y, num_data=100))(params)
        return loss, jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads)

    rng = np.random.default_rng(0)
    for i in range(4):
        _, params = step(params, jax.random.PRNGKey(i), jnp.asarray(rng.normal(size=(8, 3))), jnp.asarray(rng.integers(0, 3, (8, 4))))
    assert len(traces) == 1
    step(params, jax.random.PRNGKey(9), jnp.asarray(rng.normal(size=(5, 3))), jnp.asarray(rng.integers(0, 3, (5, 4))))
    assert len(traces) == 2


def test_bad_input_names_the_argument_or_site():
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        jx.InfoVAE_ELBO(beta=-1.0)
    with pytest.raises(ValueError, match="marginal_weight=2.0 needs a marginal divergence"):
        jx.InfoVAE_ELBO(marginal_weight=2.0)
    config, _, params, (jm, jg), x, y = setup("gaussian", "categorical", "fixed")
    with pytest.raises(ValueError, match="marginal='kl' needs a discrete latent; site 'z'"):
        jx.InfoVAE_ELBO(marginal="kl", marginal_weight=1.0).loss(jax.random.PRNGKey(0), params, jm, jg, jnp.asarray(x), jnp.asarray(y))
    with pytest.raises(jx.UnsupportedModelError, match="the guide has no sample site named 'w'"):
        jx.InfoVAE_ELBO(latent_site="w").loss(jax.random.PRNGKey(0), params, jm, jg, jnp.asarray(x), jnp.asarray(y))


def test_random_feature_mmd_agrees_on_the_same_frequencies():
    from infovae.numpyro.objectives.divergences import kernel_frequencies
    from infovae.numpyro.objectives.divergences import random_feature_mmd as jax_rff
    from infovae.objectives.divergences import random_feature_mmd as torch_rff

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(9, 3)), rng.normal(size=(8, 3))
    freq = np.array(kernel_frequencies("imq", [1.0, 4.0], 3, 16, jax.random.PRNGKey(0)))
    close(torch_rff(torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(freq)), jax_rff(jnp.asarray(x), jnp.asarray(y), jnp.asarray(freq)))
    with pytest.raises(ValueError, match="needs an rng_key"):
        jx.mmd(jnp.asarray(x), jnp.asarray(y), num_features=4)
    value = jx.mmd(jnp.asarray(x), jnp.asarray(y), num_features=4, rng_key=jax.random.PRNGKey(1))
    assert np.isfinite(float(value))
