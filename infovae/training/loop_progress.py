"""The host's bookkeeping of one trial of a group while it trains (its status, the running means of its
terms, its best evaluation so far, its minibatch order), and how a trial ended."""

import json
import math
from dataclasses import dataclass, field
from typing import Any

from infovae.errors import CheckpointError
from infovae.training.config import RunConfig
from infovae.training.loop_sampling import MinibatchSampler
from infovae.training.run_folder import RunFolder

__all__ = ["Outcome", "TrialProgress"]


@dataclass
class TrialProgress:
    """The host's bookkeeping of one trial of a group."""

    config: RunConfig
    folder: RunFolder
    num_train: int
    status: str = "running"  # running, stopped (early), failed
    error: str = ""
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    # The best evaluation of train.monitor so far, signed so that lower is better: evaluations every
    # train.eval_every steps only, the candidates of every run of these steps, however long.
    best_score: float = math.inf
    best_step: int = 0
    stale: int = 0
    last_step: int = 0
    # Whether the evaluation at the run's end, off the eval_every grid, beat the best: then the last
    # weights are the selected ones. A longer run never evaluates that step, so an extended run forgets it.
    end_is_best: bool = False

    def __post_init__(self):
        self.sampler = MinibatchSampler(self.num_train, self.config.train.batch_size, self.config.train.seed)

    def add(self, terms: dict[str, float]) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def means(self) -> dict[str, float]:
        """The running means of the terms since the last :meth:`take_means` (``train_<term>``)."""
        return {f"train_{k}": v / max(self.count, 1) for k, v in self.sums.items()}

    def take_means(self) -> dict[str, float]:
        """The running means of the terms since the last call (``train_<term>``), and a fresh start."""
        means = self.means()
        self.sums, self.count = {}, 0
        return means

    def state_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "error": self.error, "sums": dict(self.sums), "count": self.count,
            "best_score": self.best_score, "best_step": self.best_step, "stale": self.stale, "last_step": self.last_step,
            "end_is_best": self.end_is_best, "sampler": self.sampler.state_dict(), "config": _resumable(self.config),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; values no run can have (a negative step, an unknown status) are a
        ``ValueError``, and a config other than the one the state was trained with a ``CheckpointError``."""
        if state["status"] not in ("running", "stopped", "failed") or not isinstance(state["error"], str):
            raise ValueError(f"a trial's status is {state['status']!r}")
        for name in ("count", "best_step", "stale", "last_step"):
            value = state[name]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= self.config.train.steps:
                raise ValueError(f"a trial's {name} is {value!r}, outside 0 - train.steps")
        trained = state.get("config")
        if trained is not None and trained != _resumable(self.config):
            changed = _first_difference(json.loads(trained), json.loads(_resumable(self.config)))
            raise CheckpointError(
                f"{self.folder.config_path}: {changed} differs from the config the checkpoint was trained with; "
                "restore it, or start a new run"
            )
        # Checkpoints written before the end's evaluation was kept apart have no end_is_best.
        end_is_best = state.get("end_is_best", False)
        if not isinstance(end_is_best, bool):
            raise ValueError(f"a trial's end_is_best is {end_is_best!r}, not true or false")
        for name in ("status", "error", "count", "best_step", "stale", "last_step"):
            setattr(self, name, state[name])
        self.end_is_best = end_is_best
        self.sums, self.best_score = {str(k): float(v) for k, v in dict(state["sums"]).items()}, float(state["best_score"])
        self.sampler.load_state_dict(state["sampler"])


def _resumable(config: RunConfig) -> str:
    """The config a checkpoint must be resumed with, as JSON: all of it but ``train.steps`` (a run may be extended)."""
    raw = config.model_dump(mode="json")
    raw["train"].pop("steps")
    return json.dumps(raw, sort_keys=True)


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    """The first dotted key at which two config mappings differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
    return where or "the config"


@dataclass
class Outcome:
    """How a trial ended: ``status`` ok or failed, the one-line ``error``, and its summary."""

    status: str
    error: str
    summary: dict[str, Any]
