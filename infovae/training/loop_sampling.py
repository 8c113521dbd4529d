"""Each trial's minibatches, drawn without replacement within each pass over the data, in an order of
its own (its seed), and the seed of each evaluation's draws."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from infovae.training.config import RunConfig

__all__ = ["MinibatchSampler", "eval_seed"]


class MinibatchSampler:
    """Minibatches drawn without replacement within each pass over the data (epoch)."""

    def __init__(self, num_examples: int, batch_size: int, seed: int):
        self.num_examples, self.batch_size = num_examples, batch_size
        self.rng = np.random.default_rng(seed)
        self.order, self.position = self.rng.permutation(num_examples), 0

    def next(self) -> np.ndarray:
        """The next minibatch's example indices ``[batch_size]``."""
        if self.position + self.batch_size > self.num_examples:
            self.order, self.position = self.rng.permutation(self.num_examples), 0
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "order": self.order.copy(), "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; one that is not this sampler's (another data size, a position
        outside the order) is a ``ValueError``."""
        order, position = np.asarray(state["order"]), state["position"]
        if (
            order.shape != (self.num_examples,)
            or order.dtype.kind not in "iu"
            or not np.array_equal(np.sort(order), np.arange(self.num_examples))
        ):
            raise ValueError(f"the minibatch order is not a permutation of the {self.num_examples} training examples")
        if not isinstance(position, (int, np.integer)) or not 0 <= position <= self.num_examples:
            raise ValueError(f"the minibatch position {position!r} is outside 0 - {self.num_examples}")
        self.rng.bit_generator.state = state["rng"]
        self.order, self.position = order.copy(), int(position)


def eval_seed(config: RunConfig, step: int) -> int:
    """The seed of an evaluation: fixed by the trial's seed and the step, apart from training's stream."""
    return config.train.seed * 1_000_003 + step
