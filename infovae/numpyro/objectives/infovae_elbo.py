r"""The InfoVAE objective as a :class:`numpyro.infer.elbo.ELBO`.

The twin of :mod:`infovae.objectives.infovae_elbo`, whose docstring has the math: the same
constructor, the same terms and the same scaling, so that on the same weights and data both give the
same numbers. For N examples in a plate of size N (minibatches of B), the loss is

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

A ``handlers.mask`` on the model's latent site masks the per-example KL and one on the observed site
the per-example reconstruction, as a ``poutine.mask`` does on the Pyro side.
"""

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from numpyro import handlers
from numpyro.infer.elbo import ELBO

from infovae.numpyro.objectives import _traces
from infovae.numpyro.objectives.divergences import (
    categorical_kl,
    jensen_shannon,
    mmd,
    moment_matched_kl,
    monte_carlo_jensen_shannon,
)
from infovae.objective_args import DEFAULT_KERNEL_SCALES, JSD_MIXTURES, MARGINALS, TERMS, check_elbo_args, weights_from_alpha_lambda

__all__ = ["InfoVAE_ELBO", "JSD_MIXTURES", "MARGINALS"]


class _Pass(NamedTuple):
    """One pass through a guide and the model replayed against it."""

    # The model with the params substituted and its seed set: the JSD of a continuous latent replays it.
    model: Callable
    model_trace: dict
    guide_trace: dict
    # For the objective's own draws.
    rng_key: Any


class InfoVAE_ELBO(ELBO):
    """InfoVAE objective for a conditional NumPyro model/guide pair (see the module docstring).

    :param float beta: weight of the per-example KL (``1 - alpha``).
    :param str marginal: ``None``, ``"kl"`` (discrete latent), ``"moment"`` or ``"mmd"`` (continuous).
    :param float marginal_weight: weight ``gamma`` of the marginal divergence (``alpha + lambda - 1``).
    :param float jsd_weight: weight ``delta`` of the inter-latent Jensen–Shannon reward.
    :param str latent_site: name of the latent sample site.
    :param str obs_site: name of the observed sample site.
    :param str kernel: MMD kernel, ``"imq"`` or ``"rbf"``.
    :param kernel_scales: MMD kernel scales.
    :param bandwidth: ``None`` (base width ``2 d``), ``"median"`` or a positive number.
    :param str jsd_mixture: JSD mixture weights, ``"prior"``, ``"posterior"`` or ``"uniform"``.
    :param int num_particles: latent draws per step (continuous latent; a discrete one is exact).
    :param int max_plate_nesting: plates around the sites; the enumeration dim goes left of them.
    :param int jsd_samples: latent draws compared by the JSD term for a continuous latent.
    :param int mmd_features: random Fourier features per kernel scale for the MMD, or ``None`` for the
        exact quadratic-time statistic.
    """

    # Tells NumPyro's SVI that a discrete latent is handled (summed out), so it does not warn.
    can_infer_discrete = True

    def __init__(
        self,
        beta=1.0,
        marginal=None,
        marginal_weight=0.0,
        jsd_weight=0.0,
        latent_site="z",
        obs_site="y",
        kernel="imq",
        kernel_scales=DEFAULT_KERNEL_SCALES,
        bandwidth=None,
        jsd_mixture="prior",
        num_particles=1,
        max_plate_nesting=1,
        jsd_samples=8,
        mmd_features=None,
    ):
        args = check_elbo_args(
            beta, marginal, marginal_weight, jsd_weight, latent_site, obs_site, kernel, kernel_scales, bandwidth,
            jsd_mixture, num_particles, max_plate_nesting, jsd_samples, mmd_features,
        )  # fmt: skip
        super().__init__(num_particles=args.pop("num_particles"))
        for name, value in args.items():
            setattr(self, name, value)

    @classmethod
    def from_alpha_lambda(cls, alpha, lam, **kwargs):
        """The objective in Zhao, Song & Ermon's parameters: ``beta = 1 - alpha``,
        ``marginal_weight = alpha + lam - 1``. Other keyword arguments as for the constructor."""
        beta, marginal_weight = weights_from_alpha_lambda(alpha, lam)
        return cls(beta=beta, marginal_weight=marginal_weight, **kwargs)

    def __repr__(self):
        return (
            f"{type(self).__name__}(beta={self.beta}, marginal={self.marginal!r}, "
            f"marginal_weight={self.marginal_weight}, jsd_weight={self.jsd_weight})"
        )

    # -- the ELBO interface -------------------------------------------------------------------

    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        """The loss (negative objective) as a 0-d array, in the dict NumPyro's SVI expects (no mutable state)."""
        terms = self._terms(rng_key, param_map, model, guide, args, kwargs, every_term=False)
        return {"loss": terms["loss"], "mutable_state": None}

    def differentiable_terms(self, rng_key, param_map, model, guide, *args, **kwargs):
        """The loss and the terms it is made of, as 0-d arrays from one pass, for logging while training.

        ``"loss"`` is :meth:`loss`; the other entries are as in :meth:`loss_terms`, but only ``recon``,
        ``kl`` and the terms with a non-zero weight are present.
        """
        return self._terms(rng_key, param_map, model, guide, args, kwargs, every_term=False)

    def loss_terms(self, rng_key, param_map, model, guide, *args, **kwargs):
        """Every term of the objective, as 0-d arrays without gradient.

        ``loss`` is :meth:`loss`; the others are per-example: ``recon`` and ``kl`` are means over the
        data, ``marginal`` is D(q(z) || p(z)), ``jsd`` the mean JSD and ``mi`` the mutual information
        between example and latent on the minibatch (exact for a discrete latent, a minibatch estimate
        for a continuous one), so that ``loss / N == -(recon - beta*kl - marginal_weight*marginal +
        jsd_weight*jsd)``. Terms with weight zero are computed too; when ``marginal`` is ``None`` the
        ``marginal`` term is the natural one for the latent (``"kl"`` discrete, ``"moment"`` continuous).
        """
        terms = self._terms(rng_key, param_map, model, guide, args, kwargs, every_term=True)
        return {name: jax.lax.stop_gradient(terms[name]) for name in TERMS}

    # -- the computation ----------------------------------------------------------------------

    def _get_trace(self, rng_key, param_map, model, guide, args, kwargs):
        """The guide's trace, and the model's replayed against it; a discrete latent is set to all its
        values, stacked along a dim left of the plates."""
        # Trace_ELBO's split, so that one key gives the guide the same draws.
        model_key, guide_key = jax.random.split(rng_key)
        model_key, draws_key = jax.random.split(model_key)
        guide = handlers.seed(handlers.substitute(guide, data=param_map), guide_key)
        model = handlers.seed(handlers.substitute(model, data=param_map), model_key)
        guide_trace = handlers.trace(guide).get_trace(*args, **kwargs)
        latent = _traces.check_guide(guide_trace, self.latent_site)
        if _traces.is_discrete(latent["fn"]):
            values = _traces.enumerated_support(latent["fn"], self.max_plate_nesting)
            model_trace = _traces.replay_with(model, guide_trace, self.latent_site, values, args, kwargs)
        else:
            model_trace = handlers.trace(handlers.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return _Pass(model, model_trace, guide_trace, draws_key)

    def _terms(self, rng_key, param_map, model, guide, args, kwargs, every_term):
        n = self.num_particles
        particle_keys = jax.random.split(rng_key, n) if n > 1 else [rng_key]
        first = self._get_trace(particle_keys[0], param_map, model, guide, args, kwargs)
        latent = first.guide_trace[self.latent_site]
        plate = _traces.data_plate(latent)
        num_data = _traces.plate_full_size(first.guide_trace, plate)
        if _traces.is_discrete(latent["fn"]):
            self._check_latent_kind("discrete", latent)
            terms = self._discrete_terms(first, plate, num_data, every_term)
        else:
            self._check_latent_kind("continuous", latent)
            if n == 1:
                terms = self._continuous_terms(first, plate, num_data, args, kwargs, every_term)
            else:
                # Every particle again, vectorised; under jit the first pass above, which told the
                # latent's kind and plate, is then dead code that XLA drops.
                def particle(key):
                    one = self._get_trace(key, param_map, model, guide, args, kwargs)
                    return self._continuous_terms(one, plate, num_data, args, kwargs, every_term)

                terms = jax.tree.map(lambda values: values.mean(0), jax.vmap(particle)(particle_keys))
        loss = -(terms["recon"] - self.beta * terms["kl"]) * num_data
        if "marginal" in terms:
            loss = loss + self.marginal_weight * num_data * terms["marginal"]
        if "jsd" in terms:
            loss = loss - self.jsd_weight * num_data * terms["jsd"]
        terms["loss"] = loss
        return terms

    def _check_latent_kind(self, kind, site):
        name = _traces.distribution_name(site["fn"])
        if kind == "discrete" and self.marginal in ("moment", "mmd"):
            raise ValueError(f"marginal={self.marginal!r} needs a continuous latent; site {site['name']!r} is {name}: use 'kl'")
        if kind == "continuous" and self.marginal == "kl":
            raise ValueError(
                f"marginal='kl' needs a discrete latent; site {site['name']!r} is {name}: use 'moment' or 'mmd'"
            )
        if kind == "continuous" and self.jsd_mixture == "uniform":
            raise ValueError(
                f"jsd_mixture='uniform' needs a discrete latent; site {site['name']!r} is {name}: use 'prior' or 'posterior'"
            )

    def _wants(self, weight, every_term):
        return every_term or weight > 0

    def _discrete_terms(self, trace, plate, num_data, every_term):
        # A mask on the guide's latent is ignored, as the Pyro twin ignores a guide site's mask.
        q_fn, _ = _traces.split_mask(trace.guide_trace[self.latent_site]["fn"])
        prior, obs = _traces.check_model(trace.model_trace, self.latent_site, self.obs_site, plate)
        p_fn, prior_mask = _traces.split_mask(prior["fn"])
        obs_fn, obs_mask = _traces.split_mask(obs["fn"])
        values = prior["value"]
        K, B = values.shape[0], plate.size

        log_q = _traces.flat_batch(_traces.log_prob(q_fn, values), self.latent_site, (K,), B)
        log_p = _traces.flat_batch(_traces.log_prob(p_fn, values), self.latent_site, (K,), B)
        log_lik = _traces.scale_and_mask(_traces.log_prob(obs_fn, obs["value"]), mask=obs_mask)
        log_lik = _traces.flat_batch(log_lik, self.obs_site, (K,), B)
        q = jnp.exp(log_q)
        # Latent values that q rules out contribute nothing, even where log q or log p is -inf.
        support = q > 0
        recon = (q * jnp.where(support, log_lik, 0.0)).sum(0)
        kl = (q * jnp.where(support, log_q - log_p, 0.0)).sum(0)
        terms = {
            "recon": _traces.scale_and_mask(recon, obs["scale"]).sum() / num_data,
            "kl": _traces.scale_and_mask(kl, prior["scale"], prior_mask).sum() / num_data,
        }
        p = jnp.exp(log_p)
        if self._wants(self.marginal_weight, every_term):
            terms["marginal"] = categorical_kl(q.mean(1), p.mean(1))
        if self._wants(self.jsd_weight, every_term):
            if K < 2:
                raise ValueError(f"the JSD term needs a latent with at least 2 values; site {self.latent_site!r} has {K}")
            weights = {"prior": p, "posterior": q, "uniform": jnp.full_like(q, 1.0 / K)}[self.jsd_mixture]
            terms["jsd"] = self._decoder_jsd(obs_fn, weights, (K,), B, trace.rng_key).mean()
        if every_term:
            # I(example; z) on the minibatch = mean_i KL(q_i || mean_j q_j), exact.
            terms["mi"] = categorical_kl(q.T, q.mean(1)).mean()
        return terms

    def _continuous_terms(self, trace, plate, num_data, args, kwargs, every_term):
        latent = trace.guide_trace[self.latent_site]
        q_fn, _ = _traces.split_mask(latent["fn"])
        z = latent["value"]
        B = plate.size
        prior, obs = _traces.check_model(trace.model_trace, self.latent_site, self.obs_site, plate)
        p_fn, prior_mask = _traces.split_mask(prior["fn"])
        obs_fn, obs_mask = _traces.split_mask(obs["fn"])
        marginal_key, jsd_key, decoder_key, feature_key = jax.random.split(trace.rng_key, 4)

        log_q = _traces.flat_batch(q_fn.log_prob(z), self.latent_site, (), B)
        log_p = _traces.flat_batch(p_fn.log_prob(z), self.latent_site, (), B)
        log_lik = _traces.scale_and_mask(_traces.log_prob(obs_fn, obs["value"]), mask=obs_mask)
        log_lik = _traces.flat_batch(log_lik, self.obs_site, (), B)
        terms = {
            "recon": _traces.scale_and_mask(log_lik, obs["scale"]).sum() / num_data,
            "kl": _traces.scale_and_mask(log_q - log_p, prior["scale"], prior_mask).sum() / num_data,
        }
        if self._wants(self.marginal_weight, every_term):
            if self._continuous_marginal(q_fn) == "moment":
                loc, scale = _traces.gaussian_params(q_fn, self.latent_site, B)
                prior_loc, prior_scale = _traces.gaussian_params(p_fn, self.latent_site, B)
                terms["marginal"] = moment_matched_kl(loc, scale, prior_loc, prior_scale)
            else:
                prior_draws = self._rsample(p_fn, marginal_key, (), "marginal='mmd'")
                terms["marginal"] = mmd(
                    z.reshape(B, -1),
                    prior_draws.reshape(B, -1),
                    kernel=self.kernel,
                    scales=self.kernel_scales,
                    bandwidth=self.bandwidth,
                    num_features=self.mmd_features,
                    rng_key=feature_key,
                )
        if self._wants(self.jsd_weight, every_term):
            S = self.jsd_samples
            source = p_fn if self.jsd_mixture == "prior" else q_fn
            draws = self._rsample(source, jsd_key, (S,), "the JSD term")
            draws = draws.reshape((S,) + (1,) * (self.max_plate_nesting - len(source.batch_shape)) + draws.shape[1:])
            draw_trace = _traces.replay_with(trace.model, trace.guide_trace, self.latent_site, draws, args, kwargs)
            draw_obs_fn, _ = _traces.split_mask(draw_trace[self.obs_site]["fn"])
            weights = jnp.full((S,), 1.0 / S, dtype=z.dtype)
            terms["jsd"] = self._decoder_jsd(draw_obs_fn, weights, (S,), B, decoder_key).mean()
        if every_term:
            # Minibatch estimate of I(example; z): log q(z_i|x_i) - log mean_j q(z_i|x_j).
            cross = q_fn.log_prob(z.reshape((B, 1) + q_fn.event_shape))
            if cross.shape != (B, B):
                raise _traces.UnsupportedModelError(
                    f"latent site {self.latent_site!r} must have batch shape ({B},), got {tuple(q_fn.batch_shape)}"
                )
            terms["mi"] = (log_q - (logsumexp(cross, axis=1) - math.log(B))).mean()
        return terms

    def _continuous_marginal(self, q_fn):
        if self.marginal is not None:
            return self.marginal
        # Reported (weight zero) only: the moment-matched KL where it applies, else the MMD.
        return "moment" if isinstance(_traces.unwrap(q_fn)[0], _traces.Normal) else "mmd"

    def _rsample(self, fn, rng_key, sample_shape, purpose):
        if not fn.has_rsample:
            raise _traces.UnsupportedModelError(
                f"{purpose} draws latents from {_traces.distribution_name(fn)} at site "
                f"{self.latent_site!r}, which is not reparameterisable"
            )
        return fn.rsample(rng_key, sample_shape)

    def _decoder_jsd(self, fn, weights, lead, batch_size, rng_key):
        """Per-example JSD ``[B]`` between the decoder distributions stacked along the leading dim."""
        log_probs = _traces.factor_log_probs(fn, self.obs_site, lead, batch_size)
        if log_probs is not None:
            return jensen_shannon(jnp.exp(log_probs), weights, log_probs=log_probs).sum(-1)
        draws = fn.rsample(rng_key)
        cross = fn.log_prob(jnp.expand_dims(draws, 1))
        K = lead[0]
        cross = _traces.flat_batch(cross, self.obs_site, (K, K), batch_size)
        return monte_carlo_jensen_shannon(cross, weights)
