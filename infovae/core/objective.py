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

Handlers' scales and masks act as in ``Trace_ELBO``: each site's log-probability carries its own (a scale
or mask on the latent in the guide only weighs ``log q``, in the model only ``log p``). The batch-level
terms (``mi``, ``D``, the JSD) carry the scale that handlers put on every site alike
(``poutine.scale(model, s)``, ``poutine.scale(guide, s)``), so that the loss is then ``s`` times the plain
one and the identity above holds for the scaled terms; where the sites' scales differ there is no such
scale, and a weighted batch-level term is refused.

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
  Monte-Carlo estimate. The draws are replayed stacked on a leading dim where every decoder's batch
  shape then shows that dim left of the plates, and once per draw otherwise (a decoder written for one
  draw, or one that ignores the latent); where ``jsd_samples`` is the batch size the shapes cannot tell,
  and the draws are replayed one by one.
- ``mi``: the mutual information between example and latent on the minibatch, exact for a discrete
  latent, the minibatch estimate :math:`\log q(z_i|x_i) - \log \frac1B\sum_j q(z_i|x_j)` otherwise.

Several sites (:func:`~infovae.core.sites.guide_roles` / :func:`~infovae.core.sites.find_roles` say
which): every site the guide samples inside the data plate is a local latent, every site the model
observes is data. The discrete latents are enumerated jointly in the guide, each on a dim of its own
left of the plates (so later guide sites may depend on them), and every expectation above is taken
exactly over their joint configurations :math:`c` with weights :math:`q(c|x_i)`, the continuous latents
sampled once per configuration; at ``beta=1`` that is ``TraceEnum_ELBO``'s loss. The per-example KL is
:math:`\sum_s \mathbb E_q[\log q(z_s|\cdot) - \log p(z_s|\cdot)]`, the chain rule's split of the joint KL,
all parts weighed by the one ``beta``; ``recon`` sums the observed sites' log-likelihoods; the model's
factor sites (``pyro.factor``, ``numpyro.factor``: in the data plate, part of :math:`\log p(y, z|x)` but
neither an observation's likelihood nor a latent's prior) are the term ``factor``, their per-example mean
like ``recon``'s and, as in ``Trace_ELBO``, in the loss unweighted by ``beta``
(:math:`\text{loss} = -N(\overline{\text{recon}} + \overline{\text{factor}} - \dots)`); the JSD compares the decoders
at the configurations (continuous latents at their draws) and is the sum over observed sites of their
JSDs (over factors: the sum of per-factor JSDs, as for one site). ``mi`` is the joint
:math:`I(\text{example}; z_1..z_S)`. Sites outside every plate (global latents) add ``log q - log p``
once, unweighted (``global_kl``).

ELBO surgery per site (``loss_terms``), each part named for what it is and the parts summing to the
totals. With :math:`\bar q(\cdot) = \frac1B \sum_j q(\cdot|x_j)` the minibatch's aggregate posterior and
the sites in the guide's order:

.. math::

    \mathrm{kl}[s] &= \mathbb E_i \mathbb E_q[\log q(z_s|z_{<s},x_i) - \log p(z_s|\mathrm{pa}(z_s))],
        \qquad \textstyle\sum_s \mathrm{kl}[s] = \mathrm{kl}, \\
    \mathrm{mi}[s] &= I(\text{example}; z_s \mid z_{<s})
        = \mathbb E_i \mathbb E_q[\log q(z_s|z_{<s},x_i) - \log \bar q(z_s|z_{<s})],
        \qquad \textstyle\sum_s \mathrm{mi}[s] = \mathrm{mi} \text{ (chain rule)}, \\
    \mathrm{marginal\_kl}[s] &= \mathrm{kl}[s] - \mathrm{mi}[s]
        = \mathbb E_{\bar q(z_{<s})} \mathrm{KL}(\bar q(z_s|z_{<s}) \,\|\, p(z_s|z_{<s}))
        \text{ where the prior of } z_s \text{ depends on } z_{<s} \text{ alone}.

So ``marginal_kl[s] >= 0`` there (a second site that copies the first has ``mi``, ``kl`` and
``marginal_kl`` 0), and a site independent of the others in the aggregate has its single-site numbers.
Exact over the enumerated configurations; over sampled latents, the minibatch estimates of ``mi``, whose
cross terms :math:`q(z_s|z_{<s},x_j)` take example j's own draws of the continuous latents before
:math:`z_s` (exact where a continuous latent's posterior depends on the discrete latents only). Like
``mi``, the per-site terms are those of the minibatch's examples: of the whole data set, the minibatch
aggregate makes them biased estimates (``mi`` at most :math:`\log B`).

A backend supplies three things: ``_ops``, an :class:`ArrayOps` of its array functions and its
``divergences`` module; ``_traces``, its module that reads distributions (``unwrap``, ``describe``,
``log_prob``, ``class_log_probs``); and a :class:`TracePass` per pass through guide and model.
"""

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from infovae.core.arguments import (
    DEFAULT_KERNEL_SCALES,
    TERMS,
    check_block_size,
    check_elbo_args,
    check_latent_kind,
    weights_from_alpha_lambda,
)
from infovae.core.marginals import MARGINALS, backend_of
from infovae.core.sites import (
    Roles,
    Site,
    check_plate_sizes,
    find_roles,
    flat_batch,
    guide_roles,
    joint_batch,
    plate_nesting,
)
from infovae.errors import UnsupportedModelError

# mmd_block_size="auto": blocks of this many examples, above twice as many.
AUTO_BLOCK_SIZE = 128

__all__ = ["AUTO_BLOCK_SIZE", "ArrayOps", "InfoVAEObjective", "TracePass", "assemble_loss", "scale_and_mask"]


@dataclass(frozen=True)
class ArrayOps:
    """The array functions the computation needs, in one backend's spelling."""

    log: Callable
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
    """``-N (recon + factor - beta kl - marginal_weight D + jsd_weight jsd) + global_kl`` from
    per-example terms (``global_kl``: the global latents' ``log q - log p``, a total); a term absent
    from ``terms`` counts as zero. Works on floats and on either backend's arrays (the weights
    may be traced values, as in a vectorised sweep)."""
    loss = -(terms["recon"] - beta * terms["kl"]) * num_data
    if "factor" in terms:
        loss = loss - terms["factor"] * num_data
    if "global_kl" in terms:
        loss = loss + terms["global_kl"]
    if "marginal" in terms:
        loss = loss + marginal_weight * num_data * terms["marginal"]
    if "jsd" in terms:
        loss = loss - jsd_weight * num_data * terms["jsd"]
    return loss


class TracePass(ABC):
    """One pass through a guide and the model replayed against it, as the objective reads it.

    A backend wraps its guide and model (parameters, seeds) and calls :meth:`_trace`, which traces the
    guide with its local discrete latents enumerated, replays the model against it and finds every
    site's role; the objective then only asks the pass for its random draws, which differ between
    backends.
    """

    #: The guide's sample sites, by name.
    guide: Mapping[str, Site]
    #: The model's sample sites, by name.
    model: Mapping[str, Site]
    #: What each site is to the objective.
    roles: Roles
    #: The data plate's full size N, the minibatch size B and the plate's batch dim.
    num_data: Any
    batch_size: int
    plate_dim: int
    #: The enumerated configurations' dims (the last discrete latent's leftmost), and the plates' dims.
    enum_shape: tuple[int, ...]
    plate_shape: tuple[int, ...]
    #: Whether the guide's plate drew its minibatch at random (``subsample_size`` below the size, no
    #: indices given): then each pass has a minibatch of its own.
    random_subsample: bool

    def _trace(self, elbo, model, guide, args, kwargs):
        """Trace ``guide`` (its local discrete latents set to all their values) and replay ``model``
        against it; returns the guide's trace."""
        traces = elbo._traces
        if elbo.max_plate_nesting is None:
            # Guessed once, as Pyro's ELBOs do, from a pass with the guide's own draws that leaves the
            # random stream as it was.
            with traces.keep_random_state():
                plain, _ = traces.trace_guide(guide, args, kwargs)
                guide_roles(traces.sites(plain), elbo.latent_site, traces.is_discrete, traces.describe)
                model_sites = traces.sites(traces.replay_with(model, plain, {}, args, kwargs))
            elbo.max_plate_nesting = elbo._guessed_nesting = plate_nesting(traces.sites(plain), model_sites)
        nesting = elbo.max_plate_nesting
        guide_trace, self.random_subsample = traces.trace_guide(guide, args, kwargs, nesting)
        self.guide = traces.sites(guide_trace)
        roles = guide_roles(self.guide, elbo.latent_site, traces.is_discrete, traces.describe)
        self.model = traces.sites(traces.replay_with(model, guide_trace, {}, args, kwargs))
        self.roles = roles = find_roles(roles, self.model, elbo.obs_site)
        check_plate_sizes(roles, self.guide, self.model)
        first = self.guide[roles.local[0]]
        self.num_data, self.batch_size, self.plate_dim = first.num_data, first.plate_size, first.plate_dim
        if nesting + self.plate_dim < 0:
            if nesting == elbo._guessed_nesting:
                # Guessed once per instance, as Pyro's ELBOs guess it: a later pair may nest deeper.
                way_out = "it was guessed from the first model/guide pair this InfoVAE_ELBO ran: use a new InfoVAE_ELBO, or"
            else:
                way_out = "leave it out to have it guessed, or"
            raise UnsupportedModelError(
                f"max_plate_nesting={nesting} but site {first.name!r} is in a plate at dim={self.plate_dim}: {way_out} "
                f"pass max_plate_nesting >= {-self.plate_dim}"
            )
        self.enum_shape = tuple(self.guide[name].value.shape[0] for name in reversed(roles.discrete))
        self.plate_shape = tuple(self.batch_size if i == nesting + self.plate_dim else 1 for i in range(nesting))
        self._replay = lambda values: traces.sites(traces.replay_with(model, guide_trace, values, args, kwargs))
        return guide_trace

    @property
    def exact(self) -> bool:
        """Whether every latent is summed out, none sampled (the minibatch may still be: :attr:`deterministic`)."""
        return not self.roles.continuous and not self.roles.global_

    @property
    def deterministic(self) -> bool:
        """Whether every pass gives the same terms: exact, on a minibatch not drawn at random. Otherwise
        the loss averages ``num_particles`` passes, each with draws (and a minibatch) of its own, as
        ``Trace_ELBO`` and ``TraceEnum_ELBO`` average their particles."""
        return self.exact and not self.random_subsample

    def joint(self, ops: "ArrayOps", values, site_name: str):
        """Per-example values ``[*enum, *plates]`` as ``[J, B]`` (:func:`~infovae.core.sites.joint_batch`)."""
        return joint_batch(ops, values, site_name, self.enum_shape, self.batch_size, self.plate_shape)

    def replay_obs(self, values) -> dict[str, Site]:
        """The model's observed sites, replayed with the latents in ``values`` set to those values."""
        replayed = self._replay(values)
        return {name: replayed[name] for name in self.roles.observed}

    @abstractmethod
    def draw(self, fn, sample_shape, stream, index=0):
        """``fn.rsample(sample_shape)`` for the objective's own use; ``stream`` (``"marginal"``, ``"jsd"``,
        ``"decoder"``) and ``index`` name the draw, so that each gets randomness of its own."""

    @abstractmethod
    def random_kwargs(self, stream) -> dict:
        """Extra keyword arguments a random divergence needs for ``stream`` (a key, in JAX)."""


def _same_weight(a, b) -> bool:
    """Whether two sites' scales are the same one: the same object, or equal numbers (a plate's scale
    may be a number or, where its size is read from a tensor under ``torch.jit.trace``, a 0-d tensor; a
    per-example scale is never the same as another)."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    try:
        return float(a) == float(b)
    except (TypeError, ValueError, RuntimeError):  # a per-example tensor, or a value JAX is tracing
        return False


class InfoVAEObjective:
    """The InfoVAE objective for a conditional model/guide pair (the math: the module docstring), as
    both backends' ``InfoVAE_ELBO`` construct it; a backend's subclass of its own ``ELBO`` mixes it in
    and sets ``_ops``, ``_traces`` and ``_init_elbo``.

    :param float beta: weight of the per-example KL (``1 - alpha``).
    :param str marginal: ``None`` or a registered marginal divergence (:mod:`infovae.core.marginals`):
        ``"kl"`` or ``"kl_corrected"`` (discrete latent), ``"moment"`` or ``"mmd"`` (continuous).
    :param float marginal_weight: weight ``gamma`` of the marginal divergence (``alpha + lambda - 1``).
    :param float jsd_weight: weight ``delta`` of the inter-latent Jensen–Shannon reward.
    :param latent_site: ``None`` (every site the guide samples is a latent), or the name (or names) of
        the latent sites, which must then be all the guide samples.
    :param obs_site: ``None`` (every site the model observes is data), or the name (or names) of the
        observed sites to use.
    :param str kernel: MMD kernel, ``"imq"`` or ``"rbf"``.
    :param kernel_scales: MMD kernel scales.
    :param bandwidth: ``None`` (base width ``2 d``), ``"median"`` or a positive number.
    :param str jsd_mixture: JSD mixture weights, ``"prior"``, ``"posterior"`` or ``"uniform"``.
    :param int num_particles: passes per step, averaged (each draws its continuous latents and, from a
        plate with ``subsample_size``, its minibatch); one pass where neither is drawn (exact).
    :param int max_plate_nesting: how many batch dims the plates take; the enumeration dim goes left of
        them. ``None``: guessed from the first pass (as Pyro's ELBOs guess it).
    :param int jsd_samples: latent draws compared by the JSD term for a continuous latent.
    :param int mmd_features: random Fourier features per kernel scale for the MMD, or ``None`` for the
        exact quadratic-time statistic (use ~32 for batches of thousands, where the exact one dominates).
    :param mmd_block_size: ``None``: a sample-based marginal divergence (``"mmd"``) on the whole
        minibatch, ``O(B^2)``; an integer ``b``: on consecutive blocks of about ``b`` examples (posterior
        and prior draws alike), averaged, ``O(B b)``; ``"auto"``: blocks of 128 above 256 examples. Each
        block's statistic is unbiased for D(q(z) || p(z)) (the examples of a minibatch are exchangeable),
        so their mean is too: an incomplete U-statistic that leaves out the pairs across blocks. Its
        variance: where q(z) differs from p(z) the leading O(1/B) term is the full statistic's (every
        example still enters once); near q(z) = p(z), where the full statistic's variance is O(1/B^2),
        it is about ``B / b`` times larger (8x at B=1024, b=128), yet ``B / b`` times below the full
        statistic's on a batch of ``b``. Ignored with ``mmd_features``.
    :param marginal_sites: ``None``: the marginal divergence acts on the joint aggregate posterior of
        the local latents (which must then be of one kind); or a mapping ``{site: divergence}`` (or a
        sequence of sites, each taking ``marginal``): the sum of one divergence per site, each on that
        site's own aggregate posterior.
    :param elbo_kwargs: the backend's ``ELBO`` base-class arguments (Pyro: ``vectorize_particles``,
        ``retain_graph``, ``strict_enumeration_warning``, ``ignore_jit_warnings``, ``jit_options``).
    """

    _ops: ArrayOps
    _traces: ModuleType

    def __init__(
        self,
        beta: float = 1.0,
        marginal: str | None = None,
        marginal_weight: float = 0.0,
        jsd_weight: float = 0.0,
        latent_site: str | tuple[str, ...] | None = None,
        obs_site: str | tuple[str, ...] | None = None,
        kernel: str = "imq",
        kernel_scales=DEFAULT_KERNEL_SCALES,
        bandwidth: str | float | None = None,
        jsd_mixture: str = "prior",
        num_particles: int = 1,
        max_plate_nesting: int | None = None,
        jsd_samples: int = 8,
        mmd_features: int | None = None,
        mmd_block_size: int | str | None = None,
        marginal_sites=None,
        **elbo_kwargs,
    ):
        args = check_elbo_args(
            beta, marginal, marginal_weight, jsd_weight, latent_site, obs_site, kernel, kernel_scales, bandwidth,
            jsd_mixture, num_particles, max_plate_nesting, jsd_samples, mmd_features, marginal_sites,
        )  # fmt: skip
        self.mmd_block_size = check_block_size(mmd_block_size)
        # max_plate_nesting as guessed from the first pass (None: not guessed), to say so in errors.
        self._guessed_nesting: int | None = None
        num_particles, max_plate_nesting = args.pop("num_particles"), args.pop("max_plate_nesting")
        for name, value in args.items():
            setattr(self, name, value)
        self._init_elbo(num_particles, max_plate_nesting, **elbo_kwargs)

    def _init_elbo(self, num_particles: int, max_plate_nesting: int | None, **elbo_kwargs):
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
        """That the marginal divergence(s) and the JSD mixture fit the latents found."""
        roles, describe = tp.roles, self._traces.describe
        kinds = {name: "discrete" if name in roles.discrete else "continuous" for name in roles.local}

        def subject(names):
            return ", ".join(f"site {n!r} is {describe(tp.guide[n].fn)} ({kinds[n]})" for n in names)

        if self.marginal_sites is not None:
            for name, marginal in self.marginal_sites.items():
                if name not in kinds:
                    raise UnsupportedModelError(
                        f"marginal_sites names {name!r}, which is not a local latent site (they are {list(roles.local)})"
                    )
                check_latent_kind(marginal, "prior", kinds[name], subject([name]))
        elif len(set(kinds.values())) > 1 and self.marginal is not None:
            raise UnsupportedModelError(
                f"marginal={self.marginal!r} acts on the joint aggregate posterior of latents of one kind, but "
                f"{subject(roles.local)}: pass marginal_sites={{site: divergence}} to add one divergence per site"
            )
        elif self.marginal is not None:
            check_latent_kind(self.marginal, "prior", kinds[roles.local[0]], subject(roles.local))
        if roles.continuous:
            check_latent_kind(None, self.jsd_mixture, "continuous", subject(roles.continuous))

    # -- the terms of one pass ------------------------------------------------------------------

    def _rsample(self, tp: TracePass, fn, sample_shape, purpose, stream, site_name, index=0):
        if not fn.has_rsample:
            raise UnsupportedModelError(
                f"{purpose} draws from {self._traces.describe(fn)} at site {site_name!r}, which is not reparameterisable"
            )
        return tp.draw(fn, sample_shape, stream, index)

    def _pass_terms(self, tp: TracePass, wanted: frozenset, optional: bool = False, known: dict | None = None) -> dict:
        """Per-example ``recon`` and ``kl`` and the ``wanted`` optional terms of one pass; with several
        local latents also ``kl[site]`` (and ``mi[site]``, ``marginal_kl[site]`` when ``mi`` is wanted).
        With ``optional``, an optional term the pair does not support is left out, with a warning,
        rather than raising; ``known``: the pass's terms computed before, whose ``recon`` and ``kl``
        are taken rather than computed again (both: :meth:`_reported`)."""
        ops, traces, roles, N = self._ops, self._traces, tp.roles, tp.num_data
        raw_q = {n: traces.log_prob(tp.guide[n].fn, tp.guide[n].value) for n in roles.local}
        raw_p = {n: traces.log_prob(tp.model[n].fn, tp.model[n].value) for n in roles.local}
        log_q = {n: tp.joint(ops, raw_q[n], n) for n in roles.local}
        log_p = {n: tp.joint(ops, raw_p[n], n) for n in roles.local}
        # q of each configuration of the discrete latents, [J, B] (their product: each is q given the ones before).
        q = ops.exp(sum(log_q[n] for n in roles.discrete)) if roles.discrete else None

        def expect(values):
            """``E_q`` over the configurations, per example; configurations q rules out count nothing,
            even where a log-probability there is -inf."""
            return values.sum(0) if q is None else (q * ops.where(q > 0, values, 0.0)).sum(0)

        def weighed(site, values):
            """A site's log-probabilities with its own scale and mask, as ``[J, B]``."""
            return tp.joint(ops, scale_and_mask(ops, values, site.scale, site.mask), site.name)

        several = len(roles.local) > 1
        if known is not None:
            kls = {n: known[f"kl[{n}]"] for n in roles.local} if several else {roles.local[0]: known["kl"]}
            return self._batch_terms(tp, log_q, log_p, q, expect, kls, dict(known), wanted, optional)

        def expected_sum(names):
            """``E_q`` of the model sites' log-probabilities, summed over the sites and the minibatch,
            each with its own mask and scale."""
            total = 0.0
            for name in names:
                site = tp.model[name]
                values = tp.joint(ops, scale_and_mask(ops, traces.log_prob(site.fn, site.value), mask=site.mask), name)
                total = total + scale_and_mask(ops, expect(values), site.scale).sum()
            return total

        def site_kl(n):
            """``KL`` of latent ``n`` summed over the minibatch: log q with the guide site's scale and mask,
            log p with the model site's, as Trace_ELBO weighs each site (a handler may scale or mask the
            latent on one side only). Where both sides carry the same (the plate's scale alone, say),
            the difference is weighed once, after the expectation, as the backends' numbers always were."""
            guide, model = tp.guide[n], tp.model[n]
            if _same_weight(guide.scale, model.scale) and guide.mask is model.mask:
                return scale_and_mask(ops, expect(log_q[n] - log_p[n]), model.scale, model.mask).sum()
            return expect(weighed(guide, raw_q[n]) - weighed(model, raw_p[n])).sum()

        kls = {n: site_kl(n) / N for n in roles.local}
        terms = {"recon": expected_sum(roles.observed) / N, "kl": sum(kls.values())}
        if roles.factors:
            terms["factor"] = expected_sum(roles.factors) / N
        if roles.global_:
            terms["global_kl"] = self._global_kl(tp)
        if several:
            terms.update({f"kl[{n}]": kl for n, kl in kls.items()})
        return self._batch_terms(tp, log_q, log_p, q, expect, kls, terms, wanted, optional)

    def _batch_terms(self, tp: TracePass, log_q, log_p, q, expect, kls, terms, wanted, optional) -> dict:
        """``terms`` (``recon``, ``kl``, ...) with the ``wanted`` terms of the whole minibatch added, from
        the pass's per-example log-probabilities ``[J, B]`` and the per-site ``kls``
        (:meth:`_pass_terms`)."""
        roles, several = tp.roles, len(tp.roles.local) > 1
        scale = self._pair_scale(tp)

        def batch_term(name, compute):
            """A term of the whole minibatch, ``compute()``, before the pair's scale; ``None`` where it is
            left out."""
            try:
                if scale is None:
                    raise UnsupportedModelError(
                        f"the {name!r} term is a statistic of the whole minibatch, so it takes a scale that a handler "
                        f"puts on every site alike (poutine.scale around both model and guide), but the sites' scales "
                        f"differ ({self._describe_scales(tp)}): scale every site alike (use beta to weigh the KL), or "
                        "set the term's weight to 0"
                    )
                return compute()
            except UnsupportedModelError as error:
                if not optional:
                    raise
                warnings.warn(f"loss_terms leaves out the term {name!r}: {error}", stacklevel=2)
                return None

        def scaled(value):
            return value if scale == 1.0 else value * scale

        mi = batch_term("mi", lambda: self._mutual_information(tp, log_q, q, expect, roles.local)) if "mi" in wanted else None
        if mi is not None:
            terms["mi"] = scaled(mi)
            if several:
                for n, site_mi in self._site_mutual_information(tp, log_q, expect).items():
                    terms[f"mi[{n}]"] = scaled(site_mi)
                    terms[f"marginal_kl[{n}]"] = kls[n] - terms[f"mi[{n}]"]
        if "marginal" in wanted:
            # ELBO surgery's marginal KL (mean KL - MI), both before the pair's scale.
            surgery = None if mi is None else (terms["kl"] if scale == 1.0 else terms["kl"] / scale) - mi
            marginal = batch_term("marginal", lambda: self._marginal_term(tp, log_p, q, surgery))
            if marginal is not None:
                terms["marginal"] = scaled(marginal)
        if "jsd" in wanted:
            jsd = batch_term("jsd", lambda: self._jsd_term(tp, log_p, q))
            if jsd is not None:
                terms["jsd"] = scaled(jsd)
        return terms

    def _reported(self, tp: TracePass, terms: dict) -> dict:
        """A pass's ``terms`` (those the loss weighs, :meth:`_pass_terms`) with the others that
        ``loss_terms`` reports added: computed after every pass's weighted terms, so that the loss's
        random draws are the ones ``loss`` makes, and left out (with a warning) where the pair does not
        support them, as the loss does not need them."""
        extra = self.wanted_terms(True) - self.wanted_terms(False)
        return self._pass_terms(tp, extra, optional=True, known=terms)

    @staticmethod
    def _handler_scales(tp: TracePass) -> dict:
        """Each site's scale without the data plate's own ``size / subsample_size`` (the scale handlers
        put on it), by ``"model"``/``"guide"`` and name; ``None`` where it is not one number."""
        out = {}
        for side, sites in (("guide", tp.guide), ("model", tp.model)):
            for site in sites.values():
                plate = site.num_data / site.plate_size if site.plates else 1.0
                try:
                    out[side, site.name] = float(1.0 if site.scale is None else site.scale) / plate
                except Exception:  # noqa: BLE001  (a per-example tensor, or a traced value)
                    out[side, site.name] = None
        return out

    def _pair_scale(self, tp: TracePass):
        """The scale that handlers put on every site of the pair alike (``poutine.scale(model, s)`` and
        ``poutine.scale(guide, s)``: the loss is then ``s`` times the plain one, as ``Trace_ELBO``'s), or
        ``None`` where the sites' scales differ."""
        scales = list(self._handler_scales(tp).values())
        first = scales[0]
        if first is None or any(s is None or not math.isclose(s, first, rel_tol=1e-9) for s in scales):
            return None
        return 1.0 if math.isclose(first, 1.0, rel_tol=1e-12) else first

    def _describe_scales(self, tp: TracePass) -> str:
        return ", ".join(
            f"{side} site {name!r}: {'per example' if s is None else f'{s:g}'}"
            for (side, name), s in self._handler_scales(tp).items()
        )

    def _global_kl(self, tp: TracePass):
        """``log q - log p`` summed over the global latents (outside the data plate): their ordinary
        ELBO terms, once per dataset and not weighted by ``beta``."""
        ops, total = self._ops, 0.0
        for name in tp.roles.global_:
            guide, model = tp.guide[name], tp.model[name]
            log_q = scale_and_mask(ops, self._traces.log_prob(guide.fn, guide.value), guide.scale, guide.mask)
            log_p = scale_and_mask(ops, self._traces.log_prob(model.fn, model.value), model.scale, model.mask)
            shape = max(tuple(log_q.shape), tuple(log_p.shape), key=len)
            # Outside every plate a site has no batch dims; Pyro's ELBOs refuse any under validation
            # (check_site_shape), where dims beyond the plates' are refused always.
            undeclared = any(size != 1 for size in (*log_q.shape, *log_p.shape))
            if len(shape) > self.max_plate_nesting or (undeclared and self._traces.validation_enabled()):
                raise UnsupportedModelError(self._global_dims_message(tp, name, shape))
            total = total + log_q.sum() - log_p.sum()
        return total

    def _global_dims_message(self, tp: TracePass, name, shape) -> str:
        """Why global latent ``name``'s log-probabilities of ``shape`` have dims left of the plates':
        the enumerated discrete latents' (the guide draws it after them, from them), or batch dims that
        the latent never declared as its event."""
        lead, enum = shape[: len(shape) - self.max_plate_nesting], tp.enum_shape
        if lead and enum and len(lead) <= len(enum) and all(s in (1, e) for s, e in zip(reversed(lead), reversed(enum))):
            return (
                f"global latent site {name!r} depends on the enumerated discrete latent(s) {list(tp.roles.discrete)}; "
                "sample it before them in the guide, or inside the data plate"
            )
        if lead:
            return (
                f"global latent site {name!r} gives log-probabilities of shape {shape}, more batch dims than the "
                f"plates take (max_plate_nesting={self.max_plate_nesting}): declare the latent's dims with .to_event()"
            )
        return (
            f"global latent site {name!r} gives log-probabilities of shape {shape}, but a site outside every plate "
            "has no batch dims (Pyro's ELBOs refuse them too, under validation): declare the latent's dims with "
            ".to_event()"
        )

    def _cross_log_q(self, tp: TracePass, log_q, name):
        """``[B_i, J, B_j]``: log q of example i's value of latent ``name`` under example j's posterior
        (for each configuration of the discrete latents; a discrete latent's value is the configuration's,
        the same for every i)."""
        ops, site = self._ops, tp.guide[name]
        B, J = tp.batch_size, log_q[name].shape[0]
        if name in tp.roles.discrete:
            return log_q[name].reshape((1, J, B))
        fn, event = site.fn, tuple(site.fn.event_shape)
        full = tp.enum_shape + tp.plate_shape
        values = ops.broadcast_to(site.value, full + event).reshape((J, B) + event).swapaxes(0, 1)
        cross = fn.log_prob(values.reshape((B,) + tp.enum_shape + (1,) * len(tp.plate_shape) + event))
        if math.prod(cross.shape) != B * J * B:
            raise UnsupportedModelError(
                f"latent site {name!r} must have the data plate as its only batch dim, got batch shape {tuple(fn.batch_shape)}"
            )
        return ops.broadcast_to(cross, (B,) + full).reshape((B, J, B))

    def _mutual_information(self, tp: TracePass, log_q, q, expect, names):
        """I(example; latents ``names``) on the minibatch: ``E_i E_q [log q(v|x_i) - log mean_j q(v|x_j)]``,
        exact over the enumerated configurations, a minibatch estimate over the sampled latents."""
        ops, B = self._ops, tp.batch_size
        cross = sum(self._cross_log_q(tp, log_q, n) for n in names)
        aggregate = ops.logsumexp(cross, 2) - math.log(B)  # [B_i, J]
        own = sum(log_q[n] for n in names)  # [J, B]
        return expect(own - aggregate.swapaxes(0, 1)).mean()

    def _site_mutual_information(self, tp: TracePass, log_q, expect) -> dict:
        r"""Per local latent :math:`z_s`, in the guide's order, the chain rule's term of the joint MI on
        the minibatch (the module docstring: ELBO surgery per site):

        .. math:: I(\text{example}; z_s \mid z_{<s}) = \mathbb E_i \mathbb E_{q(z|x_i)}\Big[\log q(z_s|z_{<s},x_i)
            - \log \frac{\sum_j q(z_{\le s}|x_j)}{\sum_j q(z_{<s}|x_j)}\Big],

        which sum to :meth:`_mutual_information`'s joint MI (the aggregates telescope)."""
        ops, B = self._ops, tp.batch_size
        out, cross, before = {}, 0.0, math.log(B)  # before: log sum_j q(z_<s|x_j), log B for s = 1
        for name in tp.roles.local:
            cross = cross + self._cross_log_q(tp, log_q, name)  # [B_i, J, B_j]: log q(z_<=s of i | x_j)
            upto = ops.logsumexp(cross, 2)  # [B_i, J]
            out[name] = expect(log_q[name] - (upto - before).swapaxes(0, 1)).mean()
            before = upto
        return out

    # -- the marginal divergence ----------------------------------------------------------------

    def _marginal_term(self, tp: TracePass, log_p, q, surgery):
        """``D(q(z) || p(z))``: on the joint aggregate posterior, or summed over ``marginal_sites``;
        ``surgery`` (ELBO surgery's marginal KL, or ``None`` where the MI is not computed) for latents
        of several kinds."""
        roles = tp.roles
        if self.marginal_sites is not None:
            return sum(self._site_marginal(tp, log_p, q, name, marginal) for name, marginal in self.marginal_sites.items())
        if len(roles.local) == 1:
            return self._site_marginal(tp, log_p, q, roles.local[0], self.marginal)
        if not roles.continuous:
            # The discrete latents jointly: one categorical over the J configurations.
            p = self._ops.exp(sum(log_p[n] for n in roles.discrete))
            return self._divergence(tp, self.marginal or "kl", "", probs=(q.T, p.T))
        if self.marginal is None and surgery is not None:
            # Natural term for latents of several kinds: ELBO surgery's marginal KL (mean KL - MI).
            return surgery
        raise UnsupportedModelError(
            f"the joint marginal divergence of several latent sites {list(roles.local)} with continuous ones among "
            "them is not supported: pass marginal_sites={site: divergence} to add one divergence per site"
        )

    def _site_marginal(self, tp: TracePass, log_p, q, name, marginal):
        """The divergence ``marginal`` (``None``: the natural one) between latent ``name``'s aggregate
        posterior and prior on the minibatch."""
        ops, roles, B = self._ops, tp.roles, tp.batch_size
        if name in roles.discrete:
            p = ops.exp(sum(log_p[n] for n in roles.discrete))
            axis = len(tp.enum_shape) - 1 - roles.discrete.index(name)
            others = tuple(i for i in range(len(tp.enum_shape)) if i != axis)

            def marginalise(probs):
                probs = probs.reshape(tp.enum_shape + (B,))
                return (probs.sum(others) if others else probs).T

            return self._divergence(tp, marginal or "kl", name, probs=(marginalise(q), marginalise(p)))
        latent, prior = tp.guide[name], tp.model[name]
        if math.prod(latent.fn.batch_shape) != B:
            raise UnsupportedModelError(
                f"latent site {name!r} depends on the enumerated discrete latent(s) {list(roles.discrete)}, so its "
                f"aggregate posterior is a mixture that the marginal divergence does not take: leave {name!r} out "
                "of marginal_sites"
            )
        if marginal is None:
            marginal = "moment" if self._traces.describe(latent.fn) == "Normal" else "mmd"
        return self._divergence(tp, marginal, name, latent=latent, prior=prior)

    def _divergence(self, tp: TracePass, name, site_name, probs=None, latent=None, prior=None):
        """The registered divergence ``name``, called with what its registration says it takes."""
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
        B = tp.batch_size
        if spec.inputs == "gaussian":
            loc, scale = self._gaussian_params(latent.fn, B, site_name)
            prior_loc, prior_scale = self._gaussian_params(prior.fn, B, site_name)
            return fn(loc, scale, prior_loc, prior_scale, **options)
        prior_draws = self._rsample(tp, prior.fn, (), f"marginal={name!r}", "marginal", site_name)
        x, y = latent.value.reshape(B, -1), prior_draws.reshape(B, -1)
        size = self._block_size(B) if "num_features" not in options or options["num_features"] is None else None
        if size is None:
            return fn(x, y, **options)
        # An incomplete U-statistic: the divergence within consecutive blocks, averaged (see mmd_block_size).
        count = B // size
        size = B // count
        return sum(fn(x[i * size : (i + 1) * size], y[i * size : (i + 1) * size], **options) for i in range(count)) / count

    def _block_size(self, batch_size):
        """The examples per block of a sample-based marginal divergence, or ``None`` for one block."""
        size = self.mmd_block_size
        if size == "auto":
            size = AUTO_BLOCK_SIZE if batch_size > 2 * AUTO_BLOCK_SIZE else None
        return None if size is None or size * 2 > batch_size else size

    def _gaussian_params(self, fn, batch_size, site_name):
        """``loc, scale`` ``[B, d]`` of a diagonal Normal latent (for the moment-matched marginal)."""
        base, _ = self._traces.unwrap(fn)
        if self._traces.describe(fn) != "Normal":
            raise UnsupportedModelError(
                f"marginal='moment' needs a diagonal Normal at site {site_name!r}, got {self._traces.describe(fn)}; "
                "use marginal='mmd'"
            )
        shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
        return tuple(self._ops.broadcast_to(value, shape).reshape(batch_size, -1) for value in (base.loc, base.scale))

    # -- the JSD --------------------------------------------------------------------------------

    def _jsd_term(self, tp: TracePass, log_p, q):
        """The mean over examples of the JSD between the decoders at different latent values, summed
        over the observed sites (and over the factors of each). With discrete latents, the values
        compared are their joint configurations, any continuous latents at the guide's draw for each
        (M2: the decoders at each label, with the style drawn given that label)."""
        ops, roles, B = self._ops, tp.roles, tp.batch_size
        if not roles.observed:
            raise UnsupportedModelError(
                f"the JSD term compares the decoders of observed sites; the model has none, only the factor site(s) "
                f"{list(roles.factors)}: set jsd_weight=0"
            )
        if not roles.discrete:
            if len(roles.local) > 1:
                raise UnsupportedModelError(
                    f"the JSD term needs a discrete latent or a single continuous one; the latent sites "
                    f"{list(roles.local)} are all continuous: set jsd_weight=0 or keep one latent site"
                )
            name = roles.local[0]
            latent, prior = tp.guide[name], tp.model[name]
            S = self.jsd_samples
            source = prior.fn if self.jsd_mixture == "prior" else latent.fn
            draws = self._rsample(tp, source, (S,), "the JSD term", "jsd", name)
            weights = ops.full((S,), 1.0 / S, latent.value)
            decoders = self._decoders_at(tp, name, source, draws)
        else:
            J = q.shape[0]
            if J < 2:
                raise UnsupportedModelError(
                    f"the JSD term needs latents with at least 2 values; sites {list(roles.discrete)} have {J}"
                )
            p = ops.exp(sum(log_p[n] for n in roles.discrete))
            weights = {"prior": p, "posterior": q, "uniform": ops.full(q.shape, 1.0 / J, q)}[self.jsd_mixture]
            decoders = {name: tp.model[name].fn for name in roles.observed}
        return sum(self._decoder_jsd(tp, name, fn, weights, B).mean() for name, fn in decoders.items())

    def _decoders_at(self, tp: TracePass, name, source, draws):
        """Each observed site's decoder at each of S draws of latent ``name``: one distribution stacking
        them on a leading dim, or, for a model whose decoder takes one draw at a time, a list of S."""
        S = draws.shape[0]
        # A decoder written for one draw may still run on the stacked draws without an error (one that
        # loops over the examples stacks its B results on the left), so the stacked replay is taken only
        # where every decoder has the draws' dim left of the plates; where S is the batch size the shapes
        # cannot tell the two apart. A decoder that ignores the latent is replayed per draw too: its shape
        # cannot show that it was evaluated per draw.
        if S != tp.batch_size:
            stacked = draws.reshape((S,) + (1,) * (self.max_plate_nesting - len(source.batch_shape)) + tuple(draws.shape[1:]))
            try:
                decoders = {obs: site.fn for obs, site in tp.replay_obs({name: stacked}).items()}
            except UnsupportedModelError:
                raise
            except Exception:  # noqa: BLE001  (a user's decoder may refuse stacked draws any way it likes)
                decoders = {}
            if decoders and all(self._per_draw(tp, fn.batch_shape, S) for fn in decoders.values()):
                return decoders
        # Replayed once per draw; a real error in the decoder raises here.
        each = [tp.replay_obs({name: draws[s]}) for s in range(S)]
        return {obs: [sites[obs].fn for sites in each] for obs in tp.roles.observed}

    @staticmethod
    def _per_draw(tp: TracePass, batch_shape, num_draws) -> bool:
        """Whether a decoder's ``batch_shape`` is ``[S, *plates]``: the draws' dim, then the plates'."""
        shape, plates = tuple(batch_shape), tp.plate_shape
        return (
            len(shape) == len(plates) + 1
            and shape[0] == num_draws
            and all(size in (1, plate) for size, plate in zip(shape[1:], plates))
        )

    def _factor_log_probs(self, tp: TracePass, obs_name, fn, lead):
        """Class log-probabilities ``[K, B, F, C]`` (``[B, F, C]`` for one decoder of a list, ``lead``
        ``None``) over the F factors of a categorical/Bernoulli observation, the K decoders on the dims
        ``lead`` left of the plates, or ``None`` for a reparameterisable continuous one (its JSD is a
        Monte-Carlo estimate)."""
        if self._traces.unwrap(fn)[1]:
            raise UnsupportedModelError(f"the JSD term does not support a masked observation site {obs_name!r}")
        log_probs = self._traces.class_log_probs(fn)
        if log_probs is None:
            if fn.has_rsample:
                return None
            raise UnsupportedModelError(
                f"the JSD term supports Categorical, OneHotCategorical and Bernoulli observations (exact, per "
                f"factor) and reparameterisable continuous ones (Monte Carlo); site {obs_name!r} is "
                f"{self._traces.describe(fn)}"
            )
        B = tp.batch_size
        if lead is None:
            return log_probs.reshape((B, -1, log_probs.shape[-1]))
        # Every decoder, also where the decoder ignores some of the latents.
        tail = tuple(log_probs.shape[len(fn.batch_shape) :])
        full = self._ops.broadcast_to(log_probs, self._decoders_shape(tp, obs_name, fn, lead) + tail)
        return full.reshape((math.prod(lead), B, -1, log_probs.shape[-1]))

    @staticmethod
    def _decoders_shape(tp: TracePass, obs_name, fn, lead) -> tuple:
        """``lead + plates``: the batch shape of K decoders stacked on the dims ``lead``, checked to be
        one that ``fn``'s batch shape broadcasts to."""
        shape, full = tuple(fn.batch_shape), tuple(lead) + tp.plate_shape
        if len(shape) > len(full) or any(s not in (1, f) for s, f in zip(reversed(shape), reversed(full))):
            raise UnsupportedModelError(
                f"site {obs_name!r} has batch shape {shape}; the data plate of size {tp.batch_size} must be its only "
                f"batch dim (left of it: only the latents' dims {tuple(lead)}): declare other dims with .to_event()"
            )
        return full

    def _decoder_jsd(self, tp: TracePass, obs_name, decoders, weights, batch_size):
        """Per-example JSD ``[B]`` between K decoder distributions of observed site ``obs_name``: one
        distribution stacking them on its leading dim(s) (the enumerated latents', or the S draws'), or
        a list of them."""
        ops = self._ops
        K = weights.shape[0]
        lead = tp.enum_shape if tp.enum_shape else (K,)
        each = decoders if isinstance(decoders, list) else None
        if each is None:
            log_probs = self._factor_log_probs(tp, obs_name, decoders, lead)
        else:
            parts = [self._factor_log_probs(tp, obs_name, fn, None) for fn in each]
            log_probs = None if parts[0] is None else ops.stack(parts)
        if log_probs is not None:
            return ops.divergences.jensen_shannon(ops.exp(log_probs), weights, log_probs=log_probs).sum(-1)
        if len(tp.enum_shape) > 1:
            raise UnsupportedModelError(
                f"the JSD term of a continuous observation ({obs_name!r}) supports one discrete latent; the model has "
                f"{list(tp.roles.discrete)}: set jsd_weight=0"
            )
        # A continuous decoder: one draw of each, scored by all (cross[k, j] = log p_j(y_k)).
        dim = tp.plate_dim
        if each is None:
            # Each of the K decoders draws its own value, also where the decoder ignores the latent.
            full = self._decoders_shape(tp, obs_name, decoders, lead)
            if tuple(decoders.batch_shape) != full:
                decoders = decoders.expand(full)
            draws = self._rsample(tp, decoders, (), "the JSD term", "decoder", obs_name)
            cross = decoders.log_prob(draws.reshape(draws.shape[:1] + (1,) + tuple(draws.shape[1:])))
            cross = flat_batch(cross, obs_name, (K, K), batch_size, dim)
        else:
            draws = [self._rsample(tp, fn, (), "the JSD term", "decoder", obs_name, k) for k, fn in enumerate(each)]
            cross = ops.stack(
                [ops.stack([flat_batch(fn.log_prob(y), obs_name, (), batch_size, dim) for fn in each]) for y in draws]
            )
        return ops.divergences.monte_carlo_jensen_shannon(cross, weights)
