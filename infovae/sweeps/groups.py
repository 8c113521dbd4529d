"""The vectorised executor's group checkpoints, turned back into each trial's own, so that a sweep resumes
from whatever was checkpointed however its trials are grouped next time.

A chunk of trials trained as one program checkpoints to ``SWEEP/groups/ID/checkpoint.npz`` beside
``members.json``, the names of its trials in the order of the checkpoint's trials. Every leaf of a
NumPyro group's backend state carries the trials on its first axis, so trial ``i``'s own checkpoint is
each leaf's slice ``[i:i+1]`` with the group's step and the ``i``-th trial's bookkeeping: exactly what a
single NumPyro run of that trial checkpoints. Before any trial of a sweep runs (whichever executor),
:func:`dissolve_groups` writes each member's own checkpoint into its run folder, unless that folder
already holds a checkpoint at least as far along, and only then removes the group's folder;
:func:`join_states` stacks trials' own checkpoints (at one step) into a group's again.

A kill at any moment loses nothing checkpointed: a group's folder is removed only after every member's
checkpoint is written (atomically), and a member written twice gets the same state twice.
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from infovae.errors import CheckpointError, RunDirError
from infovae.files import FolderLock, read_json, remove_temporary_files, write_json
from infovae.training.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint

__all__ = ["GROUPS", "MEMBERS", "checkpoint_step", "dissolve_groups", "join_states", "split_state", "state_step", "write_members"]

GROUPS, MEMBERS = "groups", "members.json"
_RUN, _TRIALS = "run", "trials"


def _map_leaves(function: Callable[..., Any], *trees: Any) -> Any:
    """``function`` applied leaf by leaf to trees of one structure (dicts, lists, tuples; arrays at the leaves)."""
    first = trees[0]
    if isinstance(first, dict):
        return {key: _map_leaves(function, *(tree[key] for tree in trees)) for key in first}
    if isinstance(first, (list, tuple)):
        mapped = [_map_leaves(function, *parts) for parts in zip(*trees, strict=True)]
        return tuple(mapped) if isinstance(first, tuple) else mapped
    return function(*trees)


def split_state(state: dict[str, Any], index: int) -> dict[str, Any]:
    """Trial ``index``'s own checkpoint out of its group's (module docstring)."""
    return {
        "step": state["step"],
        "seconds": state["seconds"],
        "backend_name": state["backend_name"],
        "backend": _map_leaves(lambda leaf: np.asarray(leaf)[index : index + 1], state["backend"]),
        "trials": [state["trials"][index]],
    }


def join_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A group's checkpoint from its trials' own, all at one step (the longest training time kept)."""
    if any(s is None for s in states) or len({s["step"] for s in states}) != 1:
        raise CheckpointError("the trials of this chunk were checkpointed at different steps meanwhile; run the sweep again")
    try:
        return {
            "step": states[0]["step"],
            "seconds": max(float(s["seconds"]) for s in states),
            "backend_name": states[0]["backend_name"],
            "backend": _map_leaves(
                lambda *leaves: np.concatenate([np.asarray(a) for a in leaves]), *(s["backend"] for s in states)
            ),
            "trials": [trial for s in states for trial in s["trials"]],
        }
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"the trials' checkpoints cannot be joined into one group ({type(error).__name__}: {error})"
        ) from None


def state_step(state: Any, where: str | Path) -> int:
    """The step of a checkpoint's ``state`` read from ``where`` (:class:`~infovae.errors.CheckpointError`
    if it has no valid one)."""
    step = state.get("step") if isinstance(state, dict) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"checkpoint {where} has no valid step (got {step!r})")
    return step


def checkpoint_step(path: str | Path) -> int:
    """The step of the checkpoint at ``path``."""
    return state_step(load_checkpoint(path), path)


def write_members(group_dir: Path, names: Sequence[str]) -> None:
    """Record which trials a group's checkpoint holds, before its first checkpoint."""
    group_dir.mkdir(parents=True, exist_ok=True)
    write_json(group_dir / MEMBERS, list(names))


def _further_along(run_dir: Path, step: int) -> bool:
    """Whether the run folder already holds a checkpoint of ``step`` or later (a finished trial without
    one gets the group's, so that it can be reported)."""
    try:
        return (run_dir / CHECKPOINT).exists() and checkpoint_step(run_dir / CHECKPOINT) >= step
    except CheckpointError:  # a damaged checkpoint of its own: the group's is the better one
        return False


def dissolve_groups(sweep_dir: str | Path) -> None:
    """Write every group checkpoint's trials into their run folders, then remove the group (module docstring).

    A group folder this version did not write (no ``members.json``) is left alone; one whose members
    are not trials of this sweep, or whose run folder another process holds, stops the sweep on one line.
    """
    groups = Path(sweep_dir) / GROUPS
    if not groups.is_dir():
        return
    for group_dir in sorted(p for p in groups.iterdir() if p.is_dir() and not p.is_symlink()):
        if not (group_dir / MEMBERS).is_file():
            continue
        names = read_json(group_dir / MEMBERS)
        if not isinstance(names, list) or not all(
            isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in names
        ):
            raise RunDirError(f"{group_dir / MEMBERS} is not a list of trial names; the sweep folder is damaged")
        checkpoint = group_dir / CHECKPOINT
        if checkpoint.exists():
            state = load_checkpoint(checkpoint)
            if not isinstance(state, dict) or len(state.get("trials", ())) != len(names):
                raise RunDirError(f"{checkpoint} does not hold the {len(names)} trials of {MEMBERS}; the sweep folder is damaged")
            step = state_step(state, checkpoint)
            for index, name in enumerate(names):
                run_dir = Path(sweep_dir) / _TRIALS / name / _RUN
                if not run_dir.is_dir() or run_dir.is_symlink():
                    raise RunDirError(f"{group_dir} holds trial {name}, which has no run folder in {sweep_dir}; it is kept")
                with FolderLock(run_dir):
                    if not _further_along(run_dir, step):
                        save_checkpoint(run_dir / CHECKPOINT, split_state(state, index))
        remove_temporary_files(group_dir)
        checkpoint.unlink(missing_ok=True)
        (group_dir / MEMBERS).unlink()
        if not any(group_dir.iterdir()):
            group_dir.rmdir()
    if not any(groups.iterdir()):
        groups.rmdir()
