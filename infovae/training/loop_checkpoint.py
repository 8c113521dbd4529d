"""A group of trials as a checkpoint and back: the state the loop writes after each evaluation and
restores on resume (the file format itself: :mod:`infovae.training.checkpoint`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from infovae.errors import CheckpointError

if TYPE_CHECKING:
    from infovae.training.backends import Backend
    from infovae.training.loop_progress import TrialProgress

__all__ = ["group_state", "restore_group"]


def group_state(
    step: int, seconds: float, backend: Backend, trials: Sequence[TrialProgress], backend_state: Any = None
) -> dict[str, Any]:
    """What a checkpoint of a group holds: the step, the training time, the backend's state and each
    trial's bookkeeping (``backend_state`` instead of the backend's own: one trial's, say)."""
    return {
        "step": step,
        "seconds": seconds,
        "backend_name": backend.name,
        "backend": backend.state_dict() if backend_state is None else backend_state,
        "trials": [t.state_dict() for t in trials],
    }


def restore_group(state: dict[str, Any], backend: Backend, trials: Sequence[TrialProgress]) -> tuple[int, float]:
    """Put a checkpoint's state back into ``backend`` and ``trials``; returns ``(step, seconds)``.
    A checkpoint of another backend, group size or structure is a :class:`~infovae.errors.CheckpointError`."""
    try:
        if state["backend_name"] != backend.name:
            raise CheckpointError(f"the checkpoint was written by the {state['backend_name']} backend, not {backend.name}")
        if len(state["trials"]) != len(trials):
            raise CheckpointError(f"the checkpoint holds {len(state['trials'])} trials, not {len(trials)}")
        step, seconds = state["step"], float(state["seconds"])
        longest = max(t.config.train.steps for t in trials)
        if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= longest:
            raise CheckpointError(f"the checkpoint's step is {step!r}, outside 0 - {longest} (train.steps)")
        if not seconds >= 0:
            raise CheckpointError(f"the checkpoint's training time is {seconds!r} seconds")
        # The trials before the weights: a config edited since the checkpoint (model.hidden, say) is then
        # refused naming the key, not by the shapes of the weights it changed.
        for trial, trial_state in zip(trials, state["trials"]):
            trial.load_state_dict(trial_state)
        backend.load_state_dict(state["backend"])
        return step, seconds
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"the checkpoint has the wrong structure ({type(error).__name__}: {error})") from None
