r"""The InfoVAE objective as a :class:`numpyro.infer.elbo.ELBO`.

The twin of :mod:`infovae.objectives.infovae_elbo`: the same constructor, the same terms and the same
scaling, so that on the same weights and data both give the same numbers. The computation of every term
is written once, in :mod:`infovae.core.objective` (whose docstring has the math); this module reads
NumPyro traces for it. For N examples in a plate of size N (minibatches of B), the loss is

.. math:: \text{loss} = -N\,(\overline{\text{recon}} - \beta\,\overline{\text{KL}} - \gamma D
    + \delta\,\overline{\text{JSD}}),

with the per-example means taken over the minibatch (sums over the plate carry its scale ``N / B``).

What differs is what JAX asks for. ``loss``, ``loss_terms`` and ``differentiable_terms`` take an
``rng_key`` and a ``param_map`` (parameter values keyed by site name) first, as NumPyro's ELBOs do;
everything is traceable by :func:`jax.jit` (every check is on shapes, so it runs once, while
tracing) and ``loss_terms`` returns 0-d arrays rather than floats. Randomness comes from the key:

- a guide draw uses the key as NumPyro's :class:`~numpyro.infer.Trace_ELBO` does (split once into a
  model and a guide key; with ``num_particles > 1`` split into one key per particle first, and the
  particles vectorised with :func:`jax.vmap`), so that with ``beta=1`` and the other weights zero
  both give the same loss from the same key;
- the objective's own draws (prior draws for the MMD, latent draws for the JSD, decoder draws for a
  Monte-Carlo JSD, random features) come from a further split of the model key.

A ``handlers.mask`` or ``handlers.scale`` on a latent site acts on that side's log-probability (the
model's ``log p``, the guide's ``log q``) and one on the observed site on the reconstruction, as
``poutine.mask`` / ``poutine.scale`` do on the Pyro side (and as ``Trace_ELBO`` weighs each site).
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from numpyro import handlers
from numpyro.infer.elbo import ELBO

from infovae.core.objective import ArrayOps, InfoVAEObjective, TracePass
from infovae.numpyro.objectives import _traces, divergences

__all__ = ["InfoVAE_ELBO"]

OPS = ArrayOps(
    log=jnp.log,
    exp=jnp.exp,
    where=jnp.where,
    full=lambda shape, value, like: jnp.full(shape, value, dtype=like.dtype),
    logsumexp=lambda values, axis: logsumexp(values, axis=axis),
    broadcast_to=jnp.broadcast_to,
    stack=jnp.stack,
    divergences=divergences,
)


class _NumPyroPass(TracePass):
    """A pass through guide and model as NumPyro traces hold it, with the params substituted and the
    randomness drawn from one key."""

    def __init__(self, elbo, rng_key, param_map, model, guide, args, kwargs):
        # Trace_ELBO's split, so that one key gives the guide the same draws.
        model_key, guide_key = jax.random.split(rng_key)
        model_key, draws_key = jax.random.split(model_key)
        guide = handlers.seed(handlers.substitute(guide, data=param_map), guide_key)
        model = handlers.seed(handlers.substitute(model, data=param_map), model_key)
        self._trace(elbo, model, guide, args, kwargs)
        if self.exact:
            # The objective's own draws (a Monte-Carlo JSD of a continuous decoder) use one key.
            self._keys = {"decoder": draws_key}
        else:
            self._keys = dict(zip(("marginal", "jsd", "decoder", "features"), jax.random.split(draws_key, 4)))

    def draw(self, fn, sample_shape, stream, index=0):
        key = self._keys[stream]
        return fn.rsample(jax.random.fold_in(key, index) if index else key, sample_shape)

    def random_kwargs(self, stream):
        return {"rng_key": self._keys[stream]}


class InfoVAE_ELBO(InfoVAEObjective, ELBO):
    """InfoVAE objective for a conditional NumPyro model/guide pair (see the module docstring), with the
    arguments of :class:`~infovae.core.objective.InfoVAEObjective`, as its Pyro twin."""

    # Tells NumPyro's SVI that a discrete latent is handled (summed out), so it does not warn.
    can_infer_discrete = True
    _ops = OPS
    _traces = _traces

    def _init_elbo(self, num_particles, max_plate_nesting, **elbo_kwargs):
        self.max_plate_nesting = max_plate_nesting
        ELBO.__init__(self, num_particles=num_particles, **elbo_kwargs)

    # -- the ELBO interface -------------------------------------------------------------------

    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        """The loss (negative objective) as a 0-d array, in the dict NumPyro's SVI expects (no mutable state)."""
        terms = self._terms(rng_key, param_map, model, guide, args, kwargs, every_term=False)
        return {"loss": terms["loss"], "mutable_state": None}

    def differentiable_terms(self, rng_key, param_map, model, guide, *args, **kwargs):
        """The loss and the terms it is made of, as 0-d arrays from one pass (as the Pyro twin's)."""
        return self._terms(rng_key, param_map, model, guide, args, kwargs, every_term=False)

    def loss_terms(self, rng_key, param_map, model, guide, *args, **kwargs):
        """Every term of the objective, as the Pyro twin's :meth:`~infovae.objectives.InfoVAE_ELBO.loss_terms`
        computes them, as 0-d arrays without gradient."""
        terms = self._terms(rng_key, param_map, model, guide, args, kwargs, every_term=True)
        return {name: jax.lax.stop_gradient(value) for name, value in terms.items()}

    # -- the computation ----------------------------------------------------------------------

    def _terms(self, rng_key, param_map, model, guide, args, kwargs, every_term):
        weighted = self.wanted_terms(False)
        n = self.num_particles
        particle_keys = jax.random.split(rng_key, n) if n > 1 else [rng_key]

        def pass_terms(tp):
            terms = self._pass_terms(tp, weighted)
            return self._reported(tp, terms) if every_term else terms

        first = _NumPyroPass(self, particle_keys[0], param_map, model, guide, args, kwargs)
        self._check_kind(first)
        if first.deterministic or n == 1:
            terms = pass_terms(first)
        else:
            # Every particle again, vectorised; under jit the first pass above, which told the
            # latent's kind, is then dead code that XLA drops.
            def particle(key):
                return pass_terms(_NumPyroPass(self, key, param_map, model, guide, args, kwargs))

            each = jax.vmap(particle)(particle_keys) if self.vectorize_particles else jax.lax.map(particle, particle_keys)
            terms = jax.tree.map(lambda values: values.mean(0), each)
        return self._finish(terms, first.num_data)
