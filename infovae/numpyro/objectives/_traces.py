"""What the NumPyro :class:`InfoVAE_ELBO` reads from a model/guide trace: the trace's sites as the
backend-neutral :class:`~infovae.core.sites.Site` records that the checks of :mod:`infovae.core.sites`
run on, and the few things about NumPyro distributions that differ from torch's. The twin of
:mod:`infovae.objectives._traces`. Everything here reads shapes and types, so it runs once while
:func:`jax.jit` traces.

One difference in bookkeeping: Pyro keeps a ``poutine.mask`` in the site (``site["mask"]``), NumPyro
keeps a ``handlers.mask`` in the distribution (a ``MaskedDistribution``); :func:`split_mask` takes it
back out, so that masks act on the same terms in both backends.
"""

import jax
import jax.numpy as jnp
from numpyro import handlers
from numpyro.distributions import (
    BernoulliLogits,
    BernoulliProbs,
    CategoricalLogits,
    CategoricalProbs,
    Normal,
)
from numpyro.distributions.distribution import (
    ExpandedDistribution,
    Independent,
    MaskedDistribution,
)

from infovae.core.sites import Site
from infovae.errors import UnsupportedModelError

__all__ = ["describe", "enumerated_support", "factor_log_probs", "gaussian_params", "is_discrete", "log_prob", "replay_with", "sites"]

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
        )
    return out


def full_size(trace, site_name):
    """The full size N of the data plate around ``site_name``: the first argument of the plate's own site."""
    frame = trace[site_name]["cond_indep_stack"][-1]
    return trace[frame.name]["args"][0]


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
    masked = False
    while isinstance(fn, (Independent, ExpandedDistribution, MaskedDistribution)):
        masked = masked or isinstance(fn, MaskedDistribution)
        fn = fn.base_dist
    return fn, masked


def describe(fn):
    """The base distribution's family, as the Pyro twin names it: NumPyro has a class per
    parameterisation (``CategoricalLogits``, ``BernoulliProbs``), torch one per family."""
    return type(unwrap(fn)[0]).__name__.removesuffix("Logits").removesuffix("Probs")


def is_discrete(fn):
    return isinstance(unwrap(fn)[0], CATEGORICAL) and fn.has_enumerate_support


def enumerated_support(fn, max_plate_nesting):
    """All values of a discrete latent, stacked along a new dim left of the plates: ``[K, 1.., *event]``."""
    support = fn.enumerate_support(expand=False)
    K = support.shape[0]
    return support.reshape((K,) + (1,) * max_plate_nesting + fn.event_shape)


def replay_with(model, guide_trace, name, value, args, kwargs):
    """Trace the model against the guide's trace with the latent ``name`` set to ``value``."""
    trace = dict(guide_trace)
    trace[name] = {**guide_trace[name], "value": value}
    return handlers.trace(handlers.replay(model, trace=trace)).get_trace(*args, **kwargs)


def _categorical_log_pmf(fn):
    """Normalised log-probabilities ``[*batch, *event, C]`` of an (unmasked) categorical ``fn``, or
    ``None`` for any other distribution.

    Through :func:`jax.nn.log_softmax`: NumPyro's ``Categorical.log_prob`` normalises with
    ``logsumexp``, whose gradient XLA runs about half again slower on CPU; and the JSD reads the same
    array, which XLA then computes once.
    """
    base, masked = unwrap(fn)
    if masked or not isinstance(base, CATEGORICAL):
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


def factor_log_probs(fn, site_name, lead, batch_size):
    """Class log-probabilities of a categorical/Bernoulli observation, ``[*lead, B, F, C]`` over its F factors.

    Returns ``None`` for a reparameterisable continuous observation (its JSD is a Monte-Carlo estimate).
    """
    base, masked = unwrap(fn)
    if masked:
        raise UnsupportedModelError(f"the JSD term does not support a masked observation site {site_name!r}")
    shape = fn.batch_shape + fn.event_shape
    if isinstance(base, CATEGORICAL):
        log_probs = _categorical_log_pmf(fn)
    elif isinstance(base, BERNOULLI):
        logits = jnp.broadcast_to(base.logits, shape)
        log_probs = jnp.stack([jax.nn.log_sigmoid(-logits), jax.nn.log_sigmoid(logits)], axis=-1)
    elif fn.has_rsample:
        return None
    else:
        raise UnsupportedModelError(
            f"the JSD term supports Categorical and Bernoulli observations (exact, per factor) and "
            f"reparameterisable continuous ones (Monte Carlo); site {site_name!r} is {describe(base)}"
        )
    return log_probs.reshape(tuple(lead) + (batch_size, -1, log_probs.shape[-1]))


def gaussian_params(fn, site_name, batch_size):
    """``loc, scale`` ``[B, d]`` of a diagonal Normal latent (for the moment-matched marginal)."""
    base, _ = unwrap(fn)
    if not isinstance(base, Normal):
        raise UnsupportedModelError(
            f"marginal='moment' needs a diagonal Normal at site {site_name!r}, got {describe(base)}; use marginal='mmd'"
        )
    shape = fn.batch_shape + fn.event_shape
    loc = jnp.broadcast_to(base.loc, shape).reshape(batch_size, -1)
    scale = jnp.broadcast_to(base.scale, shape).reshape(batch_size, -1)
    return loc, scale
