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

from infovae.core import sites as sites_module
from infovae.core.sites import Site

__all__ = ["class_log_probs", "describe", "is_discrete", "log_prob", "replay_with", "sites", "unwrap"]


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
    return sites_module.unwrap(fn, (Independent, ExpandedDistribution, MaskedDistribution), MaskedDistribution)


def describe(fn):
    """The base distribution's family, for messages."""
    return type(unwrap(fn)[0]).__name__


def log_prob(fn, value):
    return fn.log_prob(value)


def is_discrete(fn):
    return isinstance(unwrap(fn)[0], (Categorical, OneHotCategorical)) and fn.has_enumerate_support


def replay_with(model, guide_trace, name, value, args, kwargs):
    """Trace the model against the guide's trace, with the latent ``name`` set to ``value`` (``None``:
    the guide's own draw)."""
    if value is not None:
        guide_trace = guide_trace.copy()
        guide_trace.nodes[name] = {**guide_trace.nodes[name], "value": value}
    return poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)


def class_log_probs(fn):
    """Normalised class log-probabilities ``[*batch, *event, C]`` of a categorical or Bernoulli ``fn``
    (two classes: 0 and 1), or ``None`` for any other distribution."""
    base, _ = unwrap(fn)
    shape = fn.batch_shape + fn.event_shape
    # torch keeps a categorical's logits normalised: they are the log-probabilities.
    if isinstance(base, Categorical):
        return torch.broadcast_to(base.logits, shape + base.logits.shape[-1:])
    if isinstance(base, OneHotCategorical):
        return torch.broadcast_to(base.logits, shape)
    if isinstance(base, Bernoulli):
        logits = torch.broadcast_to(base.logits, shape)
        return torch.stack([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=-1)
    return None
