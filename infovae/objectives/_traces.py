"""What :class:`InfoVAE_ELBO` reads from a Pyro model/guide trace, and the checks that the pair has
the supported shape: one latent site and one observed site inside one data plate.

Every check raises :class:`UnsupportedModelError` naming the offending site and saying what is
supported, so that an unsupported model never yields silently wrong numbers.
"""

import torch
from pyro import poutine
from pyro.distributions import Bernoulli, Categorical, OneHotCategorical
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.poutine.util import site_is_subsample
from torch.distributions import Independent
from torch.nn import functional as F

__all__ = ["UnsupportedModelError"]

SUPPORTED = (
    "InfoVAE_ELBO supports one latent site and one observed site, both inside one data plate, in "
    "model and guide alike; the latent is a Categorical/OneHotCategorical (summed out exactly) or a "
    "reparameterised continuous distribution with one event dim (sampled)"
)


class UnsupportedModelError(ValueError):
    """A model/guide pair that does not have the shape :class:`InfoVAE_ELBO` supports."""


def _is_deterministic(site):
    return site["infer"].get("_deterministic", False)


def _sample_sites(trace):
    return [
        site
        for site in trace.nodes.values()
        if site["type"] == "sample" and not site_is_subsample(site) and not _is_deterministic(site)
    ]


def data_plate(site):
    """The one vectorised plate around ``site``."""
    plates = [frame for frame in site["cond_indep_stack"] if frame.vectorized]
    if len(plates) != 1:
        found = ", ".join(repr(f.name) for f in plates) or "none"
        raise UnsupportedModelError(
            f"site {site['name']!r} must be inside exactly one vectorised data plate (found: {found}). {SUPPORTED}."
        )
    return plates[0]


def check_guide(trace, latent_site):
    """The guide's latent site, after checking it is the guide's only latent site."""
    sites = _sample_sites(trace)
    observed = [s["name"] for s in sites if s["is_observed"]]
    if observed:
        raise UnsupportedModelError(f"the guide observes site(s) {observed}; a guide must not observe data. {SUPPORTED}.")
    names = [s["name"] for s in sites]
    if latent_site not in names:
        raise UnsupportedModelError(
            f"the guide has no sample site named {latent_site!r} (it has {names}); pass latent_site=... "
            "to name the latent"
        )
    others = [n for n in names if n != latent_site]
    if others:
        raise UnsupportedModelError(
            f"the guide samples site(s) {others} besides the latent {latent_site!r}. {SUPPORTED}."
        )
    site = trace.nodes[latent_site]
    data_plate(site)
    fn = site["fn"]
    if not is_discrete(fn) and not (fn.has_rsample and fn.event_dim == 1):
        raise UnsupportedModelError(
            f"latent site {latent_site!r} has distribution {type(unwrap(fn)[0]).__name__} with event_dim "
            f"{fn.event_dim} and has_rsample={fn.has_rsample}. {SUPPORTED}."
        )
    return site


def check_model(trace, latent_site, obs_site, plate):
    """The model's latent and observed sites, after checking there are no others."""
    sites = _sample_sites(trace)
    names = [s["name"] for s in sites]
    for name, what in ((latent_site, "latent_site"), (obs_site, "obs_site")):
        if name not in names:
            raise UnsupportedModelError(f"the model has no sample site named {name!r} (it has {names}); pass {what}=...")
    others = [n for n in names if n not in (latent_site, obs_site)]
    if others:
        raise UnsupportedModelError(
            f"the model has sample site(s) {others} besides {latent_site!r} and {obs_site!r}. {SUPPORTED}."
        )
    latent, obs = trace.nodes[latent_site], trace.nodes[obs_site]
    if latent["is_observed"]:
        raise UnsupportedModelError(f"site {latent_site!r} is observed in the model but is the latent site")
    if not obs["is_observed"]:
        raise UnsupportedModelError(f"site {obs_site!r} is not observed in the model: pass the data as obs=")
    for site in (latent, obs):
        frame = data_plate(site)
        if frame.name != plate.name:
            raise UnsupportedModelError(
                f"site {site['name']!r} is in plate {frame.name!r} but the guide's latent is in plate {plate.name!r}"
            )
    return latent, obs


def unwrap(fn):
    """The base distribution under Independent / expanded / masked wrappers, and whether a mask was met."""
    masked = False
    while isinstance(fn, (Independent, ExpandedDistribution, MaskedDistribution)):
        masked = masked or isinstance(fn, MaskedDistribution)
        fn = fn.base_dist
    return fn, masked


def is_discrete(fn):
    return isinstance(unwrap(fn)[0], (Categorical, OneHotCategorical)) and fn.has_enumerate_support


def enumerated_support(fn, max_plate_nesting):
    """All values of a discrete latent, stacked along a new dim left of the plates: ``[K, 1.., *event]``."""
    support = fn.enumerate_support(expand=False)
    K = support.shape[0]
    return support.reshape((K,) + (1,) * max_plate_nesting + fn.event_shape)


def flat_batch(log_prob, site_name, lead, batch_size):
    """Reshape per-example values ``[*lead, 1.., B]`` to ``[*lead, B]``, checking the plate is the only batch dim."""
    if log_prob.shape[-1:] != (batch_size,) or log_prob.numel() != batch_size * _prod(lead):
        raise UnsupportedModelError(
            f"site {site_name!r} gives log-probabilities of shape {tuple(log_prob.shape)}; the data plate of size "
            f"{batch_size} must be its only batch dim (the rightmost, dim=-1): declare other dims with .to_event()"
        )
    return log_prob.reshape(tuple(lead) + (batch_size,))


def _prod(shape):
    out = 1
    for s in shape:
        out *= s
    return out


def replay_with(model, guide_trace, name, value, args, kwargs):
    """Trace the model against the guide's trace with the latent ``name`` set to ``value``."""
    trace = guide_trace.copy()
    trace.nodes[name] = {**guide_trace.nodes[name], "value": value}
    return poutine.trace(poutine.replay(model, trace=trace)).get_trace(*args, **kwargs)


def factor_log_probs(fn, site_name, lead, batch_size):
    """Class log-probabilities of a categorical/Bernoulli observation, ``[*lead, B, F, C]`` over its F factors.

    Returns ``None`` for a reparameterisable continuous observation (its JSD is a Monte-Carlo estimate).
    """
    base, masked = unwrap(fn)
    if masked:
        raise UnsupportedModelError(f"the JSD term does not support a masked observation site {site_name!r}")
    shape = fn.batch_shape + fn.event_shape
    if isinstance(base, Categorical):
        # torch keeps a categorical's logits normalised: they are the log-probabilities.
        log_probs = torch.broadcast_to(base.logits, shape + base.logits.shape[-1:])
    elif isinstance(base, OneHotCategorical):
        log_probs = torch.broadcast_to(base.logits, shape)
    elif isinstance(base, Bernoulli):
        logits = torch.broadcast_to(base.logits, shape)
        log_probs = torch.stack([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=-1)
    elif fn.has_rsample:
        return None
    else:
        raise UnsupportedModelError(
            f"the JSD term supports Categorical, OneHotCategorical and Bernoulli observations (exact, per factor) "
            f"and reparameterisable continuous ones (Monte Carlo); site {site_name!r} is {type(base).__name__}"
        )
    return log_probs.reshape(tuple(lead) + (batch_size, -1, log_probs.shape[-1]))


def gaussian_params(fn, site_name, batch_size):
    """``loc, scale`` ``[B, d]`` of a diagonal Normal latent (for the moment-matched marginal)."""
    base, _ = unwrap(fn)
    if not isinstance(base, torch.distributions.Normal):
        raise UnsupportedModelError(
            f"marginal='moment' needs a diagonal Normal at site {site_name!r}, got {type(base).__name__}; use marginal='mmd'"
        )
    shape = fn.batch_shape + fn.event_shape
    loc = torch.broadcast_to(base.loc, shape).reshape(batch_size, -1)
    scale = torch.broadcast_to(base.scale, shape).reshape(batch_size, -1)
    return loc, scale
