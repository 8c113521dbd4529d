"""Checks of the InfoVAE objective's arguments, shared by the Pyro and NumPyro ``InfoVAE_ELBO``
(no framework imports here, so that either backend runs without the other)."""

import math
from numbers import Integral, Real

__all__ = [
    "DEFAULT_KERNEL_SCALES",
    "JSD_MIXTURES",
    "KERNELS",
    "MARGINALS",
    "TERMS",
    "check_count",
    "check_elbo_args",
    "check_kernel",
    "check_weight",
    "weights_from_alpha_lambda",
]

MARGINALS = (None, "kl", "moment", "mmd")
JSD_MIXTURES = ("prior", "posterior", "uniform")
KERNELS = ("imq", "rbf")
DEFAULT_KERNEL_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
# What ``loss_terms`` returns.
TERMS = ("loss", "recon", "kl", "marginal", "jsd", "mi")


def check_weight(name, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_kernel(kernel, scales, bandwidth):
    """The MMD kernel's arguments, checked; returns the scales as a tuple."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    scales = tuple(scales)
    if not scales or not all(isinstance(s, Real) and math.isfinite(s) and s > 0 for s in scales):
        raise ValueError(f"kernel scales must be a non-empty sequence of positive numbers, got {scales!r}")
    number = isinstance(bandwidth, Real) and not isinstance(bandwidth, bool)
    if not (bandwidth is None or bandwidth == "median" or (number and math.isfinite(bandwidth) and bandwidth > 0)):
        raise ValueError(f"bandwidth must be None, 'median' or a positive number, got {bandwidth!r}")
    return scales


def check_elbo_args(
    beta, marginal, marginal_weight, jsd_weight, latent_site, obs_site, kernel, kernel_scales, bandwidth,
    jsd_mixture, num_particles, max_plate_nesting, jsd_samples, mmd_features,
):  # fmt: skip
    """Every constructor argument of ``InfoVAE_ELBO``, checked and normalised, as a dict."""
    args = dict(
        beta=check_weight("beta", beta),
        marginal_weight=check_weight("marginal_weight", marginal_weight),
        jsd_weight=check_weight("jsd_weight", jsd_weight),
    )
    if marginal not in MARGINALS:
        raise ValueError(f"marginal must be one of {MARGINALS}, got {marginal!r}")
    if marginal is None and args["marginal_weight"] > 0:
        raise ValueError(
            f"marginal_weight={marginal_weight} needs a marginal divergence: pass marginal='kl' "
            "(discrete latent), 'moment' or 'mmd' (continuous latent)"
        )
    if jsd_mixture not in JSD_MIXTURES:
        raise ValueError(f"jsd_mixture must be one of {JSD_MIXTURES}, got {jsd_mixture!r}")
    for name, site in (("latent_site", latent_site), ("obs_site", obs_site)):
        if not isinstance(site, str) or not site:
            raise ValueError(f"{name} must be a non-empty string, got {site!r}")
    if latent_site == obs_site:
        raise ValueError(f"latent_site and obs_site must differ, both are {latent_site!r}")
    args.update(
        marginal=marginal,
        kernel=kernel,
        kernel_scales=check_kernel(kernel, kernel_scales, bandwidth),
        bandwidth=bandwidth,
        jsd_mixture=jsd_mixture,
        latent_site=latent_site,
        obs_site=obs_site,
        num_particles=check_count("num_particles", num_particles, 1),
        max_plate_nesting=check_count("max_plate_nesting", max_plate_nesting, 1),
        jsd_samples=check_count("jsd_samples", jsd_samples, 2),
        mmd_features=None if mmd_features is None else check_count("mmd_features", mmd_features, 1),
    )
    return args


def weights_from_alpha_lambda(alpha, lam):
    """Zhao, Song & Ermon's ``(alpha, lambda)`` as ``(beta, marginal_weight) = (1 - alpha, alpha + lambda - 1)``."""
    for name, value in (("alpha", alpha), ("lam", lam)):
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if alpha > 1:
        raise ValueError(f"alpha={alpha} gives beta = 1 - alpha < 0; InfoVAE needs alpha <= 1")
    if alpha + lam < 1:
        raise ValueError(f"alpha={alpha}, lam={lam} give marginal_weight = alpha + lam - 1 < 0; need alpha + lam >= 1")
    return 1.0 - alpha, alpha + lam - 1.0
