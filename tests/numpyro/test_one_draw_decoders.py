"""The NumPyro twin of tests/objectives/test_one_draw_decoders.py: a decoder written for one draw,
eagerly and under jit."""

import math

import pytest

from ..objectives.test_one_draw_decoders import check_terms


def one_draw_numpyro_pair(W):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model(x, y):
        B = x.shape[0]
        with numpyro.plate("data", B):
            z = numpyro.sample("z", dist.Normal(jnp.zeros((B, W.shape[0])), 1.0).to_event(1))
            numpyro.sample("y", dist.Normal((z @ W).reshape(B, W.shape[1]), 1.0).to_event(1), obs=y)

    def guide(x, y):
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("z", dist.Normal(y[:, : W.shape[0]] * 0.5, 0.7).to_event(1))

    return model, guide


def test_numpyro_loss_terms_of_a_decoder_written_for_one_draw():
    """(9) The NumPyro twin, eagerly and under jit (few JSD draws: each is a replay to compile)."""
    jax = pytest.importorskip("jax")
    pytest.importorskip("numpyro")

    from infovae.numpyro.objectives import InfoVAE_ELBO

    B = 6
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    W, x, y = jax.random.normal(keys[0], (2, 3)), jax.random.normal(keys[1], (B, 1)), jax.random.normal(keys[2], (B, 3))
    model, guide = one_draw_numpyro_pair(W)
    elbo = InfoVAE_ELBO(marginal="mmd", marginal_weight=1.0, jsd_samples=3)
    assert math.isfinite(float(elbo.loss(keys[3], {}, model, guide, x, y)))
    check_terms(elbo.loss_terms(keys[3], {}, model, guide, x, y), B, 1.0, 1.0, 0.0)
    check_terms(jax.jit(lambda key: elbo.loss_terms(key, {}, model, guide, x, y))(keys[3]), B, 1.0, 1.0, 0.0)
