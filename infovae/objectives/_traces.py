"""What :class:`InfoVAE_ELBO` reads from a Pyro model/guide trace: the trace's sites as the
backend-neutral :class:`~infovae.core.sites.Site` records that the checks of :mod:`infovae.core.sites`
run on, and the few things about torch distributions that differ from NumPyro's (wrappers, parameters,
enumeration). The NumPyro twin is :mod:`infovae.numpyro.objectives._traces`.
"""

import torch
from pyro import poutine
from pyro.distributions import Bernoulli, Categorical, OneHotCategorical, Unit
from pyro.distributions.torch_distribution import (
    ExpandedDistribution,
    MaskedDistribution,
)
from pyro.infer.util import is_validation_enabled
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import Independent
from torch.nn import functional as F

from infovae.core import sites as sites_module
from infovae.core.sites import Site

__all__ = [
    "class_log_probs",
    "describe",
    "is_discrete",
    "keep_random_state",
    "log_prob",
    "replay_with",
    "sites",
    "trace_guide",
    "unwrap",
    "validation_enabled",
]


def sites(trace):
    """The trace's sample sites (not subsample or deterministic ones), by name."""
    out = {}
    for node in trace.nodes.values():
        if node["type"] != "sample" or site_is_subsample(node) or node["infer"].get("_deterministic", False):
            continue
        plates = [frame for frame in node["cond_indep_stack"] if frame.vectorized]
        size, full = _plate_sizes(plates[-1], node["fn"]) if plates else (None, None)
        out[node["name"]] = Site(
            name=node["name"],
            observed=node["is_observed"],
            plates=tuple(frame.name for frame in plates),
            plate_size=size,
            fn=node["fn"],
            value=node["value"],
            scale=node["scale"],
            mask=node["mask"],
            plate_dim=plates[-1].dim if plates else -1,
            num_data=full,
            nesting=max([-frame.dim for frame in plates], default=0),
            auxiliary=bool(node["infer"].get("is_auxiliary", False)),
            factor=node["is_observed"] and isinstance(unwrap(node["fn"])[0], Unit),
        )
    return out


def _plate_sizes(frame, fn):
    """The (subsample) size and the full size of a plate. A plate opened without a size records -1
    for both, and takes its size from the batch shapes inside it (Pyro's broadcasting)."""
    if frame.size is not None and frame.size > 0:
        return frame.size, frame.full_size if frame.full_size and frame.full_size > 0 else frame.size
    shape = tuple(fn.batch_shape)
    size = shape[frame.dim] if len(shape) >= -frame.dim else 1
    return size, size


def unwrap(fn):
    """The base distribution under Independent / expanded / masked wrappers, and whether a mask was met."""
    return sites_module.unwrap(fn, (Independent, ExpandedDistribution, MaskedDistribution), MaskedDistribution)


def describe(fn):
    """The base distribution's family, for messages."""
    return type(unwrap(fn)[0]).__name__


def validation_enabled() -> bool:
    """Whether Pyro's inference checks are on (``pyro.enable_validation``, on by default): the site
    shape checks of its ELBOs run only then, and so do this objective's that mirror them."""
    return is_validation_enabled()


def log_prob(fn, value):
    return fn.log_prob(value)


def is_discrete(fn):
    return isinstance(unwrap(fn)[0], (Categorical, OneHotCategorical)) and fn.has_enumerate_support


def replay_with(model, guide_trace, values, args, kwargs):
    """Trace the model against the guide's trace, with the latents named in ``values`` set to those
    values instead of the guide's."""
    if values:
        guide_trace = guide_trace.copy()
        for name, value in values.items():
            guide_trace.nodes[name] = {**guide_trace.nodes[name], "value": value}
    return poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)


class _EnumerateLocal(Messenger):
    """Sets every unobserved discrete site inside a vectorised plate to all its values, each on a
    dim of its own left of the plates (``dims_right``: how many dims are right of the first; ``None``:
    none is set), as Pyro's parallel enumeration does, and without a draw. Notes whether a plate
    draws its subsample at random (``random_subsample``)."""

    def __init__(self, dims_right):
        super().__init__()
        self.dims_right = dims_right
        self.random_subsample = False

    def _pyro_sample(self, msg):
        if site_is_subsample(msg):
            # Handlers inside this one have set the indices by now where they are given (subsample=,
            # a condition); a plate keeping every index (subsample_size >= size) draws nothing.
            fn = msg["fn"]
            drawn = msg["value"] is None and fn.subsample_size is not None and fn.subsample_size < fn.size
            self.random_subsample = self.random_subsample or drawn
            return
        if self.dims_right is None or msg["is_observed"] or msg["value"] is not None or not is_discrete(msg["fn"]):
            return
        if not any(frame.vectorized for frame in msg["cond_indep_stack"]):
            return
        msg["value"] = sites_module.enumerated_support(msg["fn"], self.dims_right)
        self.dims_right += 1


def trace_guide(guide, args, kwargs, dims_right=None):
    """The guide's trace, its local discrete latents enumerated left of ``dims_right`` dims (``None``:
    drawn, as the guide draws them), and whether a plate drew its minibatch at random
    (``pyro.plate(name, size, subsample_size=b)``, ``b < size``, without ``subsample=``)."""
    messenger = _EnumerateLocal(dims_right)
    trace = poutine.trace(messenger(guide)).get_trace(*args, **kwargs)
    return trace, messenger.random_subsample


def keep_random_state():
    """A context that leaves torch's random stream as it found it (a pass that is not the step's)."""
    return torch.random.fork_rng(devices=[])


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
