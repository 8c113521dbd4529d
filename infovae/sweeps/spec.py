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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infovae.errors import ConfigError
from infovae.files import load_yaml, short_repr
from infovae.training.config import apply_overrides

__all__ = ["MAX_TRIALS", "SweepSpec", "Trial", "load_sweep"]

SWEEP_KEYS = {"base", "grid", "list", "random", "seeds", "set"}
# A grid multiplies: ten keys of ten values are 10**10 trials from a few hundred bytes. Refused before
# any is made, as an alias bomb is.
MAX_TRIALS = 100_000
DISTRIBUTIONS = ("uniform", "loguniform", "choice")


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: the overrides on the base config, and the seed."""

    overrides: dict
    seed: int
    # Keys set on every trial of the sweep (not part of the name).
    shared: dict = field(default_factory=dict, compare=False)

    @property
    def name(self):
        """A readable, stable directory name."""
        parts = [f"{key.rsplit('.', 1)[-1]}={_short(value)}" for key, value in sorted(self.overrides.items())]
        readable = re.sub(r"[^A-Za-z0-9_.=+-]", "_", "_".join(parts))[:80] or "base"
        digest = hashlib.sha1(json.dumps(self.overrides, sort_keys=True).encode()).hexdigest()[:6]
        return f"{readable}-{digest}-seed{self.seed}"

    def raw_config(self, base):
        return apply_overrides(base, {**self.shared, **self.overrides, "train.seed": self.seed})


def _short(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class SweepSpec:
    base: dict
    trials: tuple
    swept_keys: tuple
    path: Path
    shared: dict = field(default_factory=dict)


def _fail(path, message):
    raise ConfigError(f"{path}: {message}")


def _check_key(path, key):
    if not isinstance(key, str) or not key or key == "train.seed":
        _fail(path, f"cannot sweep over {short_repr(key)}" + (": use seeds" if key == "train.seed" else ""))


def _draw(path, key, spec, rng):
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        _fail(path, f"random.space.{key} must be one of {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}, {{choice: [...]}}")
    ((kind, args),) = spec.items()
    if kind == "choice":
        if not isinstance(args, list) or not args:
            _fail(path, f"random.space.{key}.choice must be a non-empty list")
        return args[int(rng.integers(len(args)))]
    if not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) for a in args) and args[0] < args[1]):
        _fail(path, f"random.space.{key}.{kind} must be [low, high] with low < high")
    if kind == "loguniform":
        if args[0] <= 0:
            _fail(path, f"random.space.{key}.loguniform needs low > 0")
        return float(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))
    return float(rng.uniform(*args))


def _check_size(path, settings, seeds):
    if settings * seeds > MAX_TRIALS:
        total = settings * seeds
        _fail(path, f"makes {settings:,} settings x {seeds:,} seeds = {total:,} trials; a sweep runs at most {MAX_TRIALS:,}")


def load_sweep(source, overrides=None, base_dir=None):
    """Read and check a sweep: a file's path, or a mapping (relative paths then resolve against
    ``base_dir``, default the working folder). ``overrides`` are dotted keys set on every trial, added
    to the sweep's ``set``. The trials' configs are validated when they run (an invalid combination is
    a failed trial, not a failed sweep)."""
    if isinstance(source, Mapping):
        raw, path = dict(source), Path(base_dir or ".") / "sweep"
    else:
        path = Path(source)
        raw = load_yaml(path, "sweep file")
    if not isinstance(raw, dict):
        _fail(path, "a sweep file must be a mapping with base, grid/list/random and seeds")
    unknown = set(raw) - SWEEP_KEYS
    if unknown:
        _fail(path, f"unknown key(s) {sorted(unknown)}; a sweep has {sorted(SWEEP_KEYS)}")
    base = raw.get("base", {})
    if isinstance(base, str):
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            _fail(path, f"base config {base!r} does not exist (looked for {base_path})")
        base = load_yaml(base_path) or {}
        if not isinstance(base, dict):
            _fail(base_path, "a config must be a mapping of sections")
        base = _resolve_data_path(base, base_path.parent)
    elif isinstance(base, dict):
        base = _resolve_data_path(base, path.parent)
    else:
        _fail(path, "base must be a config mapping or the path of a config file")
    shared = raw.get("set") or {}
    if not isinstance(shared, dict) or not all(isinstance(k, str) and k for k in shared):
        _fail(path, "set must map dotted config keys to values")
    shared = {**shared, **{str(k).replace("__", "."): v for k, v in (overrides or {}).items()}}
    if "train.seed" in shared:
        _fail(path, "cannot set train.seed for every trial: use seeds")

    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        _fail(path, "seeds must be a non-empty list of integers")

    combos = []
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        _fail(path, "grid must map dotted config keys to non-empty lists of values")
    _check_size(path, math.prod(len(v) for v in grid.values()) if grid else 0, len(seeds))
    if grid:
        keys = list(grid)
        combos += [dict(zip(keys, values)) for values in itertools.product(*grid.values())]
    listed = raw.get("list") or []
    if not isinstance(listed, list) or not all(isinstance(item, dict) for item in listed):
        _fail(path, "list must be a list of mappings of dotted config keys to values")
    combos += [dict(item) for item in listed]
    random = raw.get("random")
    if random is not None:
        if (
            not isinstance(random, dict)
            or set(random) - {"num_trials", "seed", "space"}
            or not isinstance(random.get("space"), dict)
        ):
            _fail(path, "random must have space (a map of key: distribution), num_trials and optionally seed")
        num = random.get("num_trials")
        if not isinstance(num, int) or num < 1:
            _fail(path, "random.num_trials must be a positive integer")
        _check_size(path, len(combos) + num, len(seeds))
        rng = np.random.default_rng(random.get("seed", 0))
        combos += [{k: _draw(path, k, spec, rng) for k, spec in random["space"].items()} for _ in range(num)]
    if not combos:
        combos = [{}]
    _check_size(path, len(combos), len(seeds))
    for combo in combos:
        for key in combo:
            _check_key(path, key)
    trials = tuple(Trial(combo, seed, shared) for combo in combos for seed in seeds)
    names = [t.name for t in trials]
    if len(set(names)) != len(names):
        _fail(path, "two trials have the same overrides and seed")
    swept = tuple(dict.fromkeys(k for combo in combos for k in combo))
    both = sorted(set(swept) & set(shared))
    if both:
        _fail(path, f"{both} are both swept and set for every trial")
    return SweepSpec(base=base, trials=trials, swept_keys=swept, path=path, shared=shared)


def _resolve_data_path(base, folder):
    """A relative npz path in the base config is relative to the file that names it."""
    data = base.get("data") if isinstance(base, dict) else None
    if isinstance(data, dict) and isinstance(data.get("path"), str) and not Path(data["path"]).is_absolute():
        base = {**base, "data": {**data, "path": str((folder / data["path"]).resolve())}}
    return base
