"""What the NumPyro :class:`InfoVAE_ELBO` reads from a model/guide trace, and the checks that the pair
has the supported shape: one latent site and one observed site inside one data plate.

The twin of :mod:`infovae.objectives._traces`. Every check raises :class:`UnsupportedModelError`
naming the offending site and saying what is supported, so that an unsupported model never yields
silently wrong numbers. All checks are on shapes and types, so they run once while
:func:`jax.jit` traces.

One difference in bookkeeping: Pyro keeps a ``poutine.mask`` in the site (``site["mask"]``), NumPyro
keeps a ``handlers.mask`` in the distribution (a ``MaskedDistribution``); :func:`split_mask` takes it
back out, so that masks act on the same terms in both backends.
"""

import jax
import jax.numpy as jnp
from numpyro import handlers
from numpyro.distributions import BernoulliLogits, BernoulliProbs, CategoricalLogits, CategoricalProbs, Normal
from numpyro.distributions.distribution import ExpandedDistribution, Independent, MaskedDistribution

__all__ = ["UnsupportedModelError"]

SUPPORTED = (
    "InfoVAE_ELBO supports one latent site and one observed site, both inside one data plate, in "
    "model and guide alike; the latent is a Categorical (summed out exactly) or a reparameterised "
    "continuous distribution with one event dim (sampled)"
)
CATEGORICAL = (CategoricalLogits, CategoricalProbs)
BERNOULLI = (BernoulliLogits, BernoulliProbs)


class UnsupportedModelError(ValueError):
    """A model/guide pair that does not have the shape :class:`InfoVAE_ELBO` supports."""


def _sample_sites(trace):
    # NumPyro records plates, params and deterministic values as sites of their own types.
    return [site for site in trace.values() if site["type"] == "sample"]


def data_plate(site):
    """The one plate around ``site`` (its ``size`` is the subsample size)."""
    plates = site["cond_indep_stack"]
    if len(plates) != 1:
        found = ", ".join(repr(f.name) for f in plates) or "none"
        raise UnsupportedModelError(
            f"site {site['name']!r} must be inside exactly one vectorised data plate (found: {found}). {SUPPORTED}."
        )
    return plates[0]


def plate_full_size(trace, frame):
    """The plate's full size ``N``: the first argument of its own site in the trace."""
    return trace[frame.name]["args"][0]


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
    site = trace[latent_site]
    data_plate(site)
    fn = site["fn"]
    if not is_discrete(fn) and not (fn.has_rsample and fn.event_dim == 1):
        raise UnsupportedModelError(
            f"latent site {latent_site!r} has distribution {distribution_name(fn)} with event_dim "
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
    latent, obs = trace[latent_site], trace[obs_site]
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


def scale_and_mask(values, scale=None, mask=True):
    """``values`` times a site's scale, zero where masked (also where the value is ``inf`` or ``nan``)."""
    if scale is not None:
        values = values * scale
    return jnp.where(mask, values, 0.0)


def unwrap(fn):
    """The base distribution under Independent / expanded / masked wrappers, and whether a mask was met."""
    masked = False
    while isinstance(fn, (Independent, ExpandedDistribution, MaskedDistribution)):
        masked = masked or isinstance(fn, MaskedDistribution)
        fn = fn.base_dist
    return fn, masked


def distribution_name(fn):
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


def flat_batch(log_prob, site_name, lead, batch_size):
    """Reshape per-example values ``[*lead, 1.., B]`` to ``[*lead, B]``, checking the plate is the only batch dim."""
    if log_prob.shape[-1:] != (batch_size,) or log_prob.size != batch_size * _prod(lead):
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
            f"reparameterisable continuous ones (Monte Carlo); site {site_name!r} is {distribution_name(base)}"
        )
    return log_probs.reshape(tuple(lead) + (batch_size, -1, log_probs.shape[-1]))


def gaussian_params(fn, site_name, batch_size):
    """``loc, scale`` ``[B, d]`` of a diagonal Normal latent (for the moment-matched marginal)."""
    base, _ = unwrap(fn)
    if not isinstance(base, Normal):
        raise UnsupportedModelError(
            f"marginal='moment' needs a diagonal Normal at site {site_name!r}, got {distribution_name(base)}; use marginal='mmd'"
        )
    shape = fn.batch_shape + fn.event_shape
    loc = jnp.broadcast_to(base.loc, shape).reshape(batch_size, -1)
    scale = jnp.broadcast_to(base.scale, shape).reshape(batch_size, -1)
    return loc, scale
