r"""The InfoVAE objective as a :class:`pyro.infer.ELBO`: the loss is the negative of

.. math:: \mathcal L = \sum_i \mathbb E_q[\log p(y_i|x_i,z)] - \beta \sum_i \mathrm{KL}(q(z|x_i,y_i)\,\|\,p(z|x_i))
    - \gamma N D(q(z)\,\|\,p(z)) + \delta N \overline{\mathrm{JSD}},

so that ``loss / N == -(recon - beta kl - marginal_weight D + jsd_weight jsd)``. With ``beta=1`` and the
other weights zero it is the ordinary negative ELBO: it equals :class:`~pyro.infer.TraceEnum_ELBO`'s for a
discrete latent and :class:`~pyro.infer.Trace_ELBO`'s (same noise) for a continuous one.

Every term is computed by the backend-neutral :mod:`infovae.core.objective` (whose docstring has the
details); this module reads Pyro traces for it. Randomness (continuous latents, the objective's own
draws) comes from torch's global random stream, as in Pyro's own ELBOs.
"""

import torch
from pyro.infer.elbo import ELBO
from pyro.util import warn_if_nan

from infovae.core.objective import ArrayOps, InfoVAEObjective, TracePass
from infovae.objectives import _traces, divergences

__all__ = ["InfoVAE_ELBO"]

OPS = ArrayOps(
    log=torch.log,
    exp=torch.exp,
    where=lambda condition, values, other: torch.where(torch.as_tensor(condition, device=values.device), values, other),
    full=lambda shape, value, like: like.new_full(shape, value),
    logsumexp=lambda values, axis: torch.logsumexp(values, dim=axis),
    broadcast_to=torch.broadcast_to,
    stack=torch.stack,
    divergences=divergences,
)


class _PyroPass(TracePass):
    """A pass through guide and model as Pyro traces hold it; draws come from torch's global stream."""

    def __init__(self, elbo, model, guide, args, kwargs):
        self._trace(elbo, model, guide, args, kwargs)

    def draw(self, fn, sample_shape, stream, index=0):
        return fn.rsample(sample_shape)

    def random_kwargs(self, stream):
        return {}


class InfoVAE_ELBO(InfoVAEObjective, ELBO):
    """InfoVAE objective for a conditional Pyro model/guide pair. The arguments are documented in
    :class:`~infovae.core.objective.InfoVAEObjective`: ``InfoVAE_ELBO(beta=1.0, marginal=None,
    marginal_weight=0.0, jsd_weight=0.0, latent_site=None, obs_site=None, kernel="imq",
    kernel_scales=(0.1, 0.2, 0.5, 1, 2, 5, 10), bandwidth=None, jsd_mixture="prior", num_particles=1,
    max_plate_nesting=None, jsd_samples=8, mmd_features=None, marginal_sites=None, **elbo_kwargs)``, the
    last being :class:`pyro.infer.ELBO`'s own (``vectorize_particles``, ``retain_graph``,
    ``strict_enumeration_warning``, ``ignore_jit_warnings``, ``jit_options``).

    Particles: ``num_particles`` passes, one after another, whose terms are averaged, with or without
    ``vectorize_particles`` (accepted, so that code written for Pyro's ELBOs runs, but the passes
    are not batched into one: the marginal divergence and the JSD are statistics of one pass's
    minibatch). A model whose latents are all discrete is exact in one pass, unless its plate draws
    the minibatch at random (``subsample_size``): then each pass has its own, as in Pyro's ELBOs."""

    _ops = OPS
    _traces = _traces

    def _init_elbo(self, num_particles, max_plate_nesting, **elbo_kwargs):
        if "tail_adaptive_beta" in elbo_kwargs or "max_iarange_nesting" in elbo_kwargs:
            raise TypeError("InfoVAE_ELBO does not take tail_adaptive_beta or max_iarange_nesting")
        # Pyro's base class adds a plate for vectorised particles to a finite nesting; this ELBO draws
        # its particles itself (one pass each), so it keeps the nesting of the model's own plates.
        ELBO.__init__(self, num_particles=num_particles, max_plate_nesting=float("inf"), **elbo_kwargs)
        self.max_plate_nesting = max_plate_nesting

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
        # Detached, so that no gradient hook is left on the graph. Not while torch.jit.trace records the
        # terms (the Pyro backend's step): the check is a value-dependent branch a trace cannot hold.
        if not torch.jit.is_tracing():
            warn_if_nan(terms["loss"].detach(), "loss")
        return terms

    def loss_terms(self, model, guide, *args, **kwargs):
        """Every term of the objective, as floats.

        ``loss`` is :meth:`loss`; the others are per-example: ``recon`` and ``kl`` are means over the
        data, ``marginal`` is D(q(z) || p(z)), ``jsd`` the mean JSD and ``mi`` the mutual information
        between example and latent on the minibatch (exact for a discrete latent, a minibatch estimate
        for a continuous one), so that ``loss / N == -(recon - beta*kl - marginal_weight*marginal +
        jsd_weight*jsd) + global_kl / N``, ``global_kl`` (a total, ``log q - log p`` of the latents
        outside the data plate) present only where the model has such latents. ``recon`` is the
        observed sites' log-likelihood; the model's factor sites (``pyro.factor``) are ``factor``, a
        per-example mean like ``recon``, present only where the model has them and counted in the loss
        as ``Trace_ELBO`` counts them, unweighted by ``beta`` (``- factor`` inside the bracket above). Terms with weight zero
        are computed too, after the loss's (so that ``loss`` is the one :meth:`loss` gives from the same
        random state); one that the pair does not support (the JSD of a Poisson or masked observation)
        is left out, with a warning that says why. When ``marginal`` is ``None`` the ``marginal`` term
        is the natural one for the latent (``"kl"`` discrete, ``"moment"`` continuous).

        A scale that handlers put on every site alike (``poutine.scale(model, s)`` and
        ``poutine.scale(guide, s)``, say ``s = 1/N``) multiplies every term and the loss by ``s``, as it
        does ``Trace_ELBO``'s loss. Where the sites' scales differ (a scale on the latent only), ``recon``
        and ``kl`` take each site's, as ``Trace_ELBO`` does; ``mi``, ``marginal`` and ``jsd``, statistics
        of the whole minibatch, then have no scale to take: they are left out here, and the loss refuses
        a non-zero weight on them.

        With several local latent sites, also per site (ELBO surgery, the sites in the guide's order;
        the math in :mod:`infovae.core.objective`): ``kl[site]`` (the terms of the KL chain rule, summing
        to ``kl``), ``mi[site]`` (the MI between example and the site given the sites before it, summing
        to ``mi``: exact over discrete sites, a minibatch estimate over continuous ones) and
        ``marginal_kl[site] = kl[site] - mi[site]`` (the KL between the aggregate posterior and the
        prior of the site given the sites before it, where its prior depends on those alone).
        """
        with torch.no_grad():
            terms = self._terms(model, guide, args, kwargs, every_term=True)
        return {name: float(value) for name, value in terms.items()}

    # -- the computation ----------------------------------------------------------------------

    def _get_trace(self, model, guide, args, kwargs):
        raise NotImplementedError("InfoVAE_ELBO reads its own passes (_PyroPass), not Pyro's trace pairs")

    def _terms(self, model, guide, args, kwargs, every_term):
        weighted = self.wanted_terms(False)
        first = _PyroPass(self, model, guide, args, kwargs)
        self._check_kind(first)
        passes = [first]
        if not first.deterministic:
            passes += [_PyroPass(self, model, guide, args, kwargs) for _ in range(self.num_particles - 1)]
        particles = [self._pass_terms(p, weighted) for p in passes]
        if every_term:
            # The reported terms' draws after all of the loss's: the loss is then the one loss() makes.
            particles = [self._reported(p, terms) for p, terms in zip(passes, particles)]
        terms = particles[0] if len(particles) == 1 else {k: sum(p[k] for p in particles) / len(particles) for k in particles[0]}
        return self._finish(terms, first.num_data)
