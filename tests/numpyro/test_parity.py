"""InfoVAE_ELBO in both backends on the same weights and data, in float64: every loss term, masks,
gradients, and a few Adam steps.

The discrete latent is summed out exactly in both, so its terms agree to rounding. The continuous
latent is sampled: its draw is set from the same ``eps`` in both backends (``TorchNoise`` /
``jax_noise``). Terms that draw more noise inside the objective (the MMD's prior draws, the JSD of a
continuous latent or of a Gaussian decoder) are Monte Carlo and are left out of the comparison.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.optim
import pyro
import pytest
import torch
from numpyro import handlers
from numpyro.infer import SVI
from pyro import poutine

from infovae import objectives as pt
from infovae.numpyro import objectives as jx
from infovae.numpyro.weights import numpyro_to_torch

from .twins import (
    BATCH,
    LIKELIHOODS,
    NUM_DATA,
    PRIORS,
    SIZES,
    TorchNoise,
    assert_loss_is_the_per_example_objective,
    close,
    jax_noise,
    make_twins,
)

KEY = jax.random.PRNGKey(0)
EPS = np.random.default_rng(1).normal(size=(BATCH, SIZES["latent_size"]))


def both_terms(twins, kwargs, eps=None, mask=None, num_data=NUM_DATA):
    """``loss_terms`` of both backends: Pyro's floats and NumPyro's arrays."""
    torch_model, torch_guide, model, guide = twins.torch_model, twins.torch_guide, twins.model, twins.guide
    if eps is not None:
        torch_guide, guide = TorchNoise(torch.as_tensor(eps))(torch_guide), jax_noise(guide, jnp.asarray(eps))
    if mask is not None:
        torch_model, model = poutine.mask(torch_model, mask=torch.as_tensor(mask)), handlers.mask(model, mask=jnp.asarray(mask))
    pyro_terms = pt.InfoVAE_ELBO(**kwargs).loss_terms(torch_model, torch_guide, *twins.torch_data, num_data=num_data)
    numpyro_terms = jx.InfoVAE_ELBO(**kwargs).loss_terms(KEY, twins.params, model, guide, *twins.jax_data, num_data=num_data)
    return pyro_terms, numpyro_terms


def assert_terms_agree(pyro_terms, numpyro_terms, names=("loss", "recon", "kl", "marginal", "jsd", "mi")):
    for name in names:
        close(numpyro_terms[name], pyro_terms[name], err_msg=name)


# -- every term -------------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("prior", PRIORS)
def test_discrete_terms_agree_exactly(prior, likelihood):
    twins = make_twins("discrete", likelihood, prior)
    kwargs = dict(beta=0.4, marginal="kl", marginal_weight=3.0, jsd_weight=0.7)
    pyro_terms, numpyro_terms = both_terms(twins, kwargs)
    # The JSD of a Gaussian decoder, and so the loss, are Monte Carlo: compared where they are exact.
    monte_carlo = ("loss", "jsd") if likelihood == "gaussian" else ()
    assert_terms_agree(pyro_terms, numpyro_terms, [n for n in pyro_terms if n not in monte_carlo])
    assert_loss_is_the_per_example_objective(numpyro_terms, kwargs)


@pytest.mark.parametrize("mixture", ["prior", "posterior", "uniform"])
@pytest.mark.parametrize("num_data", [None, NUM_DATA])
def test_discrete_jsd_mixtures_and_plate_sizes_agree(mixture, num_data):
    twins = make_twins("discrete", "bernoulli", "learned")
    kwargs = dict(beta=0.0, marginal="kl", marginal_weight=50.0, jsd_weight=2.0, jsd_mixture=mixture)
    assert_terms_agree(*both_terms(twins, kwargs, num_data=num_data))


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("prior", PRIORS)
def test_continuous_terms_agree_with_the_same_noise(prior, likelihood):
    twins = make_twins("gaussian", likelihood, prior)
    kwargs = dict(beta=0.4, marginal="moment", marginal_weight=3.0)
    pyro_terms, numpyro_terms = both_terms(twins, kwargs, eps=EPS)
    assert_terms_agree(pyro_terms, numpyro_terms, ("loss", "recon", "kl", "marginal", "mi"))
    assert_loss_is_the_per_example_objective(numpyro_terms, kwargs)


def test_the_natural_marginal_is_reported_when_none_is_chosen():
    pyro_terms, numpyro_terms = both_terms(make_twins("gaussian"), dict(beta=1.0), eps=EPS)
    assert_terms_agree(pyro_terms, numpyro_terms, ("loss", "recon", "kl", "marginal", "mi"))


@pytest.mark.parametrize("latent", ["discrete", "gaussian"])
def test_masks_act_on_the_same_terms(latent):
    """``handlers.mask`` and ``poutine.mask`` on the model leave masked examples out of recon and KL."""
    twins = make_twins(latent, "categorical", "learned")
    mask = np.array([True, False, True, True, False, True, True])
    kwargs = dict(beta=0.5, marginal="kl" if latent == "discrete" else "moment", marginal_weight=2.0)
    eps = None if latent == "discrete" else EPS
    pyro_terms, numpyro_terms = both_terms(twins, kwargs, eps=eps, mask=mask)
    assert_terms_agree(pyro_terms, numpyro_terms, ("loss", "recon", "kl", "marginal", "mi"))
    unmasked, _ = both_terms(twins, kwargs, eps=eps)
    assert numpyro_terms["recon"] != pytest.approx(unmasked["recon"])
    assert numpyro_terms["kl"] != pytest.approx(unmasked["kl"])


# -- gradients and optimisation -----------------------------------------------------------------


@pytest.mark.parametrize("latent", ["discrete", "gaussian"])
def test_gradients_agree(latent):
    twins = make_twins(latent, "categorical" if latent == "discrete" else "gaussian", "learned")
    torch_guide, guide = twins.torch_guide, twins.guide
    if latent == "discrete":
        kwargs = dict(beta=0.4, marginal="kl", marginal_weight=3.0, jsd_weight=0.7)
    else:
        kwargs = dict(beta=0.4, marginal="moment", marginal_weight=3.0)
        torch_guide, guide = TorchNoise(torch.as_tensor(EPS))(torch_guide), jax_noise(guide, jnp.asarray(EPS))
    pt.InfoVAE_ELBO(**kwargs).loss_and_grads(twins.torch_model, torch_guide, *twins.torch_data, num_data=NUM_DATA)
    elbo = jx.InfoVAE_ELBO(**kwargs)
    # Compiled: one program is cheaper to build than JAX's op-by-op backward pass.
    grad = jax.jit(jax.grad(lambda p, x, y: elbo.loss(KEY, p, twins.model, guide, x, y, num_data=NUM_DATA)))
    twins.assert_same_grads(grad(twins.params, *twins.jax_data))


def test_adam_steps_in_svi_stay_together():
    """pyro.optim.Adam in Pyro's SVI and numpyro.optim.Adam in NumPyro's, from the same weights."""
    twins = make_twins("discrete", "bernoulli", "learned")
    kwargs = dict(beta=0.5, marginal="kl", marginal_weight=2.0, jsd_weight=0.3)
    torch_svi = pyro.infer.SVI(twins.torch_model, twins.torch_guide, pyro.optim.Adam({"lr": 0.01}), pt.InfoVAE_ELBO(**kwargs))
    svi = SVI(twins.model, twins.guide, numpyro.optim.Adam(0.01), jx.InfoVAE_ELBO(**kwargs))
    state = svi.init(KEY, *twins.jax_data, num_data=NUM_DATA, init_params=twins.params)
    update = jax.jit(svi.update, static_argnames="num_data")
    for _ in range(5):
        torch_loss = torch_svi.step(*twins.torch_data, num_data=NUM_DATA)
        state, loss = update(state, *twins.jax_data, num_data=NUM_DATA)
        close(loss, torch_loss, rtol=1e-6)
    twins.assert_same_weights(svi.get_params(state), rtol=1e-6, atol=1e-9)
    # And the trained weights carry back into torch.
    numpyro_to_torch(svi.get_params(state), twins.torch_model, twins.torch_guide)
    twins.assert_same_weights(svi.get_params(state), rtol=0, atol=0)
