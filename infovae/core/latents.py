"""A latent distribution's parameters as they cross a backend's boundary (NumPy arrays), typed."""

from typing import NamedTuple

import numpy as np

__all__ = ["CategoricalLatent", "GaussianLatent", "LatentParams"]


class CategoricalLatent(NamedTuple):
    """A discrete latent: ``probs [n, K]``, each row a distribution over the K values."""

    probs: np.ndarray


class GaussianLatent(NamedTuple):
    """A diagonal Gaussian latent: ``loc [n, d]`` and ``scale [n, d]``."""

    loc: np.ndarray
    scale: np.ndarray


LatentParams = CategoricalLatent | GaussianLatent
