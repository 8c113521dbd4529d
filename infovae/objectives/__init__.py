"""Objectives for conditional VAEs in Pyro: :class:`InfoVAE_ELBO` and the divergences it composes."""

from infovae.errors import UnsupportedModelError
from infovae.objectives.divergences import (
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
from infovae.objectives.infovae_elbo import InfoVAE_ELBO

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
