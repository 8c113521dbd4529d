"""The energy distance in JAX, the twin of :mod:`infovae_energy.torch_energy`."""

import jax.numpy as jnp


def _distances(a, b):
    """Euclidean distances ``[n, m]``, with a zero gradient (not NaN) where two points coincide."""
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def energy_distance(x, y):
    r"""The energy distance :math:`2 E|x - y| - E|x - x'| - E|y - y'|` between samples ``x [n, d]`` and
    ``y [m, d]``, the within-sample means over distinct pairs (unbiased)."""
    n, m = x.shape[0], y.shape[0]
    within_x = _distances(x, x).sum() / (n * (n - 1))
    within_y = _distances(y, y).sum() / (m * (m - 1))
    return 2.0 * _distances(x, y).mean() - within_x - within_y
