r"""The InfoVAE objective as a :class:`pyro.infer.ELBO`.

For a conditional model :math:`p(z|x)\,p(y|x,z)` and guide :math:`q(z|x,y)` over N examples, the loss is
the negative of

.. math::

    \mathcal L = \sum_i \mathbb E_{q(z|x_i,y_i)}[\log p(y_i|x_i,z)]
        - \beta \sum_i \mathrm{KL}(q(z|x_i,y_i)\,\|\,p(z|x_i))
        - \gamma\, N\, D(q(z)\,\|\,p(z))
        + \delta\, N\, \overline{\mathrm{JSD}}

with :math:`\beta` = ``beta`` (the per-example KL, which penalises the mutual information between data
and latent), :math:`\gamma` = ``marginal_weight`` (the divergence ``marginal`` between the aggregate
posterior and the aggregate prior on the minibatch) and :math:`\delta` = ``jsd_weight`` (the mean
Jensen–Shannon divergence between the decoder's distributions for different latent values, rewarded).
Sums over the data plate carry its scale ``size / subsample_size``, and the batch-level terms are
multiplied by the plate's full ``size``, so that always

.. math:: \text{loss} / N = -(\overline{\text{recon}} - \beta\,\overline{\text{KL}} - \gamma D + \delta\,\overline{\text{JSD}}).

In Zhao, Song & Ermon's parameters (:meth:`InfoVAE_ELBO.from_alpha_lambda`):
:math:`\beta = 1-\alpha`, :math:`\gamma = \alpha+\lambda-1`. With ``beta=1`` and the other weights zero
the loss is the ordinary negative ELBO: it equals :class:`~pyro.infer.TraceEnum_ELBO`'s for a discrete
latent and :class:`~pyro.infer.Trace_ELBO`'s (same noise) for a continuous one.

How each term is computed:

- Discrete latent (``Categorical``/``OneHotCategorical``): summed out exactly. The model is replayed with
  the latent set to all K values stacked along a dim left of the plates (so the decoder must broadcast a
  leading dim, as for Pyro's parallel enumeration); reconstruction and KL are exact expectations under q.
- Continuous latent (reparameterised, one event dim): ``num_particles`` draws; the KL is the single-sample
  estimate :math:`\log q(z|x,y) - \log p(z|x)`, as in ``Trace_ELBO``.
- ``marginal``: ``"kl"`` (discrete) is :func:`categorical_kl` between the minibatch means of q and of the
  prior; ``"moment"`` (continuous) is :func:`moment_matched_kl`; ``"mmd"`` (continuous) is :func:`mmd`
  between one posterior draw and one prior draw per example.
- JSD: mixture weights :math:`\pi` from the prior (``jsd_mixture="prior"``), the posterior or uniform. For
  a discrete latent the K decoder distributions are compared: exactly for one categorical/Bernoulli
  factor, as the *sum of per-factor JSDs* for a factorised event (the joint JSD is intractable), and by
  Monte Carlo for a reparameterisable continuous decoder. For a continuous latent the decoders at
  ``jsd_samples`` latent draws from the prior (or posterior) are compared with uniform weights, a
  Monte-Carlo estimate.
"""

import math

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer.elbo import ELBO
from pyro.util import warn_if_nan

from infovae.objective_args import DEFAULT_KERNEL_SCALES, JSD_MIXTURES, MARGINALS, TERMS, check_elbo_args, weights_from_alpha_lambda
from infovae.objectives import _traces
from infovae.objectives.divergences import (
    categorical_kl,
    jensen_shannon,
    mmd,
    moment_matched_kl,
    monte_carlo_jensen_shannon,
)

__all__ = ["InfoVAE_ELBO", "JSD_MIXTURES", "MARGINALS"]


class InfoVAE_ELBO(ELBO):
    """InfoVAE objective for a conditional model/guide pair (see the module docstring for the math).

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
        exact quadratic-time statistic (use ~32 for batches of thousands, where the exact one dominates).
    """

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
        super().__init__(num_particles=args.pop("num_particles"), max_plate_nesting=args.pop("max_plate_nesting"))
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

    def loss(self, model, guide, *args, **kwargs):
        """The loss (negative objective) as a float."""
        with torch.no_grad():
            loss = self._terms(model, guide, args, kwargs, every_term=False)["loss"].item()
        warn_if_nan(loss, "loss")
        return loss

    def differentiable_loss(self, model, guide, *args, **kwargs):
        """The loss as a scalar tensor that autograd differentiates to the gradient estimate."""
        return self.differentiable_terms(model, guide, *args, **kwargs)["loss"]

    def loss_and_grads(self, model, guide, *args, **kwargs):
        """The loss as a float, after back-propagating its gradient into the parameters."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return loss.item()

    def differentiable_terms(self, model, guide, *args, **kwargs):
        """The loss and the terms it is made of, as tensors from one pass, for logging while training.

        ``"loss"`` is :meth:`differentiable_loss`; the other entries are as in :meth:`loss_terms`, but
        only ``recon``, ``kl`` and the terms with a non-zero weight are present.
        """
        terms = self._terms(model, guide, args, kwargs, every_term=False)
        # Detached, so that no gradient hook is left on the graph.
        warn_if_nan(terms["loss"].detach(), "loss")
        return terms

    def loss_terms(self, model, guide, *args, **kwargs):
        """Every term of the objective, as floats.

        ``loss`` is :meth:`loss`; the others are per-example: ``recon`` and ``kl`` are means over the
        data, ``marginal`` is D(q(z) || p(z)), ``jsd`` the mean JSD and ``mi`` the mutual information
        between example and latent on the minibatch (exact for a discrete latent, a minibatch estimate
        for a continuous one), so that ``loss / N == -(recon - beta*kl - marginal_weight*marginal +
        jsd_weight*jsd)``. Terms with weight zero are computed too; when ``marginal`` is ``None`` the
        ``marginal`` term is the natural one for the latent (``"kl"`` discrete, ``"moment"`` continuous).
        """
        with torch.no_grad():
            terms = self._terms(model, guide, args, kwargs, every_term=True)
        return {name: terms[name].item() for name in TERMS}

    # -- the computation ----------------------------------------------------------------------

    def _get_trace(self, model, guide, args, kwargs):
        """The guide's trace, and the model's replayed against it; a discrete latent is set to all its
        values, stacked along a dim left of the plates."""
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        latent = _traces.check_guide(guide_trace, self.latent_site)
        if _traces.is_discrete(latent["fn"]):
            values = _traces.enumerated_support(latent["fn"], self.max_plate_nesting)
            model_trace = _traces.replay_with(model, guide_trace, self.latent_site, values, args, kwargs)
        else:
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return model_trace, guide_trace

    def _terms(self, model, guide, args, kwargs, every_term):
        model_trace, guide_trace = self._get_trace(model, guide, args, kwargs)
        latent = guide_trace.nodes[self.latent_site]
        plate = _traces.data_plate(latent)
        if _traces.is_discrete(latent["fn"]):
            self._check_latent_kind("discrete", latent)
            terms = self._discrete_terms(model, model_trace, guide_trace, plate, args, kwargs, every_term)
        else:
            self._check_latent_kind("continuous", latent)
            traces = [(model_trace, guide_trace)]
            traces += [self._get_trace(model, guide, args, kwargs) for _ in range(self.num_particles - 1)]
            particles = [self._continuous_terms(model, *pair, plate, args, kwargs, every_term) for pair in traces]
            terms = {k: sum(p[k] for p in particles) / self.num_particles for k in particles[0]}
        num_data = plate.full_size or plate.size
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
            raise ValueError(
                f"marginal='kl' needs a discrete latent; site {site['name']!r} is {name}: use 'moment' or 'mmd'"
            )
        if kind == "continuous" and self.jsd_mixture == "uniform":
            raise ValueError(
                f"jsd_mixture='uniform' needs a discrete latent; site {site['name']!r} is {name}: use 'prior' or 'posterior'"
            )

    def _wants(self, weight, every_term):
        return every_term or weight > 0

    def _discrete_terms(self, model, model_trace, guide_trace, plate, args, kwargs, every_term):
        q_fn = guide_trace.nodes[self.latent_site]["fn"]
        prior, obs = _traces.check_model(model_trace, self.latent_site, self.obs_site, plate)
        values = prior["value"]
        K, B = values.shape[0], plate.size

        log_q = _traces.flat_batch(q_fn.log_prob(values), self.latent_site, (K,), B)
        log_p = _traces.flat_batch(prior["fn"].log_prob(values), self.latent_site, (K,), B)
        log_lik = obs["fn"].log_prob(obs["value"])
        log_lik = _traces.flat_batch(scale_and_mask(log_lik, 1.0, obs["mask"]), self.obs_site, (K,), B)
        q = log_q.exp()
        # Latent values that q rules out contribute nothing, even where log q or log p is -inf.
        support = q > 0
        recon = (q * torch.where(support, log_lik, 0.0)).sum(0)
        kl = (q * torch.where(support, log_q - log_p, 0.0)).sum(0)
        num_data = plate.full_size or plate.size
        terms = {
            "recon": scale_and_mask(recon, obs["scale"]).sum() / num_data,
            "kl": scale_and_mask(kl, prior["scale"], prior["mask"]).sum() / num_data,
        }
        p = log_p.exp()
        if self._wants(self.marginal_weight, every_term):
            terms["marginal"] = categorical_kl(q.mean(1), p.mean(1))
        if self._wants(self.jsd_weight, every_term):
            if K < 2:
                raise ValueError(f"the JSD term needs a latent with at least 2 values; site {self.latent_site!r} has {K}")
            weights = {"prior": p, "posterior": q, "uniform": torch.full_like(q, 1.0 / K)}[self.jsd_mixture]
            terms["jsd"] = self._decoder_jsd(obs, weights, (K,), B).mean()
        if every_term:
            # I(example; z) on the minibatch = mean_i KL(q_i || mean_j q_j), exact.
            terms["mi"] = categorical_kl(q.T, q.mean(1)).mean()
        return terms

    def _continuous_terms(self, model, model_trace, guide_trace, plate, args, kwargs, every_term):
        latent = guide_trace.nodes[self.latent_site]
        q_fn, z = latent["fn"], latent["value"]
        B = plate.size
        prior, obs = _traces.check_model(model_trace, self.latent_site, self.obs_site, plate)
        p_fn = prior["fn"]

        log_q = _traces.flat_batch(q_fn.log_prob(z), self.latent_site, (), B)
        log_p = _traces.flat_batch(p_fn.log_prob(z), self.latent_site, (), B)
        log_lik = scale_and_mask(obs["fn"].log_prob(obs["value"]), 1.0, obs["mask"])
        log_lik = _traces.flat_batch(log_lik, self.obs_site, (), B)
        num_data = plate.full_size or plate.size
        terms = {
            "recon": scale_and_mask(log_lik, obs["scale"]).sum() / num_data,
            "kl": scale_and_mask(log_q - log_p, prior["scale"], prior["mask"]).sum() / num_data,
        }
        if self._wants(self.marginal_weight, every_term):
            if self._continuous_marginal(q_fn) == "moment":
                loc, scale = _traces.gaussian_params(q_fn, self.latent_site, B)
                prior_loc, prior_scale = _traces.gaussian_params(p_fn, self.latent_site, B)
                terms["marginal"] = moment_matched_kl(loc, scale, prior_loc, prior_scale)
            else:
                prior_draws = self._rsample(p_fn, (), "marginal='mmd'")
                terms["marginal"] = mmd(
                    z.reshape(B, -1),
                    prior_draws.reshape(B, -1),
                    kernel=self.kernel,
                    scales=self.kernel_scales,
                    bandwidth=self.bandwidth,
                    num_features=self.mmd_features,
                )
        if self._wants(self.jsd_weight, every_term):
            S = self.jsd_samples
            source = p_fn if self.jsd_mixture == "prior" else q_fn
            draws = self._rsample(source, (S,), "the JSD term")
            draws = draws.reshape((S,) + (1,) * (self.max_plate_nesting - len(source.batch_shape)) + draws.shape[1:])
            draw_trace = _traces.replay_with(model, guide_trace, self.latent_site, draws, args, kwargs)
            weights = z.new_full((S,), 1.0 / S)
            terms["jsd"] = self._decoder_jsd(draw_trace.nodes[self.obs_site], weights, (S,), B).mean()
        if every_term:
            # Minibatch estimate of I(example; z): log q(z_i|x_i) - log mean_j q(z_i|x_j).
            z_flat = z.reshape((B, 1) + q_fn.event_shape)
            cross = q_fn.log_prob(z_flat)
            if cross.shape != (B, B):
                raise _traces.UnsupportedModelError(
                    f"latent site {self.latent_site!r} must have batch shape ({B},), got {tuple(q_fn.batch_shape)}"
                )
            terms["mi"] = (log_q - (torch.logsumexp(cross, dim=1) - math.log(B))).mean()
        return terms

    def _continuous_marginal(self, q_fn):
        if self.marginal is not None:
            return self.marginal
        # Reported (weight zero) only: the moment-matched KL where it applies, else the MMD.
        return "moment" if isinstance(_traces.unwrap(q_fn)[0], torch.distributions.Normal) else "mmd"

    def _rsample(self, fn, sample_shape, purpose):
        if not fn.has_rsample:
            raise _traces.UnsupportedModelError(
                f"{purpose} draws latents from {type(_traces.unwrap(fn)[0]).__name__} at site "
                f"{self.latent_site!r}, which is not reparameterisable"
            )
        return fn.rsample(sample_shape)

    def _decoder_jsd(self, obs, weights, lead, batch_size):
        """Per-example JSD ``[B]`` between the decoder distributions stacked along the leading dim."""
        fn = obs["fn"]
        log_probs = _traces.factor_log_probs(fn, self.obs_site, lead, batch_size)
        if log_probs is not None:
            return jensen_shannon(log_probs.exp(), weights, log_probs=log_probs).sum(-1)
        draws = fn.rsample()
        cross = fn.log_prob(draws.unsqueeze(1))
        K = lead[0]
        cross = _traces.flat_batch(cross, self.obs_site, (K, K), batch_size)
        return monte_carlo_jensen_shannon(cross, weights)
