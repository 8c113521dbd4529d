"""The NumPyro CVAE model and guide against the Pyro ones: weight transfer both ways, the same
distributions on the same weights, and the data plate's scaling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from numpyro import handlers

from infovae.numpyro.objectives import InfoVAE_ELBO
from infovae.numpyro.weights import numpyro_to_torch, torch_to_numpyro

from .twins import BATCH, LIKELIHOODS, NUM_DATA, PRIORS, close, make_twins

LATENTS = ("discrete", "gaussian")


def _distribution_params(fn):
    """The arrays that define a distribution of either backend: its probabilities, or loc and scale."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    values = [fn.probs] if hasattr(fn, "probs") else [fn.loc, fn.scale]
    values = [v.detach().numpy() if torch.is_tensor(v) else np.asarray(v) for v in values]
    # torch broadcasts a shared parameter (a learned decoder scale) to the batch, NumPyro keeps its shape.
    return np.broadcast_arrays(*values)


def _initial_params(twins):
    """The params NumPyro creates itself (flax's initialisation) for the twins' model and guide."""
    x, y = twins.jax_data
    params = {}
    for fn in (twins.model, twins.guide):
        trace = handlers.trace(handlers.seed(fn, jax.random.PRNGKey(0))).get_trace(x, y)
        params.update({name: site["value"] for name, site in trace.items() if site["type"] == "param"})
    return params


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("latent", LATENTS)
def test_weights_round_trip_both_ways(latent, prior):
    twins = make_twins(latent, "gaussian", prior)
    fresh = make_twins(latent, "gaussian", prior, seed=1)
    numpyro_to_torch(twins.params, fresh.torch_model, fresh.torch_guide)
    for a, b in ((twins.torch_model, fresh.torch_model), (twins.torch_guide, fresh.torch_guide)):
        for name, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[name]), name
    back = torch_to_numpyro(fresh.torch_model, fresh.torch_guide)
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), back, twins.params)


def test_weights_from_torch_are_a_copy():
    """On a CPU the NumPyro params must not share the torch tensors' memory: an optimiser's in-place
    update of the torch weights leaves them as they were taken."""
    twins = make_twins("gaussian", "gaussian", "learned")
    taken = jax.tree.map(np.array, twins.params)
    with torch.no_grad():
        for module in (twins.torch_model, twins.torch_guide):
            for p in module.parameters():
                p.add_(1.0)
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), v), twins.params, taken)


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("latent", LATENTS)
def test_numpyro_creates_the_tree_that_torch_weights_map_to(latent, prior):
    """Names and shapes of every weight agree, so NumPyro's own initialisation loads into torch too."""
    twins = make_twins(latent, "categorical", prior)
    created = _initial_params(twins)
    shapes = lambda tree: jax.tree.map(jnp.shape, tree)  # noqa: E731
    assert shapes(created) == shapes(twins.params)
    numpyro_to_torch(created, twins.torch_model, twins.torch_guide)
    twins.assert_same_weights(created)


def test_a_missing_weight_is_named():
    twins = make_twins("discrete", "categorical", "learned")
    fixed_prior = make_twins("discrete", "categorical", "fixed")
    with pytest.raises(RuntimeError, match="prior_net.0.weight"):
        numpyro_to_torch(fixed_prior.params, twins.torch_model, twins.torch_guide)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("latent", LATENTS)
def test_prior_decoder_and_posterior_agree(latent, prior, likelihood):
    twins = make_twins(latent, likelihood, prior)
    (tx, ty), (x, y) = twins.torch_data, twins.jax_data
    pairs = [(twins.torch_model.prior(tx), twins.model.prior(twins.params, x))]
    pairs.append((twins.torch_guide.posterior(tx, ty), twins.guide.posterior(twins.params, x, y)))
    if latent == "discrete":
        # Every latent value stacked left of the batch, as InfoVAE_ELBO asks of a decoder.
        z = np.arange(twins.config.latent_size)[:, None]
    else:
        z = np.random.default_rng(1).normal(size=(2, BATCH, twins.config.latent_size))
    torch_decoder = twins.torch_model.decoder(tx, torch.as_tensor(z))
    jax_decoder = twins.model.decoder(twins.params, x, jnp.asarray(z))
    assert tuple(torch_decoder.batch_shape) == jax_decoder.batch_shape == (z.shape[0], BATCH)
    close(torch_decoder.log_prob(ty).detach(), jax_decoder.log_prob(y))
    pairs.append((torch_decoder, jax_decoder))
    for torch_fn, jax_fn in pairs:
        for a, b in zip(_distribution_params(torch_fn), _distribution_params(jax_fn)):
            close(a, b)


def test_the_model_generates_without_targets():
    twins = make_twins("gaussian", "bernoulli", "learned")
    x, _ = twins.jax_data
    trace = handlers.trace(handlers.seed(handlers.substitute(twins.model, data=twins.params), 0)).get_trace(x)
    assert trace["z"]["value"].shape == (BATCH, twins.config.latent_size)
    assert trace["y"]["value"].shape == (BATCH, twins.config.y_dim)
    assert not trace["y"]["is_observed"]


def test_the_data_plate_scales_a_minibatch_and_draws_no_indices():
    twins = make_twins("discrete", "categorical", "fixed")
    x, y = twins.jax_data
    seeded = handlers.seed(handlers.substitute(twins.model, data=twins.params), 0)
    trace = handlers.trace(seeded).get_trace(x, y, num_data=NUM_DATA)
    assert trace["data"]["args"] == (NUM_DATA, BATCH)
    assert trace["z"]["scale"] == trace["y"]["scale"] == pytest.approx(NUM_DATA / BATCH)
    np.testing.assert_array_equal(trace["data"]["value"], np.arange(BATCH))

    # No array of num_data entries in the compiled loss: NumPyro's shuffle of the indices is skipped.
    huge = 10**7
    loss = lambda p: InfoVAE_ELBO().loss(jax.random.PRNGKey(0), p, twins.model, twins.guide, x, y, num_data=huge)  # noqa: E731
    assert not any(huge in var.aval.shape for eqn in jax.make_jaxpr(loss)(twins.params).eqns for var in eqn.outvars)


def test_num_data_smaller_than_the_batch_is_refused_in_both():
    twins = make_twins("discrete", "categorical", "fixed")
    with pytest.raises(ValueError) as torch_error:
        twins.torch_guide(*twins.torch_data, num_data=BATCH - 1)
    with pytest.raises(ValueError) as jax_error:
        handlers.seed(handlers.substitute(twins.guide, data=twins.params), 0)(*twins.jax_data, num_data=BATCH - 1)
    assert str(jax_error.value) == str(torch_error.value)
