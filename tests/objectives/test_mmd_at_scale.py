"""The MMD of 50,000 draws on random features: finite, in both backends. The JAX one runs in float32
and int32 (JAX's defaults, kept here: tests/numpyro turns 64-bit on), where n(n-1) overflows from
n = 46,341."""

import math

import pytest


def test_jax_mmd_of_50000_draws_with_random_features_is_finite_under_jit():
    """(9) n(n-1) overflows int32 from n = 46,341; the statistic divides by floats."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from infovae.numpyro.objectives import mmd

    n = 50_000
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 2))
    y = jax.random.normal(jax.random.PRNGKey(1), (n, 2)) + 1.0
    value = jax.jit(lambda x, y, key: mmd(x, y, num_features=16, rng_key=key))(x, y, jax.random.PRNGKey(2))
    assert value.shape == () and math.isfinite(float(value)) and float(value) > 0.1  # the samples differ
    same = jax.jit(lambda x, y, key: mmd(x, y, num_features=16, rng_key=key))(x, x[::-1], jax.random.PRNGKey(2))
    assert abs(float(same)) < 0.01
    # The exact statistic would need 10 GB at this size: trace it only, which is where the overflow was.
    for size in (46_341, 65_536):
        shape = jax.ShapeDtypeStruct((size, 2), jnp.float32)
        assert jax.eval_shape(lambda a, b: mmd(a, b), shape, shape).shape == ()


def test_torch_mmd_of_50000_draws_with_random_features_is_finite():
    import torch

    from infovae.objectives import mmd

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(50_000, 2, generator=generator)
    torch.manual_seed(1)
    assert math.isfinite(mmd(x, x + 1.0, num_features=16).item())
