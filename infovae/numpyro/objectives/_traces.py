"""What the NumPyro :class:`InfoVAE_ELBO` reads from a model/guide trace: the trace's sites as the
backend-neutral :class:`~infovae.core.sites.Site` records that the checks of :mod:`infovae.core.sites`
run on, and the few things about NumPyro distributions that differ from torch's. The twin of
:mod:`infovae.objectives._traces`. Everything here reads shapes and types, so it runs once while
:func:`jax.jit` traces.

One difference in bookkeeping: Pyro keeps a ``poutine.mask`` in the site (``site["mask"]``), NumPyro
keeps a ``handlers.mask`` in the distribution (a ``MaskedDistribution``); :func:`split_mask` takes it
back out, so that masks act on the same terms in both backends.
"""

import contextlib

import jax
import jax.numpy as jnp
from numpyro import handlers
from numpyro.distributions import (
    BernoulliLogits,
    BernoulliProbs,
    CategoricalLogits,
    CategoricalProbs,
)
from numpyro.distributions import distribution as distribution_module
from numpyro.distributions.distribution import (
    ExpandedDistribution,
    Independent,
    MaskedDistribution,
    Unit,
)
from numpyro.primitives import Messenger

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

CATEGORICAL = (CategoricalLogits, CategoricalProbs)
BERNOULLI = (BernoulliLogits, BernoulliProbs)


def sites(trace):
    """The trace's sample sites, by name, with the masks a handler put on each distribution taken
    out into :attr:`Site.mask` (NumPyro records plates, params and deterministic values as sites of
    their own types)."""
    out = {}
    for node in trace.values():
        if node["type"] != "sample":
            continue
        fn, mask = split_mask(node["fn"])
        plates = node["cond_indep_stack"]
        out[node["name"]] = Site(
            name=node["name"],
            observed=node["is_observed"],
            plates=tuple(frame.name for frame in plates),
            plate_size=plates[-1].size if plates else None,
            fn=fn,
            value=node["value"],
            scale=node["scale"],
            mask=mask,
            plate_dim=plates[-1].dim if plates else -1,
            # The full size N: the first argument of the plate's own site.
            num_data=trace[plates[-1].name]["args"][0] if plates else None,
            nesting=max([-frame.dim for frame in plates], default=0),
            auxiliary=bool(node.get("infer", {}).get("is_auxiliary", False)),
            factor=node["is_observed"] and isinstance(unwrap(fn)[0], Unit),
        )
    return out


def split_mask(fn):
    """A site's distribution without the masks over its batch, and their product (``True`` for none).

    ``handlers.mask`` wraps the distribution in a ``MaskedDistribution``, which the plate may expand;
    both wrappers are taken off and the expansion put back. A mask inside an ``Independent`` was built
    by the user (``fn.mask(...).to_event()``) and stays, as it does in the Pyro twin.
    """
    batch_shape = fn.batch_shape
    mask = True
    while isinstance(fn, (ExpandedDistribution, MaskedDistribution)):
        if isinstance(fn, MaskedDistribution):
            # NumPyro has no public accessor; its own KL code reads this attribute too.
            mask = mask & fn._mask
        fn = fn.base_dist
    return fn.expand(batch_shape), mask


def unwrap(fn):
    """The base distribution under Independent / expanded / masked wrappers, and whether a mask was met."""
    return sites_module.unwrap(fn, (Independent, ExpandedDistribution, MaskedDistribution), MaskedDistribution)


def describe(fn):
    """The base distribution's family, as the Pyro twin names it: NumPyro has a class per
    parameterisation (``CategoricalLogits``, ``BernoulliProbs``), torch one per family."""
    return type(unwrap(fn)[0]).__name__.removesuffix("Logits").removesuffix("Probs")


def validation_enabled() -> bool:
    """Whether NumPyro's validation is on (``numpyro.enable_validation``, on by default), read when the
    objective is traced: the switch of the checks that mirror the site shape checks Pyro's ELBOs make
    under its own validation. NumPyro keeps it in a module attribute and has no public getter."""
    return distribution_module._VALIDATION_ENABLED


def is_discrete(fn):
    return isinstance(unwrap(fn)[0], CATEGORICAL) and fn.has_enumerate_support


def replay_with(model, guide_trace, values, args, kwargs):
    """Trace the model against the guide's trace, with the latents named in ``values`` set to those
    values instead of the guide's."""
    if values:
        guide_trace = {**guide_trace, **{name: {**guide_trace[name], "value": value} for name, value in values.items()}}
    return handlers.trace(handlers.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)


class _EnumerateLocal(Messenger):
    """Sets every unobserved discrete site inside a plate to all its values, each on a dim of its own
    left of the plates (``dims_right``: how many dims are right of the first; ``None``: none is set),
    without a draw. It wraps the seeded guide, so a discrete site still takes its key from the seed as
    a draw would. Notes whether a plate draws its subsample at random (``random_subsample``)."""

    def __init__(self, fn, dims_right):
        self.dims_right = dims_right
        self.random_subsample = False
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "plate":
            # A plate's indices are set from the start where it keeps every index, and by now by a
            # handler inside this one where they are given (handlers.substitute); else they are drawn.
            self.random_subsample = self.random_subsample or msg["value"] is None
            return
        if self.dims_right is None:
            return
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None or not msg["cond_indep_stack"]:
            return
        if is_discrete(msg["fn"]):
            msg["value"] = sites_module.enumerated_support(msg["fn"], self.dims_right)
            self.dims_right += 1


def trace_guide(guide, args, kwargs, dims_right=None):
    """The guide's trace, its local discrete latents enumerated left of ``dims_right`` dims (``None``:
    drawn, as the guide draws them), and whether a plate drew its minibatch at random
    (``numpyro.plate(name, size, subsample_size=b)``, ``b < size``, its indices not substituted)."""
    messenger = _EnumerateLocal(guide, dims_right)
    trace = handlers.trace(messenger).get_trace(*args, **kwargs)
    return trace, messenger.random_subsample


def keep_random_state():
    """A context for a pass that is not the step's: JAX's randomness is in the keys, nothing to keep."""
    return contextlib.nullcontext()


def _categorical_log_pmf(fn):
    """Normalised log-probabilities ``[*batch, *event, C]`` of an (unmasked) categorical ``fn``, or
    ``None`` for any other distribution.

    Through :func:`jax.nn.log_softmax`: NumPyro's ``Categorical.log_prob`` normalises with
    ``logsumexp``, whose gradient XLA runs about half again slower on CPU; and the JSD reads the same
    array, which XLA then computes once.
    """
    base, _ = unwrap(fn)
    if not isinstance(base, CATEGORICAL):
        return None
    log_pmf = jax.nn.log_softmax(base.logits, axis=-1)
    return jnp.broadcast_to(log_pmf, fn.batch_shape + fn.event_shape + log_pmf.shape[-1:])


def log_prob(fn, value):
    """``fn.log_prob(value)``, computed through :func:`_categorical_log_pmf` for a categorical ``fn``."""
    log_pmf = _categorical_log_pmf(fn)
    if log_pmf is None:
        return fn.log_prob(value)
    shape = jnp.broadcast_shapes(jnp.shape(value), log_pmf.shape[:-1])
    log_pmf = jnp.broadcast_to(log_pmf, shape + log_pmf.shape[-1:])
    taken = jnp.take_along_axis(log_pmf, jnp.broadcast_to(value, shape)[..., None], axis=-1)[..., 0]
    # The dims an Independent reinterpreted as the event are summed, as its log_prob does.
    return taken.sum(axis=tuple(range(-fn.event_dim, 0))) if fn.event_dim else taken


def class_log_probs(fn):
    """Normalised class log-probabilities ``[*batch, *event, C]`` of a categorical or Bernoulli ``fn``
    (two classes: 0 and 1), or ``None`` for any other distribution."""
    base, _ = unwrap(fn)
    if isinstance(base, CATEGORICAL):
        return _categorical_log_pmf(fn)
    if isinstance(base, BERNOULLI):
        logits = jnp.broadcast_to(base.logits, fn.batch_shape + fn.event_shape)
        return jnp.stack([jax.nn.log_sigmoid(-logits), jax.nn.log_sigmoid(logits)], axis=-1)
    return None
