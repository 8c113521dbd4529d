r"""The backend-neutral half of ``InfoVAE_ELBO``: its arguments, its checks, and the computation of
every term from a model/guide pass, written once for Pyro and NumPyro.

For a conditional model :math:`p(z|x)\,p(y|x,z)` and guide :math:`q(z|x,y)` over N examples, the loss is
the negative of

.. math::

    \mathcal L = \sum_i \mathbb E_{q(z|x_i,y_i)}[\log p(y_i|x_i,z)]
        - \beta \sum_i \mathrm{KL}(q(z|x_i,y_i)\,\|\,p(z|x_i))
        - \gamma\, N\, D(q(z)\,\|\,p(z))
        + \delta\, N\, \overline{\mathrm{JSD}}

with :math:`\beta` = ``beta`` (the per-example KL, which penalises the mutual information between data
and latent), :math:`\gamma` = ``marginal_weight`` (the divergence ``marginal`` between the aggregate
posterior and the aggregate prior on the minibatch; the registered ones are in
:mod:`infovae.core.marginals`) and :math:`\delta` = ``jsd_weight`` (the mean Jensen–Shannon divergence
between the decoder's distributions for different latent values, rewarded). Sums over the data plate
carry its scale ``size / subsample_size``, and the batch-level terms are multiplied by the plate's full
``size``, so that always (:func:`assemble_loss`)

.. math:: \text{loss} / N = -(\overline{\text{recon}} - \beta\,\overline{\text{KL}} - \gamma D + \delta\,\overline{\text{JSD}}).

How each term is computed:

- Discrete latent (``Categorical``/``OneHotCategorical``): summed out exactly. The model is replayed with
  the latent set to all K values stacked along a dim left of the plates (so the decoder must broadcast a
  leading dim, as for parallel enumeration); reconstruction and KL are exact expectations under q.
- Continuous latent (reparameterised, one event dim): ``num_particles`` draws; the KL is the single-sample
  estimate :math:`\log q(z|x,y) - \log p(z|x)`, as in ``Trace_ELBO``.
- JSD: mixture weights :math:`\pi` from the prior (``jsd_mixture="prior"``), the posterior or uniform. For
  a discrete latent the K decoder distributions are compared: exactly for one categorical/Bernoulli
  factor, as the *sum of per-factor JSDs* for a factorised event (the joint JSD is intractable), and by
  Monte Carlo for a reparameterisable continuous decoder. For a continuous latent the decoders at
  ``jsd_samples`` latent draws from the prior (or posterior) are compared with uniform weights, a
  Monte-Carlo estimate. A model whose decoder cannot take the draws stacked on a leading dim is
  replayed once per draw instead.
- ``mi``: the mutual information between example and latent on the minibatch, exact for a discrete
  latent, the minibatch estimate :math:`\log q(z_i|x_i) - \log \frac1B\sum_j q(z_i|x_j)` otherwise.

A backend supplies three things: ``_ops``, an :class:`ArrayOps` of its array functions and its
``divergences`` module; ``_traces``, its module that reads distributions (``unwrap``, ``describe``,
``log_prob``, ``class_log_probs``); and a :class:`TracePass` per pass through guide and model.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from infovae.core.arguments import (
    DEFAULT_KERNEL_SCALES,
    TERMS,
    check_elbo_args,
    check_latent_kind,
    weights_from_alpha_lambda,
)
from infovae.core.marginals import MARGINALS, backend_of
from infovae.core.sites import Site, check_guide, check_model, enumerated_support, flat_batch
from infovae.errors import UnsupportedModelError

__all__ = ["ArrayOps", "InfoVAEObjective", "TracePass", "assemble_loss", "scale_and_mask"]


@dataclass(frozen=True)
class ArrayOps:
    """The array functions the computation needs, in one backend's spelling."""

    exp: Callable
    where: Callable
    # full(shape, value, like): an array of ``shape`` filled with ``value``, in ``like``'s dtype and device.
    full: Callable
    # logsumexp(values, axis)
    logsumexp: Callable
    stack: Callable
    broadcast_to: Callable
    divergences: ModuleType


def scale_and_mask(ops: ArrayOps, values, scale=None, mask=None):
    """``values`` times a site's scale, zero where its mask is false (also where a value is ``inf``/``nan``)."""
    if scale is not None:
        values = values * scale
    if mask is None or mask is True:
        return values
    return ops.where(mask, values, 0.0)


def assemble_loss(terms: Mapping, num_data, beta, marginal_weight, jsd_weight):
    """``-N (recon - beta kl - marginal_weight D + jsd_weight jsd)`` from per-example terms; a term
    absent from ``terms`` counts as zero. Works on floats and on either backend's arrays (the weights
    may be traced values, as in a vectorised sweep)."""
    loss = -(terms["recon"] - beta * terms["kl"]) * num_data
    if "marginal" in terms:
        loss = loss + marginal_weight * num_data * terms["marginal"]
    if "jsd" in terms:
        loss = loss - jsd_weight * num_data * terms["jsd"]
    return loss


class TracePass(ABC):
    """One pass through a guide and the model replayed against it, as the objective reads it.

    A backend traces the guide its own way and calls :meth:`_replay_model`, which checks the guide and
    replays the model (with all values of a discrete latent); the objective then only asks the pass for
    its random draws, which differ between backends.
    """

    #: The guide's sample sites, by name.
    guide: Mapping[str, Site]
    #: The model's sample sites, by name.
    model: Mapping[str, Site]
    #: The data plate's full size N.
    num_data: Any
    #: Whether the guide's latent is summed out (discrete) rather than sampled.
    discrete: bool

    def _replay_model(self, elbo, model, guide_trace, args, kwargs):
        """Check the guide's trace and replay ``model`` against it; returns the model's trace."""
        traces = elbo._traces
        self.guide = traces.sites(guide_trace)
        latent = check_guide(self.guide, elbo.latent_site, traces.is_discrete, traces.describe)
        self.discrete = traces.is_discrete(latent.fn)
        values = enumerated_support(latent.fn, elbo.max_plate_nesting) if self.discrete else None
        model_trace = traces.replay_with(model, guide_trace, elbo.latent_site, values, args, kwargs)
        self.model = traces.sites(model_trace)
        self.num_data = traces.full_size(guide_trace, elbo.latent_site)
        self._replay = lambda value: traces.sites(traces.replay_with(model, guide_trace, elbo.latent_site, value, args, kwargs))
        self._obs_site = elbo.obs_site
        return model_trace

    def replay_obs(self, latent_value) -> Site:
        """The model's observed site, replayed with the latent set to ``latent_value``."""
        return self._replay(latent_value)[self._obs_site]

    @abstractmethod
    def draw(self, fn, sample_shape, stream, index=0):
        """``fn.rsample(sample_shape)`` for the objective's own use; ``stream`` (``"marginal"``, ``"jsd"``,
        ``"decoder"``) and ``index`` name the draw, so that each gets randomness of its own."""

    @abstractmethod
    def random_kwargs(self, stream) -> dict:
        """Extra keyword arguments a random divergence needs for ``stream`` (a key, in JAX)."""


class InfoVAEObjective:
    """The InfoVAE objective for a conditional model/guide pair (the math: the module docstring), as
    both backends' ``InfoVAE_ELBO`` construct it; a backend's subclass of its own ``ELBO`` mixes it in
    and sets ``_ops``, ``_traces`` and ``_init_elbo``.

    :param float beta: weight of the per-example KL (``1 - alpha``).
    :param str marginal: ``None`` or a registered marginal divergence (:mod:`infovae.core.marginals`):
        ``"kl"`` or ``"kl_corrected"`` (discrete latent), ``"moment"`` or ``"mmd"`` (continuous).
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
        exact quadratic-time statistic (use ~32 for batches of thousands, where the exact one dominates).
    """

    _ops: ArrayOps
    _traces: ModuleType

    def __init__(
        self,
        beta: float = 1.0,
        marginal: str | None = None,
        marginal_weight: float = 0.0,
        jsd_weight: float = 0.0,
        latent_site: str = "z",
        obs_site: str = "y",
        kernel: str = "imq",
        kernel_scales=DEFAULT_KERNEL_SCALES,
        bandwidth: str | float | None = None,
        jsd_mixture: str = "prior",
        num_particles: int = 1,
        max_plate_nesting: int = 1,
        jsd_samples: int = 8,
        mmd_features: int | None = None,
    ):
        args = check_elbo_args(
            beta, marginal, marginal_weight, jsd_weight, latent_site, obs_site, kernel, kernel_scales, bandwidth,
            jsd_mixture, num_particles, max_plate_nesting, jsd_samples, mmd_features,
        )  # fmt: skip
        num_particles, max_plate_nesting = args.pop("num_particles"), args.pop("max_plate_nesting")
        for name, value in args.items():
            setattr(self, name, value)
        self._init_elbo(num_particles, max_plate_nesting)

    def _init_elbo(self, num_particles: int, max_plate_nesting: int):
        """Initialise the backend's own ``ELBO`` base class."""
        raise NotImplementedError

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

    # -- what to compute ------------------------------------------------------------------------

    def wanted_terms(self, every_term: bool) -> frozenset:
        """The optional terms a pass computes: all of them for :meth:`loss_terms`, else those weighted."""
        if every_term:
            return frozenset(TERMS)
        return frozenset(name for name, weight in (("marginal", self.marginal_weight), ("jsd", self.jsd_weight)) if weight > 0)

    def _finish(self, terms: dict, num_data) -> dict:
        terms["loss"] = assemble_loss(terms, num_data, self.beta, self.marginal_weight, self.jsd_weight)
        return terms

    def _check_kind(self, tp: TracePass):
        latent = tp.guide[self.latent_site]
        kind = "discrete" if tp.discrete else "continuous"
        check_latent_kind(
            self.marginal, self.jsd_mixture, kind, f"site {latent.name!r} is {self._traces.describe(latent.fn)} ({kind})"
        )

    # -- the terms of one pass ------------------------------------------------------------------

    def _rsample(self, tp: TracePass, fn, sample_shape, purpose, stream, index=0):
        if not fn.has_rsample:
            raise UnsupportedModelError(
                f"{purpose} draws from {self._traces.describe(fn)} at site {self.latent_site!r}, which is not reparameterisable"
            )
        return tp.draw(fn, sample_shape, stream, index)

    def _pass_terms(self, tp: TracePass, wanted: frozenset) -> dict:
        """Per-example ``recon`` and ``kl`` and the ``wanted`` optional terms of one pass."""
        return self._discrete_terms(tp, wanted) if tp.discrete else self._continuous_terms(tp, wanted)

    def _sites(self, tp: TracePass):
        latent = tp.guide[self.latent_site]
        prior, obs = check_model(tp.model, self.latent_site, self.obs_site, latent.plate)
        return latent, prior, obs

    def _recon_kl(self, tp, prior, obs, recon, kl):
        ops = self._ops
        return {
            "recon": scale_and_mask(ops, recon, obs.scale).sum() / tp.num_data,
            "kl": scale_and_mask(ops, kl, prior.scale, prior.mask).sum() / tp.num_data,
        }

    def _discrete_terms(self, tp: TracePass, wanted: frozenset) -> dict:
        ops = self._ops
        latent, prior, obs = self._sites(tp)
        values = prior.value
        K, B = values.shape[0], latent.plate_size
        log_q = flat_batch(self._traces.log_prob(latent.fn, values), self.latent_site, (K,), B)
        log_p = flat_batch(self._traces.log_prob(prior.fn, values), self.latent_site, (K,), B)
        log_lik = scale_and_mask(ops, self._traces.log_prob(obs.fn, obs.value), mask=obs.mask)
        log_lik = flat_batch(log_lik, self.obs_site, (K,), B)
        q = ops.exp(log_q)
        # Latent values that q rules out contribute nothing, even where log q or log p is -inf.
        support = q > 0
        recon = (q * ops.where(support, log_lik, 0.0)).sum(0)
        kl = (q * ops.where(support, log_q - log_p, 0.0)).sum(0)
        terms = self._recon_kl(tp, prior, obs, recon, kl)
        p = ops.exp(log_p)
        if "marginal" in wanted:
            terms["marginal"] = self._marginal(tp, probs=(q.T, p.T))
        if "jsd" in wanted:
            if K < 2:
                raise UnsupportedModelError(
                    f"the JSD term needs a latent with at least 2 values; site {self.latent_site!r} has {K}"
                )
            weights = {"prior": p, "posterior": q, "uniform": ops.full(q.shape, 1.0 / K, q)}[self.jsd_mixture]
            terms["jsd"] = self._decoder_jsd(tp, obs.fn, weights, B).mean()
        if "mi" in wanted:
            # I(example; z) on the minibatch = mean_i KL(q_i || mean_j q_j), exact.
            terms["mi"] = ops.divergences.categorical_kl(q.T, q.mean(1)).mean()
        return terms

    def _continuous_terms(self, tp: TracePass, wanted: frozenset) -> dict:
        ops = self._ops
        latent, prior, obs = self._sites(tp)
        q_fn, p_fn, z = latent.fn, prior.fn, latent.value
        B = latent.plate_size
        log_q = flat_batch(self._traces.log_prob(q_fn, z), self.latent_site, (), B)
        log_p = flat_batch(self._traces.log_prob(p_fn, z), self.latent_site, (), B)
        log_lik = scale_and_mask(ops, self._traces.log_prob(obs.fn, obs.value), mask=obs.mask)
        log_lik = flat_batch(log_lik, self.obs_site, (), B)
        terms = self._recon_kl(tp, prior, obs, log_lik, log_q - log_p)
        if "marginal" in wanted:
            terms["marginal"] = self._marginal(tp, latent=latent, prior=prior)
        if "jsd" in wanted:
            S = self.jsd_samples
            source = p_fn if self.jsd_mixture == "prior" else q_fn
            draws = self._rsample(tp, source, (S,), "the JSD term", "jsd")
            weights = ops.full((S,), 1.0 / S, z)
            terms["jsd"] = self._decoder_jsd(tp, self._decoders_at(tp, source, draws), weights, B).mean()
        if "mi" in wanted:
            # Minibatch estimate of I(example; z): log q(z_i|x_i) - log mean_j q(z_i|x_j).
            cross = q_fn.log_prob(z.reshape((B, 1) + tuple(q_fn.event_shape)))
            if tuple(cross.shape) != (B, B):
                raise UnsupportedModelError(
                    f"latent site {self.latent_site!r} must have batch shape ({B},), got {tuple(q_fn.batch_shape)}"
                )
            terms["mi"] = (log_q - (ops.logsumexp(cross, 1) - math.log(B))).mean()
        return terms

    def _decoders_at(self, tp: TracePass, source, draws):
        """The decoder at each of S latent draws: one distribution stacking them on a leading dim, or,
        for a model whose decoder takes one draw at a time, a list of S distributions."""
        S = draws.shape[0]
        stacked = draws.reshape((S,) + (1,) * (self.max_plate_nesting - len(source.batch_shape)) + tuple(draws.shape[1:]))
        try:
            return tp.replay_obs(stacked).fn
        except UnsupportedModelError:
            raise
        except Exception:  # noqa: BLE001  (a user's decoder may refuse stacked draws any way it likes)
            # A decoder written for one draw (it does not broadcast a leading dim): replay once per draw;
            # a real error in the decoder raises again here.
            return [tp.replay_obs(draws[s]).fn for s in range(S)]

    def _marginal(self, tp: TracePass, probs=None, latent=None, prior=None):
        """The marginal divergence ``D(q(z) || p(z))`` the objective names (for a zero weight: the
        natural one for the latent), from what its registration says it takes."""
        name = self.marginal
        if name is None:
            name = "kl" if probs is not None else ("moment" if self._traces.describe(latent.fn) == "Normal" else "mmd")
        spec = MARGINALS[name]
        backend = backend_of(self._ops.divergences)
        fn = spec.function(backend)
        # Only the options the divergence declares (rng_key: where the backend has one).
        passed = spec.passed_options(backend)
        given = {
            "kernel": self.kernel,
            "scales": self.kernel_scales,
            "bandwidth": self.bandwidth,
            "num_features": self.mmd_features,
        }
        options = {k: v for k, v in given.items() if k in passed}
        if "rng_key" in passed:
            options.update(tp.random_kwargs("features"))
        if spec.inputs == "probs":
            return fn(*probs, **options)
        B = latent.plate_size
        if spec.inputs == "gaussian":
            loc, scale = self._gaussian_params(latent.fn, B)
            prior_loc, prior_scale = self._gaussian_params(prior.fn, B)
            return fn(loc, scale, prior_loc, prior_scale, **options)
        prior_draws = self._rsample(tp, prior.fn, (), f"marginal={name!r}", "marginal")
        return fn(latent.value.reshape(B, -1), prior_draws.reshape(B, -1), **options)

    def _gaussian_params(self, fn, batch_size):
        """``loc, scale`` ``[B, d]`` of a diagonal Normal latent (for the moment-matched marginal)."""
        base, _ = self._traces.unwrap(fn)
        if self._traces.describe(fn) != "Normal":
            raise UnsupportedModelError(
                f"marginal='moment' needs a diagonal Normal at site {self.latent_site!r}, got "
                f"{self._traces.describe(fn)}; use marginal='mmd'"
            )
        shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
        return tuple(self._ops.broadcast_to(value, shape).reshape(batch_size, -1) for value in (base.loc, base.scale))

    def _factor_log_probs(self, fn, lead, batch_size):
        """Class log-probabilities ``[*lead, B, F, C]`` over the F factors of a categorical/Bernoulli
        observation, or ``None`` for a reparameterisable continuous one (its JSD is a Monte-Carlo estimate)."""
        if self._traces.unwrap(fn)[1]:
            raise UnsupportedModelError(f"the JSD term does not support a masked observation site {self.obs_site!r}")
        log_probs = self._traces.class_log_probs(fn)
        if log_probs is None:
            if fn.has_rsample:
                return None
            raise UnsupportedModelError(
                f"the JSD term supports Categorical, OneHotCategorical and Bernoulli observations (exact, per "
                f"factor) and reparameterisable continuous ones (Monte Carlo); site {self.obs_site!r} is "
                f"{self._traces.describe(fn)}"
            )
        return log_probs.reshape(tuple(lead) + (batch_size, -1, log_probs.shape[-1]))

    def _decoder_jsd(self, tp: TracePass, decoders, weights, batch_size):
        """Per-example JSD ``[B]`` between K decoder distributions: one distribution stacking them on
        its leading dim, or a list of them."""
        ops = self._ops
        K = weights.shape[0]
        each = decoders if isinstance(decoders, list) else None
        if each is None:
            log_probs = self._factor_log_probs(decoders, (K,), batch_size)
        else:
            parts = [self._factor_log_probs(fn, (), batch_size) for fn in each]
            log_probs = None if parts[0] is None else ops.stack(parts)
        if log_probs is not None:
            return ops.divergences.jensen_shannon(ops.exp(log_probs), weights, log_probs=log_probs).sum(-1)
        # A continuous decoder: one draw of each, scored by all (cross[k, j] = log p_j(y_k)).
        if each is None:
            draws = self._rsample(tp, decoders, (), "the JSD term", "decoder")
            cross = decoders.log_prob(draws.reshape(draws.shape[:1] + (1,) + tuple(draws.shape[1:])))
            cross = flat_batch(cross, self.obs_site, (K, K), batch_size)
        else:
            draws = [self._rsample(tp, fn, (), "the JSD term", "decoder", k) for k, fn in enumerate(each)]
            cross = ops.stack(
                [ops.stack([flat_batch(fn.log_prob(y), self.obs_site, (), batch_size) for fn in each]) for y in draws]
            )
        return ops.divergences.monte_carlo_jensen_shannon(cross, weights)
