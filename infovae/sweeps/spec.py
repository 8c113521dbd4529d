"""A sweep file: a base config, the grid (or list, or random draws) of overrides, and the seeds.

.. code-block:: yaml

    base: ../strategies/standard_vae.yaml     # or an inline config mapping
    grid:                                     # every combination of these values
      objective.beta: [1.0, 0.0]
      objective.marginal_weight: [0.0, 100.0]
    list:                                     # and/or explicit trials, each a map of overrides
      - {objective.beta: 2.0, objective.marginal_weight: 0.5}
    random:                                   # and/or draws from distributions
      num_trials: 4
      seed: 0
      space:
        objective.jsd_weight: {loguniform: [0.01, 1.0]}
        objective.beta: {uniform: [0.0, 1.0]}
        model.latent_size: {choice: [4, 8, 16]}
    seeds: [0, 1, 2]                          # each trial runs once per seed (train.seed)
    seed_keys: [train.seed, data.seed]        # optional: the keys each seed sets (default: train.seed);
                                              # with data.seed, every replicate draws its own data set
    set:                                      # keys set on every trial (not part of trial names)
      train.steps: 500

Keys given on the command line after the sweep file (``infovae sweep S.yaml train.steps=500``) or as
``overrides`` to :func:`infovae.sweep` are added to ``set``.
"""

import hashlib
import itertools
import json
import math
import re
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infovae.errors import CombinationError, ConfigError
from infovae.files import load_yaml, short_repr
from infovae.training.config import apply_overrides, check_key, parse_config

__all__ = ["MAX_TRIALS", "SweepFile", "SweepSpec", "SweepTrial", "load_sweep", "unique_names"]

SWEEP_KEYS = {"base", "grid", "list", "random", "seed_keys", "seeds", "set"}
# A grid multiplies: ten keys of ten values are 10**10 trials from a few hundred bytes. Refused before
# any is made, as an alias bomb is.
MAX_TRIALS = 100_000
DISTRIBUTIONS = ("uniform", "loguniform", "choice")


@dataclass(frozen=True)
class SweepTrial:
    """One trial of a sweep: the overrides on the base config, and the seed."""

    overrides: dict
    seed: int
    # Keys set on every trial of the sweep (not part of the name).
    shared: dict = field(default_factory=dict, compare=False)
    # The config keys the seed sets: train.seed, and others (data.seed) where replicates differ in them too.
    seed_keys: tuple[str, ...] = field(default=("train.seed",), compare=False)
    # Hex digits of the overrides' hash in the name: 6, or all 40 where 6 would name two trials alike.
    digest_width: int = field(default=6, compare=False)

    @property
    def name(self) -> str:
        """A readable, stable directory name."""
        parts = [f"{key.rsplit('.', 1)[-1]}={_short(value)}" for key, value in sorted(self.overrides.items())]
        readable = re.sub(r"[^A-Za-z0-9_.=+-]", "_", "_".join(parts))[:80] or "base"
        digest = hashlib.sha1(json.dumps(self.overrides, sort_keys=True).encode()).hexdigest()[: self.digest_width]
        return f"{readable}-{digest}-seed{self.seed}"

    def raw_config(self, base: dict) -> dict:
        """The trial's config mapping: ``base`` with the shared keys, the overrides and the seed set."""
        return apply_overrides(base, {**self.shared, **self.overrides, **dict.fromkeys(self.seed_keys, self.seed)})


def unique_names(trials: tuple[SweepTrial, ...]) -> tuple[SweepTrial, ...]:
    """``trials`` with the full hash in the names of those whose short names collide (two settings whose
    readable part is cut alike and whose 24-bit hashes agree: about 27 pairs in a grid of 30,000 such
    settings), so that each trial has a folder of its own; the other names stay as they were."""
    counts = Counter(t.name for t in trials)
    return tuple(replace(t, digest_width=40) if counts[t.name] > 1 else t for t in trials)


def _short(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class SweepSpec:
    """A sweep's trials: the ``base`` config mapping, the ``trials``, the keys they sweep, the sweep
    file's ``path`` (``None`` for a sweep given as a mapping) and the keys ``shared`` by every trial."""

    base: dict
    trials: tuple[SweepTrial, ...]
    swept_keys: tuple[str, ...]
    path: Path | None
    shared: dict = field(default_factory=dict)
    seed_keys: tuple[str, ...] = ("train.seed",)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RandomSearch(BaseModel):
    """``random:``: ``num_trials`` draws of the keys in ``space``, each from its distribution."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    space: dict[Any, dict[str, Any]]
    num_trials: int
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, raw):
        if not isinstance(raw, Mapping) or set(raw) - {"num_trials", "seed", "space"} or not isinstance(raw.get("space"), dict):
            raise ValueError("random must have space (a map of key: distribution), num_trials and optionally seed")
        if not _is_int(raw.get("num_trials")) or raw["num_trials"] < 1:
            raise ValueError("random.num_trials must be a positive integer")
        return raw

    @field_validator("space", mode="before")
    @classmethod
    def _distributions(cls, space):
        for key, spec in space.items():
            if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
                raise ValueError(
                    f"random.space.{key} must be one of {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}, {{choice: [...]}}"
                )
            ((kind, args),) = spec.items()
            if kind == "choice":
                if not isinstance(args, list) or not args:
                    raise ValueError(f"random.space.{key}.choice must be a non-empty list")
            elif not (isinstance(args, list) and len(args) == 2 and all(map(_is_number, args)) and args[0] < args[1]):
                raise ValueError(f"random.space.{key}.{kind} must be [low, high] with low < high")
            elif kind == "loguniform" and args[0] <= 0:
                raise ValueError(f"random.space.{key}.loguniform needs low > 0")
        return space

    def draws(self) -> list[dict]:
        """The ``num_trials`` settings, drawn from ``seed``."""
        rng = np.random.default_rng(self.seed)
        return [{key: _draw(spec, rng) for key, spec in self.space.items()} for _ in range(self.num_trials)]


def _draw(spec, rng):
    ((kind, args),) = spec.items()
    if kind == "choice":
        return args[int(rng.integers(len(args)))]
    if kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))
    return float(rng.uniform(*args))


class SweepFile(BaseModel):
    """A sweep file as written (module docstring), validated; the base config is read and its trials
    made by :func:`load_sweep`. Each check's message is the one line a user sees."""

    model_config = ConfigDict(frozen=True)

    base: dict | str = {}
    shared: dict[str, Any] = Field({}, alias="set")
    seeds: list[int] = [0]
    seed_keys: tuple[str, ...] = ("train.seed",)
    # Keys are checked by _swept_keys, so that a key that is no name gets its own message.
    grid: dict[Any, list] = {}
    listed: list[dict] = Field([], alias="list")
    random: RandomSearch | None = None

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, raw):
        if not isinstance(raw, Mapping):
            raise ValueError("a sweep file must be a mapping with base, grid/list/random and seeds")
        unknown = set(raw) - SWEEP_KEYS
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)}; a sweep has {sorted(SWEEP_KEYS)}")
        # An empty entry (``grid:`` with nothing after it) is the same as none.
        return {key: value for key, value in raw.items() if value is not None or key in ("base", "seeds")}

    @field_validator("base", mode="before")
    @classmethod
    def _base(cls, value):
        if not isinstance(value, (dict, str)):
            raise ValueError("base must be a config mapping or the path of a config file")
        return value

    @field_validator("shared", mode="before")
    @classmethod
    def _set(cls, value):
        if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
            raise ValueError("set must map dotted config keys to values")
        return value

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value):
        if not isinstance(value, list) or not value or not all(map(_is_int, value)):
            raise ValueError("seeds must be a non-empty list of integers")
        return value

    @field_validator("seed_keys", mode="before")
    @classmethod
    def _seed_keys(cls, value):
        if (
            not isinstance(value, list)
            or "train.seed" not in value
            or not all(isinstance(k, str) and k.count(".") == 1 for k in value)
        ):
            raise ValueError(
                "seed_keys must be a list of dotted config keys that includes train.seed (e.g. [train.seed, data.seed])"
            )
        return tuple(dict.fromkeys(value))

    @field_validator("grid", mode="before")
    @classmethod
    def _grid(cls, value):
        if not isinstance(value, dict) or not all(isinstance(v, list) and v for v in value.values()):
            raise ValueError("grid must map dotted config keys to non-empty lists of values")
        return value

    @field_validator("listed", mode="before")
    @classmethod
    def _list(cls, value):
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ValueError("list must be a list of mappings of dotted config keys to values")
        return value

    @model_validator(mode="after")
    def _swept_keys(self):
        keys = [*self.grid, *(k for item in self.listed for k in item), *(self.random.space if self.random else ())]
        for key in keys:
            if not isinstance(key, str) or not key or key in self.seed_keys:
                raise ValueError(f"cannot sweep over {short_repr(key)}" + (": use seeds" if key in self.seed_keys else ""))
        return self

    @property
    def num_settings(self) -> int:
        """How many settings the grid, the list and the random draws make (before any is made)."""
        grid = math.prod(len(v) for v in self.grid.values()) if self.grid else 0
        return grid + len(self.listed) + (self.random.num_trials if self.random else 0)

    def settings(self) -> list[dict]:
        """Every setting: the grid's product, then the list, then the random draws (one empty setting if none)."""
        combos = [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())] if self.grid else []
        combos += [dict(item) for item in self.listed]
        combos += self.random.draws() if self.random else []
        return combos or [{}]


def _fail(path: Path, message: str) -> NoReturn:
    raise ConfigError(f"{path}: {message}")


def _validated(path, raw) -> SweepFile:
    try:
        return SweepFile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] != "value_error":  # a type no check above names (an integer of 5000 digits, say)
            where = ".".join(str(part) for part in first["loc"])
            message = f"{where}: {message} (got {short_repr(first.get('input'))})"
        _fail(path, message)


def load_sweep(
    source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None, base_dir: str | Path | None = None
) -> SweepSpec:
    """Read and check a sweep: a file's path, or a mapping (relative paths then resolve against
    ``base_dir``, default the working folder). ``overrides`` are dotted keys set on every trial, added
    to the sweep's ``set``. Every trial's config is validated here: an unknown key or a bad value is
    refused before any trial folder is made; keys that do not fit together are not (an invalid
    combination is a failed trial, not a failed sweep)."""
    if isinstance(source, Mapping):
        # A mapping has no file: messages name it "sweep", and relative paths resolve against base_dir.
        raw, path = dict(source), Path(base_dir or ".") / "sweep"
    else:
        path = Path(source)
        raw = load_yaml(path, "sweep file")
    sweep = _validated(path, raw)
    base = _read_base(path, sweep.base)
    shared = {**sweep.shared, **{str(k).replace("__", "."): v for k, v in (overrides or {}).items()}}
    seeded = sorted(set(sweep.seed_keys) & set(shared))
    if seeded:
        _fail(path, f"cannot set {', '.join(seeded)} for every trial: the seeds set it")
    settings, seeds = sweep.num_settings, len(sweep.seeds)
    if settings * seeds > MAX_TRIALS:
        total = f"{settings:,} settings x {seeds:,} seeds = {settings * seeds:,} trials"
        _fail(path, f"makes {total}; a sweep runs at most {MAX_TRIALS:,}")
    for key in [*shared, *sweep.grid, *(k for item in sweep.listed for k in item), *(sweep.random.space if sweep.random else ())]:
        try:
            check_key(key)
        except ConfigError as error:
            _fail(path, str(error))
    combos = sweep.settings()
    trials = tuple(SweepTrial(combo, seed, shared, sweep.seed_keys) for combo in combos for seed in sweep.seeds)
    if len({(json.dumps(t.overrides, sort_keys=True), t.seed) for t in trials}) != len(trials):
        _fail(path, "two trials have the same overrides and seed")
    trials = unique_names(trials)
    swept = tuple(dict.fromkeys(k for combo in combos for k in combo))
    both = sorted(set(swept) & set(shared))
    if both:
        _fail(path, f"{both} are both swept and set for every trial")
    _check_configs(path, base, trials)
    recorded = None if isinstance(source, Mapping) else path
    return SweepSpec(base=base, trials=trials, swept_keys=swept, path=recorded, shared=shared, seed_keys=sweep.seed_keys)


def _check_configs(path, base, trials):
    """Refuse the sweep if a trial's config has an unknown key or a bad value (set on every trial, in
    the base or swept), which no run of the trial could get past. Keys that do not fit together are the
    trial's failure when it runs, as are the data and the model's size, which need the data read."""
    with warnings.catch_warnings():
        # A trial warns when it runs (an option its divergence ignores); here it would warn once per trial.
        warnings.simplefilter("ignore")
        for trial in trials:
            try:
                parse_config(trial.raw_config(base))
            except CombinationError:
                continue
            except ConfigError as error:
                _fail(path, f"the trial {_setting(trial)}: {error}")


def _setting(trial):
    """The trial's overrides and seed as a user writes them, each value cut to 40 characters:
    ``objective.beta=0.5, seed 0``."""
    values = {key: _short(value) for key, value in trial.overrides.items()}
    cut = {key: text if len(text) <= 40 else text[:37] + "..." for key, text in values.items()}
    return ", ".join([*(f"{key}={text}" for key, text in cut.items()), f"seed {trial.seed}"])


def _read_base(path, base):
    """The base config mapping: inline (relative data paths against the sweep file's folder) or read
    from the file it names (against that file's folder)."""
    if isinstance(base, dict):
        return _resolve_data_path(base, path.parent)
    base_path = (path.parent / base).resolve()
    if not base_path.is_file():
        _fail(path, f"base config {base!r} does not exist (looked for {base_path})")
    config = load_yaml(base_path) or {}
    if not isinstance(config, dict):
        _fail(base_path, "a config must be a mapping of sections")
    return _resolve_data_path(config, base_path.parent)


def _resolve_data_path(base, folder):
    """A relative npz path in the base config is relative to the file that names it."""
    data = base.get("data") if isinstance(base, dict) else None
    if isinstance(data, dict) and isinstance(data.get("path"), str) and not Path(data["path"]).is_absolute():
        base = {**base, "data": {**data, "path": str((folder / data["path"]).resolve())}}
    return base
