"""What :class:`InfoVAE_ELBO` reads from a Pyro model/guide trace: the trace's sites as the
backend-neutral :class:`~infovae.core.sites.Site` records that the checks of :mod:`infovae.core.sites`
run on, and the few things about torch distributions that differ from NumPyro's (wrappers, parameters,
enumeration). The NumPyro twin is :mod:`infovae.numpyro.objectives._traces`.
"""

import torch
from pyro import poutine
from pyro.distributions import Bernoulli, Categorical, OneHotCategorical
from pyro.distributions.torch_distribution import (
    ExpandedDistribution,
    MaskedDistribution,
)
from pyro.poutine.util import site_is_subsample
from torch.distributions import Independent
from torch.nn import functional as F

from infovae.core.sites import Site
from infovae.errors import UnsupportedModelError

__all__ = ["describe", "enumerated_support", "factor_log_probs", "gaussian_params", "is_discrete", "replay_with", "sites"]


def sites(trace):
    """The trace's sample sites (not subsample or deterministic ones), by name."""
    out = {}
    for node in trace.nodes.values():
        if node["type"] != "sample" or site_is_subsample(node) or node["infer"].get("_deterministic", False):
            continue
        plates = [frame for frame in node["cond_indep_stack"] if frame.vectorized]
        out[node["name"]] = Site(
            name=node["name"],
            observed=node["is_observed"],
            plates=tuple(frame.name for frame in plates),
            plate_size=plates[-1].size if plates else None,
            fn=node["fn"],
            value=node["value"],
            scale=node["scale"],
            mask=node["mask"],
        )
    return out


def full_size(trace, site_name):
    """The full size N of the data plate around ``site_name``."""
    frame = next(f for f in trace.nodes[site_name]["cond_indep_stack"] if f.vectorized)
    return frame.full_size or frame.size


def unwrap(fn):
    """The base distribution under Independent / expanded / masked wrappers, and whether a mask was met."""
    masked = False
    while isinstance(fn, (Independent, ExpandedDistribution, MaskedDistribution)):
        masked = masked or isinstance(fn, MaskedDistribution)
        fn = fn.base_dist
    return fn, masked


def describe(fn):
    return type(unwrap(fn)[0]).__name__


def is_discrete(fn):
    return isinstance(unwrap(fn)[0], (Categorical, OneHotCategorical)) and fn.has_enumerate_support


def enumerated_support(fn, max_plate_nesting):
    """All values of a discrete latent, stacked along a new dim left of the plates: ``[K, 1.., *event]``."""
    support = fn.enumerate_support(expand=False)
    K = support.shape[0]
    return support.reshape((K,) + (1,) * max_plate_nesting + fn.event_shape)


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
