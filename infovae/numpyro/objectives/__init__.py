"""Objectives for conditional VAEs in NumPyro: the twin of :mod:`infovae.objectives`.

:class:`InfoVAE_ELBO` loads its module (and NumPyro) when first used: the divergences need JAX alone,
and a run whose programs were stored before checks its marginal's divergence without tracing anything.
"""

from typing import TYPE_CHECKING

from infovae.errors import UnsupportedModelError
from infovae.numpyro.objectives.divergences import (
    DEFAULT_KERNEL_SCALES,
    aggregate_categorical_kl,
    bias_corrected_categorical_kl,
    categorical_kl,
    jensen_shannon,
    kernel_frequencies,
    mmd,
    moment_matched_kl,
    monte_carlo_jensen_shannon,
    random_feature_mmd,
)
from infovae.registry import lazy_exports

if TYPE_CHECKING:
    from infovae.numpyro.objectives.infovae_elbo import InfoVAE_ELBO

__all__ = [
    "DEFAULT_KERNEL_SCALES",
    "InfoVAE_ELBO",
    "UnsupportedModelError",
    "aggregate_categorical_kl",
    "bias_corrected_categorical_kl",
    "categorical_kl",
    "jensen_shannon",
    "kernel_frequencies",
    "mmd",
    "moment_matched_kl",
    "monte_carlo_jensen_shannon",
    "random_feature_mmd",
]

__getattr__ = lazy_exports(__name__, {"InfoVAE_ELBO": "infovae.numpyro.objectives.infovae_elbo"})[0]


def __dir__():
    return sorted({*globals(), *__all__})
