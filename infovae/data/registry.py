"""The registry of data sets: what ``data.kind`` accepts, each kind's config section, and how it loads.

A data set is a config section (a :class:`DataSection` subclass with a ``kind`` literal and its knobs,
each with a description for ``infovae schema``), a loader ``load(section, likelihood) -> (Dataset,
generator or None)`` (or its ``"module:function"``, imported when first used), and one
:class:`DataKind`: registered with :func:`register_data` by a module of :mod:`infovae.data`, or by
another package through the entry-point group ``infovae.datasets`` (:mod:`infovae.registry`). The run
config's ``data`` section, its validation and ``infovae schema`` consult this registry when they run.

A *generator* is the data's own generative process when it is known, with exact likelihoods of every
hidden label. It offers ``expected_bayes_accuracy(x, y)`` (the ceiling of a label probe),
``coverage_tv(x, y_generated)`` (how far the label mix of generated data is from the true one),
``label_log_prob_tables(x)`` (``[n, L, F, C]``: the log-probability of each class of each target
factor under each label; the evaluations of both backends compute the coverage and the Bayes accuracy
from these tables, made once per held-out set, so ``coverage_tv`` and ``expected_bayes_accuracy`` are
the references they are tested against, not what they call), ``label_mix`` (the true label
probabilities), optionally ``label_log_prior(x)`` (``[n, L]``: ``log p(label | x)``, where x is
informative about the label; without it the prior is ``label_mix``) and
``label_factor_distributions(x)`` (``[L, F, C]``, for figures).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from infovae.data.base import DataSplits, split_dataset
from infovae.registry import Registry, RegistryError, import_target

__all__ = ["DATA_KINDS", "DataKind", "DataSection", "load_splits", "register_data"]


class DataSection(BaseModel):
    """The knobs every data set has: its seed and how it is split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Each data set's section narrows it to ``Literal["its name"] = "its name"``.
    kind: str = Field(description="The data set, one of the registered kinds.")
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="Seed of the data (generation where it applies, and the split; 0 to 2**32 - 1)."
    )
    val_fraction: float = Field(0.1, gt=0, lt=0.5, description="Fraction of examples held out for validation.")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Fraction of examples held out for the final test.")

    def resolve_paths(self, base_dir: Path) -> "DataSection":
        """The section with relative file paths taken relative to ``base_dir`` (the config file's folder)."""
        return self


@dataclass(frozen=True)
class DataKind:
    """One registered data set.

    :param name: the ``data.kind`` that selects it.
    :param section: its config section, a :class:`DataSection` subclass with ``kind: Literal[name]``.
    :param load: ``(section, likelihood) -> (Dataset, generator or None)``, or its ``"module:function"``.
    :param likelihood: the likelihood its targets need, or ``None`` if the config must name one.
    :param stratified: split each label apart (every split holds each label in its share).
    """

    name: str
    section: type[DataSection]
    load: Callable | str
    likelihood: str | None
    stratified: bool = False

    @property
    def description(self) -> str:
        return " ".join((self.section.__doc__ or self.name).split())

    def loader(self) -> Callable:
        """The loader, imported if it was given as a string."""
        return import_target(self.load) if isinstance(self.load, str) else self.load


def _check(kind: DataKind) -> None:
    if not (isinstance(kind.section, type) and issubclass(kind.section, DataSection)):
        raise RegistryError(f"data set {kind.name!r}: its section must be a DataSection subclass, got {kind.section!r}")
    if "kind" not in kind.section.model_fields or kind.section.model_fields["kind"].default != kind.name:
        raise RegistryError(f"data set {kind.name!r}: its section's kind must default to {kind.name!r}")
    if not (callable(kind.load) or isinstance(kind.load, str)):
        raise RegistryError(f"data set {kind.name!r}: load must be a function or its 'module:function'")


DATA_KINDS: Registry[DataKind] = Registry("data kind", DataKind, group="infovae.datasets", check=_check)


def register_data(kind: DataKind) -> DataKind:
    """Add ``kind`` to the registry (a name may be registered once)."""
    return DATA_KINDS.register(kind)


def load_splits(section: DataSection, likelihood: str) -> DataSplits:
    """The train/validation/test splits of the data set ``section`` describes (the run config's
    ``data``), for a model with ``likelihood``."""
    kind = DATA_KINDS[section.kind]
    data, generator = kind.loader()(section, likelihood)
    stratify = data.labels if kind.stratified else None
    return split_dataset(data, section.val_fraction, section.test_fraction, section.seed, generator=generator, stratify=stratify)
