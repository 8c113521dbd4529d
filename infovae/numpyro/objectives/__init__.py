"""Objectives for conditional VAEs in NumPyro: the twin of :mod:`infovae.objectives`."""

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
