"""The host's bookkeeping of one trial of a group while it trains (its status, the running means of its
terms, its best evaluation so far, its minibatch order), and how a trial ended."""

import math
from dataclasses import dataclass, field
from typing import Any

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
    # The best evaluation of train.monitor so far, signed so that lower is better.
    best_score: float = math.inf
    best_step: int = 0
    stale: int = 0
    last_step: int = 0

    def __post_init__(self):
        self.sampler = MinibatchSampler(self.num_train, self.config.train.batch_size, self.config.train.seed)

    def add(self, terms: dict[str, float]) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def take_means(self) -> dict[str, float]:
        """The running means of the terms since the last call (``train_<term>``), and a fresh start."""
        means = {f"train_{k}": v / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means

    def state_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "error": self.error, "sums": dict(self.sums), "count": self.count,
            "best_score": self.best_score, "best_step": self.best_step, "stale": self.stale, "last_step": self.last_step,
            "sampler": self.sampler.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("status", "error", "count", "best_step", "stale", "last_step"):
            setattr(self, name, state[name])
        self.sums, self.best_score = dict(state["sums"]), float(state["best_score"])
        self.sampler.load_state_dict(state["sampler"])


@dataclass
class Outcome:
    """How a trial ended: ``status`` ok or failed, the one-line ``error``, and its summary."""

    status: str
    error: str
    summary: dict[str, Any]
