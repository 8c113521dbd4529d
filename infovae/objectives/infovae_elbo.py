r"""The InfoVAE objective as a :class:`pyro.infer.ELBO`.

For a conditional model :math:`p(z|x)\,p(y|x,z)` and guide :math:`q(z|x,y)` over N examples, the loss is
the negative of

.. math::

    \mathcal L = \sum_i \mathbb E_{q(z|x_i,y_i)}[\log p(y_i|x_i,z)]
        - \beta \sum_i \mathrm{KL}(q(z|x_i,y_i)\,\|\,p(z|x_i))
        - \gamma\, N\, D(q(z)\,\|\,p(z))
        + \delta\, N\, \overline{\mathrm{JSD}}

with :math:`\beta` = ``beta``, :math:`\gamma` = ``marginal_weight`` and :math:`\delta` = ``jsd_weight``,
so that always :math:`\text{loss} / N = -(\overline{\text{recon}} - \beta\,\overline{\text{KL}} - \gamma D
+ \delta\,\overline{\text{JSD}})`. With ``beta=1`` and the other weights zero the loss is the ordinary
negative ELBO: it equals :class:`~pyro.infer.TraceEnum_ELBO`'s for a discrete latent and
:class:`~pyro.infer.Trace_ELBO`'s (same noise) for a continuous one.

The computation of every term is backend-neutral and lives in :mod:`infovae.core.objective`, whose
docstring has the details (exact enumeration of a discrete latent, the marginal divergences, the JSD);
this module only reads Pyro traces for it. Randomness (continuous latents, the objective's own draws)
comes from torch's global random stream, as in Pyro's own ELBOs.
"""

import torch
from pyro import poutine
from pyro.infer.elbo import ELBO
from pyro.util import warn_if_nan

from infovae.core.arguments import DEFAULT_KERNEL_SCALES, TERMS
from infovae.core.objective import ArrayOps, InfoVAEObjective, TracePass
from infovae.core.sites import check_guide
from infovae.objectives import _traces, divergences

__all__ = ["InfoVAE_ELBO"]

OPS = ArrayOps(
    exp=torch.exp,
    where=lambda condition, values, other: torch.where(torch.as_tensor(condition, device=values.device), values, other),
    full=lambda shape, value, like: like.new_full(shape, value),
    logsumexp=lambda values, axis: torch.logsumexp(values, dim=axis),
    stack=torch.stack,
    divergences=divergences,
)


class _PyroPass(TracePass):
    """A pass through guide and model as Pyro traces hold it; draws come from torch's global stream."""

    def __init__(self, elbo, model, guide, args, kwargs):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        self.guide = _traces.sites(guide_trace)
        latent = check_guide(self.guide, elbo.latent_site, _traces.is_discrete, _traces.describe)
        self.discrete = _traces.is_discrete(latent.fn)
        if self.discrete:
            values = _traces.enumerated_support(latent.fn, elbo.max_plate_nesting)
            model_trace = _traces.replay_with(model, guide_trace, elbo.latent_site, values, args, kwargs)
        else:
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        self.model = _traces.sites(model_trace)
        self.traces = model_trace, guide_trace
        self.num_data = _traces.full_size(guide_trace, elbo.latent_site)
        self._replay = lambda value: _traces.replay_with(model, guide_trace, elbo.latent_site, value, args, kwargs)
        self._obs_site = elbo.obs_site

    def log_prob(self, fn, value):
        return fn.log_prob(value)

    def describe(self, fn):
        return _traces.describe(fn)

    def factor_log_probs(self, fn, site_name, lead, batch_size):
        return _traces.factor_log_probs(fn, site_name, lead, batch_size)

    def gaussian_params(self, fn, site_name, batch_size):
        return _traces.gaussian_params(fn, site_name, batch_size)

    def draw(self, fn, sample_shape, stream, index=0):
        return fn.rsample(sample_shape)

    def random_kwargs(self, stream):
        return {}

    def replay_obs(self, latent_value):
        return _traces.sites(self._replay(latent_value))[self._obs_site]


class InfoVAE_ELBO(InfoVAEObjective, ELBO):
    """InfoVAE objective for a conditional Pyro model/guide pair (the math: the module docstring and
    :mod:`infovae.core.objective`).

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

    _ops = OPS

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
        num_particles, max_plate_nesting = self._set_arguments(
            beta, marginal, marginal_weight, jsd_weight, latent_site, obs_site, kernel, kernel_scales, bandwidth,
            jsd_mixture, num_particles, max_plate_nesting, jsd_samples, mmd_features,
        )  # fmt: skip
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting)

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
        """The model's and the guide's trace of one pass (a discrete latent set to all its values)."""
        return _PyroPass(self, model, guide, args, kwargs).traces

    def _terms(self, model, guide, args, kwargs, every_term):
        wanted = self.wanted_terms(every_term)
        first = _PyroPass(self, model, guide, args, kwargs)
        self._check_kind(first)
        if first.discrete:
            terms = self._pass_terms(first, wanted)
        else:
            passes = [first] + [_PyroPass(self, model, guide, args, kwargs) for _ in range(self.num_particles - 1)]
            particles = [self._pass_terms(p, wanted) for p in passes]
            terms = {k: sum(p[k] for p in particles) / self.num_particles for k in particles[0]}
        return self._finish(terms, first.num_data)
