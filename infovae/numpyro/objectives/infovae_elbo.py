r"""The InfoVAE objective as a :class:`numpyro.infer.elbo.ELBO`.

The twin of :mod:`infovae.objectives.infovae_elbo` (read its docstring for the math): the same
constructor, the same terms and scaling, so that on the same weights and data both give the same
numbers. Everything here is traceable by :func:`jax.jit`: ``loss`` and ``loss_terms`` take an
``rng_key`` and a ``param_map`` (constrained parameter values keyed by site name) first, as NumPyro's
ELBOs do, and ``loss_terms`` returns 0-d arrays rather than floats.
"""

import math

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


class InfoVAE_ELBO(ELBO):
    """InfoVAE objective for a conditional NumPyro model/guide pair; arguments as for the Pyro twin."""

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
        """The loss (negative objective); NumPyro's SVI calls this."""
        terms = self._terms(rng_key, param_map, model, guide, args, kwargs, every_term=False)
        return {"loss": terms["loss"], "mutable_state": None}

    def differentiable_terms(self, rng_key, param_map, model, guide, *args, **kwargs):
        """The loss and the terms it is made of, from one pass: ``recon``, ``kl`` and the terms with a
        non-zero weight (as :meth:`loss_terms`, without the others)."""
        return self._terms(rng_key, param_map, model, guide, args, kwargs, every_term=False)

    def loss_terms(self, rng_key, param_map, model, guide, *args, **kwargs):
        """Every term of the objective as 0-d arrays: ``loss`` and the per-example ``recon``, ``kl``,
        ``marginal``, ``jsd`` and ``mi``, with ``loss / N == -(recon - beta*kl - marginal_weight*marginal
        + jsd_weight*jsd)``. Terms with weight zero are computed too."""
        terms = self._terms(rng_key, param_map, model, guide, args, kwargs, every_term=True)
        return {name: jax.lax.stop_gradient(terms[name]) for name in TERMS}

    # -- the computation ----------------------------------------------------------------------

    def _get_trace(self, rng_key, param_map, model, guide, args, kwargs):
        """The guide's trace, and the model's replayed against it; a discrete latent is set to all its
        values, stacked along a dim left of the plates."""
        # The same split as NumPyro's own ELBOs, so that one key gives the same draws.
        model_key, guide_key = jax.random.split(rng_key)
        guide = handlers.seed(handlers.substitute(guide, data=param_map), guide_key)
        model = handlers.seed(handlers.substitute(model, data=param_map), model_key)
        guide_trace = handlers.trace(guide).get_trace(*args, **kwargs)
        latent = _traces.check_guide(guide_trace, self.latent_site)
        if _traces.is_discrete(latent["fn"]):
            values = _traces.enumerated_support(latent["fn"], self.max_plate_nesting)
            model_trace = _traces.replay_with(model, guide_trace, self.latent_site, values, args, kwargs)
        else:
            model_trace = handlers.trace(handlers.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return model, model_trace, guide_trace

    def _terms(self, rng_key, param_map, model, guide, args, kwargs, every_term):
        particle_keys = [rng_key] if self.num_particles == 1 else list(jax.random.split(rng_key, self.num_particles))
        seeded_model, model_trace, guide_trace = self._get_trace(particle_keys[0], param_map, model, guide, args, kwargs)
        latent = guide_trace[self.latent_site]
        plate = _traces.data_plate(latent)
        num_data = _traces.plate_full_size(guide_trace, plate)
        extra_key = jax.random.fold_in(particle_keys[0], 1)
        if _traces.is_discrete(latent["fn"]):
            self._check_latent_kind("discrete", latent)
            terms = self._discrete_terms(model_trace, guide_trace, plate, num_data, extra_key, every_term)
        else:
            self._check_latent_kind("continuous", latent)
            particles = [self._continuous_terms(seeded_model, model_trace, guide_trace, plate, num_data, extra_key, args, kwargs, every_term)]
            for key in particle_keys[1:]:
                seeded, m_trace, g_trace = self._get_trace(key, param_map, model, guide, args, kwargs)
                particles.append(
                    self._continuous_terms(seeded, m_trace, g_trace, plate, num_data, jax.random.fold_in(key, 1), args, kwargs, every_term)
                )
            terms = {k: sum(p[k] for p in particles) / self.num_particles for k in particles[0]}
        loss = -(terms["recon"] - self.beta * terms["kl"]) * num_data
        if "marginal" in terms:
            loss = loss + self.marginal_weight * num_data * terms["marginal"]
        if "jsd" in terms:
            loss = loss - self.jsd_weight * num_data * terms["jsd"]
        terms["loss"] = loss
        return terms

    def _check_latent_kind(self, kind, site):
        name = type(_traces.unwrap(site["fn"])[0]).__name__
        if kind == "discrete" and self.marginal in ("moment", "mmd"):
            raise ValueError(f"marginal={self.marginal!r} needs a continuous latent; site {site['name']!r} is {name}: use 'kl'")
        if kind == "continuous" and self.marginal == "kl":
            raise ValueError(f"marginal='kl' needs a discrete latent; site {site['name']!r} is {name}: use 'moment' or 'mmd'")
        if kind == "continuous" and self.jsd_mixture == "uniform":
            raise ValueError(
                f"jsd_mixture='uniform' needs a discrete latent; site {site['name']!r} is {name}: use 'prior' or 'posterior'"
            )

    def _wants(self, weight, every_term):
        return every_term or weight > 0

    def _discrete_terms(self, model_trace, guide_trace, plate, num_data, rng_key, every_term):
        q_fn = guide_trace[self.latent_site]["fn"]
        prior, obs = _traces.check_model(model_trace, self.latent_site, self.obs_site, plate)
        values = prior["value"]
        K, B = values.shape[0], plate.size

        log_q = _traces.flat_batch(q_fn.log_prob(values), self.latent_site, (K,), B)
        log_p = _traces.flat_batch(prior["fn"].log_prob(values), self.latent_site, (K,), B)
        log_lik = _traces.flat_batch(obs["fn"].log_prob(obs["value"]), self.obs_site, (K,), B)
        q = jnp.exp(log_q)
        # Latent values that q rules out contribute nothing, even where log q or log p is -inf.
        support = q > 0
        recon = (q * jnp.where(support, log_lik, 0.0)).sum(0)
        kl = (q * jnp.where(support, log_q - log_p, 0.0)).sum(0)
        terms = {
            "recon": (_traces.scale_of(obs) * recon).sum() / num_data,
            "kl": (_traces.scale_of(prior) * kl).sum() / num_data,
        }
        p = jnp.exp(log_p)
        if self._wants(self.marginal_weight, every_term):
            terms["marginal"] = categorical_kl(q.mean(1), p.mean(1))
        if self._wants(self.jsd_weight, every_term):
            if K < 2:
                raise ValueError(f"the JSD term needs a latent with at least 2 values; site {self.latent_site!r} has {K}")
            weights = {"prior": p, "posterior": q, "uniform": jnp.full_like(q, 1.0 / K)}[self.jsd_mixture]
            terms["jsd"] = self._decoder_jsd(obs["fn"], weights, (K,), B, rng_key).mean()
        if every_term:
            terms["mi"] = categorical_kl(q.T, q.mean(1)).mean()
        return terms

    def _continuous_terms(self, model, model_trace, guide_trace, plate, num_data, rng_key, args, kwargs, every_term):
        latent = guide_trace[self.latent_site]
        q_fn, z = latent["fn"], latent["value"]
        B = plate.size
        prior, obs = _traces.check_model(model_trace, self.latent_site, self.obs_site, plate)
        p_fn = prior["fn"]
        marginal_key, jsd_key, decoder_key, feature_key = jax.random.split(rng_key, 4)

        log_q = _traces.flat_batch(q_fn.log_prob(z), self.latent_site, (), B)
        log_p = _traces.flat_batch(p_fn.log_prob(z), self.latent_site, (), B)
        log_lik = _traces.flat_batch(obs["fn"].log_prob(obs["value"]), self.obs_site, (), B)
        terms = {
            "recon": (_traces.scale_of(obs) * log_lik).sum() / num_data,
            "kl": (_traces.scale_of(prior) * (log_q - log_p)).sum() / num_data,
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
            draw_trace = _traces.replay_with(model, guide_trace, self.latent_site, draws, args, kwargs)
            weights = jnp.full((S,), 1.0 / S, dtype=z.dtype)
            terms["jsd"] = self._decoder_jsd(draw_trace[self.obs_site]["fn"], weights, (S,), B, decoder_key).mean()
        if every_term:
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
                f"{purpose} draws latents from {type(_traces.unwrap(fn)[0]).__name__} at site "
                f"{self.latent_site!r}, which is not reparameterisable"
            )
        return fn.rsample(rng_key, sample_shape)

    def _decoder_jsd(self, fn, weights, lead, batch_size, rng_key):
        """Per-example JSD ``[B]`` between the decoder distributions stacked along the leading dim."""
        probs = _traces.factor_probs(fn, self.obs_site, lead, batch_size)
        if probs is not None:
            return jensen_shannon(probs, weights).sum(-1)
        draws = fn.rsample(rng_key)
        cross = fn.log_prob(jnp.expand_dims(draws, 1))
        K = lead[0]
        cross = _traces.flat_batch(cross, self.obs_site, (K, K), batch_size)
        return monte_carlo_jensen_shannon(cross, weights)
