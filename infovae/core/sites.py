"""The sites of a model/guide trace as both backends see them, and the checks that a pair has the
shape :class:`InfoVAE_ELBO` supports: one latent site and one observed site inside one data plate.

Each backend turns its own trace into a mapping of :class:`Site` records (``infovae.objectives._traces``
for Pyro, ``infovae.numpyro.objectives._traces`` for NumPyro); every check below runs on that mapping
alone, so the rules and their messages are the same in both. Every check raises
:class:`~infovae.errors.UnsupportedModelError` naming the offending site and saying what is supported,
so that an unsupported model never yields silently wrong numbers.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infovae.errors import UnsupportedModelError

__all__ = ["SUPPORTED", "Site", "check_guide", "check_model", "enumerated_support", "flat_batch", "unwrap"]

SUPPORTED = (
    "InfoVAE_ELBO supports one latent site and one observed site, both inside one data plate, in "
    "model and guide alike; the latent is a Categorical/OneHotCategorical (summed out exactly) or a "
    "reparameterised continuous distribution with one event dim (sampled)"
)


@dataclass(frozen=True)
class Site:
    """A sample site of a trace, as the objective reads it.

    :param name: the site's name.
    :param observed: whether the value was given (``obs=``).
    :param plates: names of the vectorised plates around it, innermost last.
    :param plate_size: the size of the innermost of them (the subsample size), or ``None``.
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

    @property
    def plate(self) -> str:
        """The one vectorised data plate around the site."""
        if len(self.plates) != 1:
            found = ", ".join(repr(name) for name in self.plates) or "none"
            raise UnsupportedModelError(
                f"site {self.name!r} must be inside exactly one vectorised data plate (found: {found}). {SUPPORTED}."
            )
        return self.plates[0]


def check_guide(sites: Mapping[str, Site], latent_site: str, is_discrete: Callable, describe: Callable) -> Site:
    """The guide's latent site, after checking it is the guide's only sample site.

    :param is_discrete: ``fn -> bool``: a latent summed out by enumeration.
    :param describe: ``fn -> str``: the distribution's family, for messages.
    """
    observed = [s.name for s in sites.values() if s.observed]
    if observed:
        raise UnsupportedModelError(f"the guide observes site(s) {observed}; a guide must not observe data. {SUPPORTED}.")
    names = list(sites)
    if latent_site not in sites:
        raise UnsupportedModelError(
            f"the guide has no sample site named {latent_site!r} (it has {names}); pass latent_site=... to name the latent"
        )
    others = [n for n in names if n != latent_site]
    if others:
        raise UnsupportedModelError(f"the guide samples site(s) {others} besides the latent {latent_site!r}. {SUPPORTED}.")
    site = sites[latent_site]
    site.plate  # noqa: B018  (the check that there is exactly one)
    fn = site.fn
    if not is_discrete(fn) and not (fn.has_rsample and fn.event_dim == 1):
        raise UnsupportedModelError(
            f"latent site {latent_site!r} has distribution {describe(fn)} with event_dim {fn.event_dim} and "
            f"has_rsample={fn.has_rsample}. {SUPPORTED}."
        )
    return site


def check_model(sites: Mapping[str, Site], latent_site: str, obs_site: str, plate: str) -> tuple[Site, Site]:
    """The model's latent and observed sites, after checking there are no others and that both are in
    the guide's latent's ``plate``."""
    names = list(sites)
    for name, what in ((latent_site, "latent_site"), (obs_site, "obs_site")):
        if name not in sites:
            raise UnsupportedModelError(f"the model has no sample site named {name!r} (it has {names}); pass {what}=...")
    others = [n for n in names if n not in (latent_site, obs_site)]
    if others:
        raise UnsupportedModelError(
            f"the model has sample site(s) {others} besides {latent_site!r} and {obs_site!r}. {SUPPORTED}."
        )
    latent, obs = sites[latent_site], sites[obs_site]
    if latent.observed:
        raise UnsupportedModelError(f"site {latent_site!r} is observed in the model but is the latent site")
    if not obs.observed:
        raise UnsupportedModelError(f"site {obs_site!r} is not observed in the model: pass the data as obs=")
    for site in (latent, obs):
        if site.plate != plate:
            raise UnsupportedModelError(
                f"site {site.name!r} is in plate {site.plate!r} but the guide's latent is in plate {plate!r}"
            )
    return latent, obs


def flat_batch(values, site_name: str, lead: tuple, batch_size: int):
    """Reshape per-example values ``[*lead, 1.., B]`` to ``[*lead, B]``, checking that the plate is the
    only batch dim."""
    if tuple(values.shape[-1:]) != (batch_size,) or math.prod(values.shape) != batch_size * math.prod(lead):
        raise UnsupportedModelError(
            f"site {site_name!r} gives log-probabilities of shape {tuple(values.shape)}; the data plate of size "
            f"{batch_size} must be its only batch dim (the rightmost, dim=-1): declare other dims with .to_event()"
        )
    return values.reshape(tuple(lead) + (batch_size,))


def unwrap(fn, wrappers: tuple, masked_type: type):
    """The base distribution under the backend's ``wrappers`` (Independent, expanded, masked), and
    whether a ``masked_type`` wrapper was met."""
    masked = False
    while isinstance(fn, wrappers):
        masked = masked or isinstance(fn, masked_type)
        fn = fn.base_dist
    return fn, masked


def enumerated_support(fn, max_plate_nesting: int):
    """All values of a discrete latent, stacked along a new dim left of the plates: ``[K, 1.., *event]``."""
    support = fn.enumerate_support(expand=False)
    return support.reshape((support.shape[0],) + (1,) * max_plate_nesting + tuple(fn.event_shape))
