"""The decoder's options in both backends on the same weights: Gaussian scales and soft Bernoulli targets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from infovae.numpyro.objectives import InfoVAE_ELBO as JaxELBO
from infovae.objectives import InfoVAE_ELBO as TorchELBO

from .twins import NUM_DATA, close, make_twins


@pytest.mark.parametrize("decoder_scale", ["learned", "amortized", 0.5])
def test_gaussian_decoder_scales_agree(decoder_scale):
    twins = make_twins("discrete", "gaussian", "fixed", decoder_scale=decoder_scale)
    (tx, ty), (x, y) = twins.torch_data, twins.jax_data
    z = np.arange(twins.config.latent_size)[:, None]
    torch_fn = twins.torch_model.decoder(tx, torch.as_tensor(z))
    jax_fn = twins.model.decoder(twins.params, x, jnp.asarray(z))
    close(torch_fn.log_prob(ty).detach(), jax_fn.log_prob(y))
    scale = np.broadcast_to(np.asarray(jax_fn.base_dist.scale), jax_fn.base_dist.loc.shape)
    close(torch_fn.base_dist.scale.detach(), scale)
    if decoder_scale == "learned":
        # One scale per output dimension, shared by every example and latent value, starting at one.
        assert np.allclose(scale, scale[:1, :1]) and np.allclose(scale, 1.0)
    elif decoder_scale == 0.5:
        assert np.all(scale == 0.5)
    else:
        assert scale.std() > 0
    # The objective and its gradient, the learned scale's included, agree too.
    elbo_t, elbo_j = TorchELBO(beta=0.5), JaxELBO(beta=0.5)
    loss = elbo_t.differentiable_loss(twins.torch_model, twins.torch_guide, tx, ty, num_data=NUM_DATA)
    loss.backward()
    jax_loss, grads = jax.value_and_grad(
        lambda p: elbo_j.loss(jax.random.PRNGKey(0), p, twins.model, twins.guide, x, y, num_data=NUM_DATA)
    )(twins.params)
    close(loss.detach(), jax_loss)
    twins.assert_same_grads(grads)


def test_soft_bernoulli_targets_are_the_cross_entropy():
    twins = make_twins("discrete", "bernoulli", "fixed")
    (tx, _), (x, _) = twins.torch_data, twins.jax_data
    soft = np.random.default_rng(3).random(twins.y.shape)
    z = np.arange(twins.config.latent_size)[:, None]
    torch_fn = twins.torch_model.decoder(tx, torch.as_tensor(z))
    jax_fn = twins.model.decoder(twins.params, x, jnp.asarray(z))
    p = torch_fn.base_dist.probs.detach().numpy()
    expected = (soft * np.log(p) + (1 - soft) * np.log1p(-p)).sum(-1)
    close(torch_fn.log_prob(torch.as_tensor(soft)).detach(), expected, rtol=1e-7)
    close(jax_fn.log_prob(jnp.asarray(soft)), expected, rtol=1e-7)
