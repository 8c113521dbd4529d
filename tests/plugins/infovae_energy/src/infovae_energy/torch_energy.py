"""The energy distance in torch."""

import torch


def _distances(a, b):
    """Euclidean distances ``[n, m]``, with a zero gradient (not NaN) where two points coincide."""
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    positive = squared > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, squared, torch.ones_like(squared))), 0.0)


def energy_distance(x, y):
    r"""The energy distance :math:`2 E|x - y| - E|x - x'| - E|y - y'|` between samples ``x [n, d]`` and
    ``y [m, d]``, the within-sample means over distinct pairs (unbiased)."""
    n, m = x.shape[0], y.shape[0]
    within_x = _distances(x, x).sum() / (n * (n - 1))
    within_y = _distances(y, y).sum() / (m * (m - 1))
    return 2.0 * _distances(x, y).mean() - within_x - within_y
