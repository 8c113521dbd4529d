"""Checks of the InfoVAE objective's arguments, shared by the Pyro and NumPyro ``InfoVAE_ELBO`` and by
the run config (no framework imports here, so that either backend runs without the other)."""

import math
import warnings
from numbers import Integral, Real

from infovae.core.marginals import MARGINALS
from infovae.errors import UserInputError

__all__ = [
    "DEFAULT_KERNEL_SCALES",
    "JSD_MIXTURES",
    "KERNELS",
    "TERMS",
    "check_bandwidth",
    "check_block_size",
    "check_count",
    "check_elbo_args",
    "check_kernel",
    "check_latent_kind",
    "check_marginal_sites",
    "check_weight",
    "weights_from_alpha_lambda",
]

JSD_MIXTURES = ("prior", "posterior", "uniform")
KERNELS = ("imq", "rbf")
DEFAULT_KERNEL_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
# What ``loss_terms`` returns.
TERMS = ("loss", "recon", "kl", "marginal", "jsd", "mi")


def check_weight(name, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise UserInputError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise UserInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_bandwidth(bandwidth):
    """The MMD's base width: ``None`` (``2 d``), ``"median"`` or a positive number."""
    number = isinstance(bandwidth, Real) and not isinstance(bandwidth, bool)
    if not (bandwidth is None or bandwidth == "median" or (number and math.isfinite(bandwidth) and bandwidth > 0)):
        raise UserInputError(f"bandwidth must be None, 'median' or a positive number, got {bandwidth!r}")
    return bandwidth


def check_kernel(kernel, scales, bandwidth):
    """The MMD kernel's arguments, checked; returns the scales as a tuple."""
    if kernel not in KERNELS:
        raise UserInputError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    scales = tuple(scales)
    if not scales or not all(isinstance(s, Real) and math.isfinite(s) and s > 0 for s in scales):
        raise UserInputError(f"kernel scales must be a non-empty sequence of positive numbers, got {scales!r}")
    check_bandwidth(bandwidth)
    return scales


def check_elbo_args(
    beta, marginal, marginal_weight, jsd_weight, latent_site, obs_site, kernel, kernel_scales, bandwidth,
    jsd_mixture, num_particles, max_plate_nesting, jsd_samples, mmd_features, marginal_sites=None,
):  # fmt: skip
    """Every constructor argument of ``InfoVAE_ELBO``, checked and normalised, as a dict."""
    args = dict(
        beta=check_weight("beta", beta),
        marginal_weight=check_weight("marginal_weight", marginal_weight),
        jsd_weight=check_weight("jsd_weight", jsd_weight),
    )
    if marginal is not None and marginal not in MARGINALS:
        raise UserInputError(f"marginal must be one of {(None,) + tuple(MARGINALS)}, got {marginal!r}")
    marginal_sites = check_marginal_sites(marginal_sites, marginal)
    if marginal is None and marginal_sites is None and args["marginal_weight"] > 0:
        raise UserInputError(f"marginal_weight={marginal_weight} needs a marginal divergence: {_marginal_choices()}")
    if jsd_mixture not in JSD_MIXTURES:
        raise UserInputError(f"jsd_mixture must be one of {JSD_MIXTURES}, got {jsd_mixture!r}")
    latent_site, obs_site = _site_names("latent_site", latent_site), _site_names("obs_site", obs_site)
    shared = sorted(set(_as_tuple(latent_site)) & set(_as_tuple(obs_site)))
    if shared:
        raise UserInputError(f"latent_site and obs_site must differ, both name {', '.join(map(repr, shared))}")
    args.update(
        marginal=marginal,
        kernel=kernel,
        kernel_scales=check_kernel(kernel, kernel_scales, bandwidth),
        bandwidth=bandwidth,
        jsd_mixture=jsd_mixture,
        latent_site=latent_site,
        obs_site=obs_site,
        num_particles=check_count("num_particles", num_particles, 1),
        max_plate_nesting=None if max_plate_nesting is None else check_count("max_plate_nesting", max_plate_nesting, 1),
        jsd_samples=check_count("jsd_samples", jsd_samples, 2),
        mmd_features=None if mmd_features is None else check_count("mmd_features", mmd_features, 1),
        marginal_sites=marginal_sites,
    )
    # Only once every argument is valid: a value refused below must not first be warned about as ignored.
    _warn_unused_options(marginal, kernel=kernel, kernel_scales=kernel_scales, bandwidth=bandwidth, mmd_features=mmd_features)
    return args


def _as_tuple(names):
    return () if names is None else (names,) if isinstance(names, str) else tuple(names)


def _site_names(argument, names):
    """``None``, a site name or a non-empty sequence of distinct names."""
    if names is None or (isinstance(names, str) and names):
        return names
    if (
        isinstance(names, (list, tuple))
        and names
        and all(isinstance(n, str) and n for n in names)
        and len(set(names)) == len(names)
    ):
        return tuple(names)
    raise UserInputError(f"{argument} must be None, a non-empty string or a sequence of distinct ones, got {names!r}")


def check_block_size(size):
    """``mmd_block_size``: ``None``, ``"auto"`` or an integer >= 2."""
    if size is None or size == "auto":
        return size
    return check_count("mmd_block_size", size, 2)


def check_marginal_sites(marginal_sites, marginal):
    """``marginal_sites`` as ``None`` or a dict ``{site: divergence}``: a sequence of sites takes ``marginal``."""
    if marginal_sites is None:
        return None
    if isinstance(marginal_sites, str) or not isinstance(marginal_sites, (list, tuple, dict)) or not marginal_sites:
        raise UserInputError(
            "marginal_sites must be None, a non-empty mapping {site: divergence} or a sequence of sites, "
            f"got {marginal_sites!r}"
        )
    if not isinstance(marginal_sites, dict):
        if marginal is None:
            raise UserInputError(f"marginal_sites={marginal_sites!r} lists sites: pass marginal=... for them, or a mapping")
        marginal_sites = dict.fromkeys(_site_names("marginal_sites", tuple(marginal_sites)), marginal)
    for site, name in marginal_sites.items():
        if not isinstance(site, str) or not site or name not in MARGINALS:
            raise UserInputError(
                f"marginal_sites maps {site!r} to {name!r}: sites are names, divergences one of {tuple(MARGINALS)}"
            )
    return dict(marginal_sites)


def weights_from_alpha_lambda(alpha, lam):
    """Zhao, Song & Ermon's ``(alpha, lambda)`` as ``(beta, marginal_weight) = (1 - alpha, alpha + lambda - 1)``."""
    for name, value in (("alpha", alpha), ("lam", lam)):
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise UserInputError(f"{name} must be a finite number, got {value!r}")
    if alpha > 1:
        raise UserInputError(f"alpha={alpha} gives beta = 1 - alpha < 0; InfoVAE needs alpha <= 1")
    if alpha + lam < 1:
        raise UserInputError(f"alpha={alpha}, lam={lam} give marginal_weight = alpha + lam - 1 < 0; need alpha + lam >= 1")
    return 1.0 - alpha, alpha + lam - 1.0


# The ELBO's arguments that reach a marginal divergence, as the option each is passed as, and its default.
_MARGINAL_OPTIONS = {
    "kernel": ("kernel", "imq"),
    "kernel_scales": ("scales", DEFAULT_KERNEL_SCALES),
    "bandwidth": ("bandwidth", None),
    "mmd_features": ("num_features", None),
}


def _warn_unused_options(marginal, **given):
    """A warning (not an error, so that one config can sweep divergences that use the kernel and some
    that do not) naming the options set away from their defaults that ``marginal`` does not take."""
    if marginal is None:  # the natural divergence of the latent, which may use them
        return
    declared = MARGINALS[marginal].options
    unused = [
        f"{name}={value!r}"
        for name, value in given.items()
        if _MARGINAL_OPTIONS[name][0] not in declared and _differs(value, _MARGINAL_OPTIONS[name][1])
    ]
    if unused:
        warnings.warn(f"marginal={marginal!r} does not use {', '.join(unused)}; they are ignored", UserWarning, stacklevel=3)


def _differs(value, default):
    try:
        return tuple(value) != default if isinstance(default, tuple) else value != default
    except TypeError:  # not a sequence where scales are expected: check_kernel says so
        return True


def _marginal_choices():
    by_latent = {}
    for m in MARGINALS.values():
        by_latent.setdefault(m.latent, []).append(repr(m.name))
    return "; ".join(f"pass marginal={' or '.join(names)} ({latent} latent)" for latent, names in by_latent.items())


def check_latent_kind(marginal, jsd_mixture, kind, subject):
    """That the objective's ``marginal`` and ``jsd_mixture`` apply to a ``kind`` (``"discrete"`` or
    ``"continuous"``) latent; ``subject`` says what the latent is, in the message (``"model.latent is
    gaussian"``, ``"site 'z' is Normal"``)."""
    if marginal is not None and MARGINALS[marginal].latent != kind:
        fits = [repr(m.name) for m in MARGINALS.values() if m.latent == kind]
        raise UserInputError(
            f"marginal={marginal!r} needs a {MARGINALS[marginal].latent} latent, but {subject}: use {' or '.join(fits)}"
        )
    if kind == "continuous" and jsd_mixture == "uniform":
        raise UserInputError(f"jsd_mixture='uniform' needs a discrete latent, but {subject}: use 'prior' or 'posterior'")
