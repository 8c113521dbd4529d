"""The sites of a model/guide trace as both backends see them, and the checks that a pair has the
shape :class:`InfoVAE_ELBO` supports (:func:`find_roles`).

Each backend turns its own trace into a mapping of :class:`Site` records (``infovae.objectives._traces``
for Pyro, ``infovae.numpyro.objectives._traces`` for NumPyro); every check below runs on that mapping
alone, so the rules and their messages are the same in both. Every check raises
:class:`~infovae.errors.UnsupportedModelError` naming the offending site and saying what is supported,
so that an unsupported model never yields silently wrong numbers.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from typing import Any

from infovae.errors import UnsupportedModelError

__all__ = [
    "SUPPORTED",
    "Roles",
    "Site",
    "check_plate_sizes",
    "enumerated_support",
    "find_roles",
    "flat_batch",
    "guide_roles",
    "joint_batch",
    "plate_nesting",
    "unwrap",
]

SUPPORTED = (
    "InfoVAE_ELBO supports latent sites sampled by the guide, inside one data plate (local) or outside "
    "every plate (global), and observed and factor sites in the model's data plate; a local latent is a "
    "Categorical/OneHotCategorical (summed out exactly, jointly with the others) or a reparameterised "
    "continuous distribution with one event dim (sampled)"
)


@dataclass(frozen=True)
class Site:
    """A sample site of a trace, as the objective reads it.

    :param name: the site's name.
    :param observed: whether the value was given (``obs=``).
    :param plates: names of the vectorised plates around it, innermost last.
    :param plate_size: the size of the innermost of them (the subsample size; for a plate opened
        without a size, the size it takes from the site's batch shape), or ``None``.
    :param plate_dim: the batch dim of that plate (``-1`` unless the plate was given ``dim=``).
    :param num_data: the plate's full size N (its ``size``; the subsample size for a plate without one).
    :param nesting: how many batch dims its plates take (``-dim`` of the leftmost), 0 outside plates.
    :param auxiliary: a guide's site marked ``infer={"is_auxiliary": True}``: a variable of the guide
        alone, which the model does not have.
    :param factor: an observed ``Unit`` site, as ``pyro.factor`` / ``numpyro.factor`` make: a term
        added to the model's log-density, not the likelihood of data.
    :param fn: the distribution, without the masks a handler put on its batch (those are ``mask``).
    :param value: the sampled or observed value.
    :param scale: the handlers' scale (a plate's ``size / subsample_size``), or ``None``.
    :param mask: the handlers' mask over the batch, or ``None``.
    """

    name: str
    observed: bool
    plates: tuple[str, ...]
    plate_size: int | None
    fn: Any
    value: Any
    scale: Any = None
    mask: Any = None
    plate_dim: int = -1
    num_data: Any = None
    nesting: int = 0
    auxiliary: bool = False
    factor: bool = False

    @property
    def plate(self) -> str:
        """The one vectorised data plate around the site."""
        if len(self.plates) != 1:
            found = ", ".join(repr(name) for name in self.plates) or "none"
            raise UnsupportedModelError(
                f"site {self.name!r} must be inside exactly one vectorised data plate (found: {found}). {SUPPORTED}."
            )
        return self.plates[0]


@dataclass(frozen=True)
class Roles:
    """What each site of a model/guide pair is to the objective.

    :param plate: the data plate's name.
    :param local: the latent sites inside it, in the guide's order.
    :param discrete: those of them summed out by enumeration.
    :param global_: the latent sites outside every plate (ordinary ELBO terms).
    :param observed: the model's observed sites (all inside the data plate), its factors excepted.
    :param factors: the model's factor sites (``pyro.factor``; all inside the data plate).
    """

    plate: str
    local: tuple[str, ...]
    discrete: tuple[str, ...]
    global_: tuple[str, ...]
    observed: tuple[str, ...]
    factors: tuple[str, ...] = ()

    @property
    def continuous(self) -> tuple[str, ...]:
        return tuple(name for name in self.local if name not in self.discrete)


def _names(given) -> tuple[str, ...] | None:
    return (given,) if isinstance(given, str) else None if given is None else tuple(given)


def guide_roles(guide: Mapping[str, Site], latent_site, is_discrete, describe) -> Roles:
    """The roles of the guide's sites, checked before the model runs: the guide's sample sites are the
    latents (all of them, or the ``latent_site`` names, which must then be all); ``observed`` is left
    empty for :func:`find_roles`.

    :param is_discrete: ``fn -> bool``: a latent summed out by enumeration.
    :param describe: ``fn -> str``: the distribution's family, for messages.
    """
    observed = [s.name for s in guide.values() if s.observed]
    if observed:
        raise UnsupportedModelError(f"the guide observes site(s) {observed}; a guide must not observe data. {SUPPORTED}.")
    auxiliary = [s.name for s in guide.values() if s.auxiliary]
    if auxiliary:
        # Trace_ELBO needs log q only at the guide's own draw, which an auxiliary variable's change of
        # variables gives (a Delta's log_density); the MI needs q(z|x_j) at other examples' draws, which
        # the guide then defines only as an integral over the auxiliary variable.
        raise UnsupportedModelError(
            f"the guide has auxiliary site(s) {auxiliary} (infer={{'is_auxiliary': True}}, as autoguides such as "
            "Pyro's AutoNormal and AutoDiagonalNormal make), which InfoVAE_ELBO does not support: it reads each "
            "latent's posterior q(z|x) at the latent's own site (its density at other examples' draws for the mutual "
            "information), which a guide variable the model lacks leaves implicit. Use a guide that samples the "
            "model's latent sites themselves (written by hand, or AutoDelta; in NumPyro also AutoNormal)"
        )
    latents = _names(latent_site)
    if latents is None:
        latents = tuple(guide)
    else:
        for name in latents:
            if name not in guide:
                raise UnsupportedModelError(
                    f"the guide has no sample site named {name!r} (it has {list(guide)}); pass latent_site=... to name "
                    "the latent(s), or leave it out to take every site the guide samples"
                )
        others = [n for n in guide if n not in latents]
        if others:
            raise UnsupportedModelError(
                f"the guide samples site(s) {others} besides the latent(s) {list(latents)}: leave latent_site out (every "
                f"guide site is then a latent) or name them too. {SUPPORTED}."
            )
    if not latents:
        raise UnsupportedModelError(f"the guide samples no site. {SUPPORTED}.")
    local = tuple(name for name in latents if guide[name].plates)
    if not local:
        guide[latents[0]].plate  # noqa: B018  (raises: the message names the site)
    plate = guide[local[0]].plate
    for name in local[1:]:
        if guide[name].plate != plate:
            raise UnsupportedModelError(
                f"site {name!r} is in plate {guide[name].plate!r} but latent {local[0]!r} is in plate {plate!r}: "
                f"every local latent must be in the one data plate. {SUPPORTED}."
            )
    discrete = tuple(name for name in local if is_discrete(guide[name].fn))
    for name in latents:
        fn = guide[name].fn
        if name in discrete:
            continue
        if name in local and not (fn.has_rsample and fn.event_dim == 1):
            raise UnsupportedModelError(
                f"latent site {name!r} has distribution {describe(fn)} with event_dim {fn.event_dim} and "
                f"has_rsample={fn.has_rsample}. {SUPPORTED}."
            )
        if name not in local and not fn.has_rsample:
            raise UnsupportedModelError(
                f"global latent site {name!r} (outside the data plate) has distribution {describe(fn)}, which is not "
                f"reparameterisable: use a reparameterised distribution. {SUPPORTED}."
            )
    return Roles(plate, local, discrete, tuple(n for n in latents if n not in local), ())


def find_roles(roles: Roles, model: Mapping[str, Site], obs_site) -> Roles:
    """The guide's ``roles`` (:func:`guide_roles`) completed with the model's observed sites (all of
    them, or the ``obs_site`` names) and its factor sites (all of them, named in ``obs_site`` or not:
    they are part of the model's log-density), checked: the model samples nothing else, and its
    latents, observed sites and factors are in the guide's data plate."""
    latents = roles.local + roles.global_
    for name in latents:
        if name not in model:
            raise UnsupportedModelError(
                f"the guide samples site {name!r}, which the model does not (it has {list(model)}): every site the guide "
                "samples must be a latent of the model"
            )
    factors = tuple(name for name, site in model.items() if site.factor)
    data = _names(obs_site)
    if data is None:
        data = tuple(name for name, site in model.items() if site.observed)
    for name in data:
        if name not in model:
            raise UnsupportedModelError(f"the model has no sample site named {name!r} (it has {list(model)}); pass obs_site=...")
    data = tuple(name for name in data if name not in factors)
    others = [n for n in model if n not in latents and n not in data and n not in factors]
    if others:
        unobserved = [n for n in others if not model[n].observed]
        hint = f"; a latent must be sampled by the guide too (sample {unobserved} in the guide)" if unobserved else ""
        raise UnsupportedModelError(
            f"the model has sample site(s) {others} besides the latent(s) {list(latents)} and the observed site(s) "
            f"{list(data)}{hint}. {SUPPORTED}."
        )
    for name in latents:
        if model[name].observed:
            raise UnsupportedModelError(f"site {name!r} is observed in the model but the guide samples it as a latent")
    if not data and not factors:
        raise UnsupportedModelError(f"the model observes no site: pass the data as obs=. {SUPPORTED}.")
    for name in data:
        if not model[name].observed:
            raise UnsupportedModelError(f"site {name!r} is not observed in the model: pass the data as obs=")
    for name in (*roles.local, *data, *factors):
        if model[name].plate != roles.plate:
            raise UnsupportedModelError(
                f"site {name!r} is in plate {model[name].plate!r} but the guide's latent is in plate {roles.plate!r}"
            )
    return Roles(roles.plate, roles.local, roles.discrete, roles.global_, tuple(data), factors)


def _sizes_differ(a, b) -> bool:
    """Whether two plate sizes are numbers that differ (a size read from a tensor that is being traced
    cannot be told, and passes)."""
    return isinstance(a, Integral) and isinstance(b, Integral) and a != b


def check_plate_sizes(roles: Roles, guide: Mapping[str, Site], model: Mapping[str, Site]):
    """That the model's data plate has the guide's full size and subsample size. Each side's sites
    carry their own plate's scale ``size / subsample_size``, so plates of different sizes would weigh
    ``log p`` and ``log q`` differently (``Trace_ELBO`` takes them so, silently) and the terms' mean
    over the data would divide by the one size or the other."""
    first = guide[roles.local[0]]
    for name in (*roles.local, *roles.observed, *roles.factors):
        site = model[name]
        if _sizes_differ(site.num_data, first.num_data) or _sizes_differ(site.plate_size, first.plate_size):
            raise UnsupportedModelError(
                f"plate {roles.plate!r} has size {site.num_data} (subsample size {site.plate_size}) at model site "
                f"{name!r} but size {first.num_data} (subsample size {first.plate_size}) in the guide: its scale, size / "
                "subsample size, would weigh the model's log p and the guide's log q differently; give the plate the "
                "same size in model and guide"
            )


def joint_batch(ops, values, site_name: str, enum_shape: tuple, batch_size: int, plate_shape: tuple):
    """Per-example values of a site, broadcast over the enumerated configurations: ``[*enum, *plates]``
    (the enumeration dims left of the plates) to ``[J, B]``, ``J`` the number of configurations,
    checking that the data plate is the only batch dim."""
    shape, full = tuple(values.shape), tuple(enum_shape) + tuple(plate_shape)
    if len(shape) > len(full) or any(s not in (1, f) for s, f in zip(reversed(shape), reversed(full))):
        raise UnsupportedModelError(
            f"site {site_name!r} gives log-probabilities of shape {shape}; the data plate of size {batch_size} must be "
            f"its only batch dim (left of it: only the enumerated latents' dims): declare other dims with .to_event()"
        )
    return ops.broadcast_to(values, full).reshape((math.prod(enum_shape), batch_size))


def flat_batch(values, site_name: str, lead: tuple, batch_size: int, dim: int = -1):
    """Reshape per-example values ``[*lead, 1.., B, 1..]`` (the plate at batch dim ``dim``) to
    ``[*lead, B]``, checking that the plate is the only batch dim."""
    shape = tuple(values.shape)
    if dim != -1 and len(shape) >= -dim and all(size == 1 for size in shape[len(shape) + dim + 1 :]):
        values = values.reshape(shape[: len(shape) + dim + 1])
    if tuple(values.shape[-1:]) != (batch_size,) or math.prod(values.shape) != batch_size * math.prod(lead):
        raise UnsupportedModelError(
            f"site {site_name!r} gives log-probabilities of shape {tuple(values.shape)}; the data plate of size "
            f"{batch_size} must be its only batch dim (dim={dim}): declare other dims with .to_event()"
        )
    return values.reshape(tuple(lead) + (batch_size,))


def plate_nesting(*traces: Mapping[str, Site]) -> int:
    """How many batch dims the plates of the traces' sites take (at least 1): where an enumeration
    dim can go, as Pyro's ``max_plate_nesting`` guesses it."""
    return max([1] + [site.nesting for sites in traces for site in sites.values()])


def unwrap(fn, wrappers: tuple, masked_type: type):
    """The base distribution under the backend's ``wrappers`` (Independent, expanded, masked), and
    whether a ``masked_type`` wrapper was met."""
    masked = False
    while isinstance(fn, wrappers):
        masked = masked or isinstance(fn, masked_type)
        fn = fn.base_dist
    return fn, masked


def enumerated_support(fn, dims_right: int):
    """All values of a discrete latent, stacked along a new dim with ``dims_right`` dims right of it
    (the plates and the enumeration dims of the discrete latents before it): ``[K, 1.., *event]``."""
    support = fn.enumerate_support(expand=False)
    return support.reshape((support.shape[0],) + (1,) * dims_right + tuple(fn.event_shape))
