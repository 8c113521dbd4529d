"""The vectorised executor: the trials of a sweep trained as one compiled NumPyro program per group of
trials that share shapes (``infovae sweep S.yaml --executor vectorized``).

Trials are grouped by :func:`~infovae.training.backends.shape_key` (the config without its per-trial
scalars: the objective's weights, learning rate and schedule, seed, warm-up, gradient clip, model
selection and early stopping), in the sweep's order, and a group larger than ``trials_per_program``
is cut into consecutive chunks of that size. On a GPU a group computes every term some trial weighs, so
that a grid over the weights is one compilation; on a CPU, where a step's arithmetic costs more than a
compilation, trials that weigh different terms (the marginal divergence, the JSD) are grouped apart.
Each chunk trains in :func:`~infovae.training.loop_group.train_group`
with the NumPyro backend, writing every trial's run folder as a single run would and the chunk's
checkpoint to ``SWEEP/groups/ID/checkpoint.npz``; when it ends, each finished trial gets a checkpoint
of its own (so ``infovae report`` and ``infovae train --resume ... train.steps=N`` work on it) and the
chunk's checkpoint is removed. A trial whose config is invalid is recorded as failed before any
program starts; a trial whose loss turns non-finite is frozen at that step and recorded as failed,
and the others go on unchanged.

Each trial's run folder is locked while its chunk trains, as ``infovae train`` locks it. Re-running the
sweep, with any grouping (another ``--trials-per-program``, added seeds, another executor), resumes
every trial from the last checkpoint it has: a chunk's checkpoint is first split into its trials' own
(:mod:`infovae.sweeps.groups`), and trials are grouped by the step they resume from. A run folder is
made anew only when it holds no checkpoint, and then only if it holds nothing but what a run writes; a
trial that cannot resume here (a checkpoint of the Pyro backend, files of someone else's) is recorded
as failed with the reason, and its folder is left as it is.

Chunk size: on a CPU, :data:`CPU_TRIALS_PER_PROGRAM` (measured on two cores: the per-trial speed of a
wide ``vmap`` falls, and what a group saves is the fixed cost per trial, process start-up and
compilation); on a GPU, as many trials as half of the device's memory holds by the estimate of
:func:`trial_bytes`, at most :data:`MAX_TRIALS_PER_PROGRAM`.

Workers: one compiled program does not keep several CPU cores busy (measured on two cores: a chunk of
16 trials stepped at 8 ms per trial-step, where two single-trial processes side by side each stepped
at 6 - 8 ms), so on a CPU the chunks train in ``workers`` processes at a time, each started as
``python -m infovae.sweeps.vectorized GROUP_DIR TRIAL_DIR ...`` and stopped like a local sweep's trial.
A process costs its start-up and compilation, so by default there are as many as cores when the
longest chunk trains at least :data:`MIN_TRIAL_STEPS_PER_WORKER` trial-steps, and one (this process)
otherwise: measured on two cores, 16 trials of 300 steps took 51 s in this process and 66 s in two
workers, 57 trials of 3000 steps 22.8 min in this process and 14.5 min in two workers. On a GPU one
process owns the device and trains the chunks one after another.
"""

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infovae.core.architecture import CVAEConfig
from infovae.data.registry import load_splits
from infovae.errors import CheckpointError, RunInterrupted, UserInputError, typed_first_line
from infovae.files import FolderLock, remove_temporary_files
from infovae.machine import jax_device
from infovae.sweeps.executors import OnDone, run_processes
from infovae.sweeps.groups import GROUPS, join_states, state_step, write_members
from infovae.sweeps.trial import RUN, finished_summary, record_outcome, stop_with_sweep, trial_config
from infovae.training.backends import shape_key
from infovae.training.checkpoint import CHECKPOINT, load_checkpoint
from infovae.training.config import RunConfig, apply_overrides, architecture, fit_batch_size, parse_config
from infovae.training.loop_group import train_group
from infovae.training.loop_progress import TrialProgress
from infovae.training.loop_runs import build_backend
from infovae.training.run_folder import RunFolder

__all__ = [
    "CPU_TRIALS_PER_PROGRAM",
    "MAX_TRIALS_PER_PROGRAM",
    "MIN_TRIAL_STEPS_PER_WORKER",
    "default_trials_per_program",
    "run_chunk_process",
    "run_vectorized",
    "trial_bytes",
]

CPU_TRIALS_PER_PROGRAM = 16
# A worker process pays its start-up, imports and compilation (10 - 20 s on two cores): by default a CPU
# sweep starts them only when its longest chunk trains at least this many trial-steps (minutes).
MIN_TRIAL_STEPS_PER_WORKER = 20_000
MAX_TRIALS_PER_PROGRAM = 1024


def trial_bytes(arch: CVAEConfig, config: RunConfig) -> int:
    """An estimate of one trial's device memory while training: its weights four times over (weights,
    selected weights, Adam's two moments) plus gradients, and the activations of a step, the decoder
    run at every latent value (or JSD draw) for every example of the batch, kept for the backward pass."""
    copies = 5 * 4 * arch.num_parameters
    values = arch.latent_size if arch.latent == "discrete" else config.objective.jsd_samples + 1
    activations = 4 * config.train.batch_size * (values + 2) * (4 * arch.hidden + 2 * arch.decoder_output_dim) * 3
    return copies + activations


def default_trials_per_program(arch: CVAEConfig, config: RunConfig) -> int:
    """The default chunk size (module docstring)."""
    device = jax_device()
    if device.platform == "cpu":
        return CPU_TRIALS_PER_PROGRAM
    limit = (device.memory_stats() or {}).get("bytes_limit")
    if not limit:
        return CPU_TRIALS_PER_PROGRAM
    return max(1, min(MAX_TRIALS_PER_PROGRAM, int(0.5 * limit // trial_bytes(arch, config))))


def _group_id(key, step, names):
    return hashlib.sha1(json.dumps([key, step, names]).encode()).hexdigest()[:16]


def _trial_config(trial_dir: str | Path) -> RunConfig:
    """The trial's config as ``trial.json`` records it, for the NumPyro backend (``UserInputError`` if invalid)."""
    return parse_config(apply_overrides(trial_config(trial_dir), {"backend": "numpyro"}))


def _own_state(folder: RunFolder) -> dict[str, Any] | None:
    """The trial's own checkpoint (``None`` if it has none); one of another backend is refused, never deleted."""
    if not folder.has_checkpoint():
        return None
    state = load_checkpoint(folder.checkpoint_path)
    if not isinstance(state, dict) or state.get("backend_name") != "numpyro":
        backend = state.get("backend_name") if isinstance(state, dict) else None
        raise CheckpointError(
            f"{folder.checkpoint_path} is a checkpoint of the {backend} backend, which --executor vectorized cannot "
            "resume; run the sweep with --executor local to resume it"
        )
    state_step(state, folder.checkpoint_path)
    return state


def _resume_step(trial_dir: Path) -> int:
    """The step the trial resumes from: its own checkpoint's, or 0."""
    folder = RunFolder(trial_dir / RUN)
    state = _own_state(folder) if folder.path.is_dir() else None
    return 0 if state is None else int(state["step"])


def run_vectorized(
    trial_dirs: Sequence[Path],
    on_done: OnDone,
    sweep_dir: Path,
    trials_per_program: int | None = None,
    progress: bool | None = None,
    workers: int | None = None,
    **_other_options: Any,
) -> None:
    """Train the trials in ``trial_dirs`` chunk by chunk (module docstring)."""
    on_cpu = jax_device().platform == "cpu"
    groups: dict[tuple[str, int], list[tuple[Path, RunConfig]]] = {}
    for trial_dir in trial_dirs:
        summary = finished_summary(trial_dir)
        if summary is not None:
            on_done(trial_dir, record_outcome(trial_dir, "ok", summary=summary))
            continue
        try:
            config = _trial_config(trial_dir)
            step = _resume_step(Path(trial_dir))
        except UserInputError as error:
            on_done(trial_dir, record_outcome(trial_dir, "failed", typed_first_line(error)))
            continue
        # Trials resume together only from one step: those checkpointed at another are a group of their own.
        groups.setdefault((shape_key(config, split_terms=on_cpu), step), []).append((Path(trial_dir), config))

    splits_cache, chunks = {}, []
    for (key, step), members in groups.items():
        data_key = json.dumps(members[0][1].data.model_dump(mode="json"), sort_keys=True) + members[0][1].likelihood
        try:
            if data_key not in splits_cache:
                splits_cache[data_key] = load_splits(members[0][1].data, members[0][1].likelihood)
            splits = splits_cache[data_key]
            members = [(trial_dir, fit_batch_size(config, splits.train)) for trial_dir, config in members]
            size = trials_per_program or default_trials_per_program(architecture(members[0][1], splits.train), members[0][1])
        except UserInputError as error:
            for trial_dir, _ in members:
                on_done(trial_dir, record_outcome(trial_dir, "failed", typed_first_line(error)))
            continue
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            chunks.append((Path(sweep_dir) / GROUPS / _group_id(key, step, [d.name for d, _ in chunk]), chunk, splits))

    if not on_cpu:
        workers = 1
    elif workers is None:
        longest = max((len(chunk) * chunk[0][1].train.steps for _, chunk, _ in chunks), default=0)
        workers = (os.cpu_count() or 1) if longest >= MIN_TRIAL_STEPS_PER_WORKER else 1
    workers = min(workers, len(chunks))
    if workers > 1:
        group_dirs = {tuple(d for d, _ in chunk): group_dir for group_dir, chunk, _ in chunks}

        def command(task):
            return [sys.executable, "-m", "infovae.sweeps.vectorized", str(group_dirs[task]), *map(str, task)]

        run_processes(list(group_dirs), on_done, workers, command)
    else:
        for group_dir, chunk, splits in chunks:
            for trial_dir, outcome in _run_chunk(chunk, splits, group_dir, progress):
                on_done(trial_dir, outcome)
    groups_dir = Path(sweep_dir) / GROUPS
    if groups_dir.is_dir() and not any(groups_dir.iterdir()):
        groups_dir.rmdir()


def _take(trial_dir, config, splits, locks):
    """Lock the trial's run folder (held until the chunk ends) and return its own checkpoint, if it trained
    on this very data, or ``None`` after making the folder anew (what it holds is the library's, or the
    trial is refused)."""
    folder = RunFolder(trial_dir / RUN)
    folder.create()
    locks.append(folder.lock().acquire())
    remove_temporary_files(folder.path)
    state = _own_state(folder)
    if state is None:
        folder.clear_unstarted()
        folder.write_start(config, splits)
    else:
        folder.check_data(splits, config.data)
    return state


def _run_chunk(chunk, splits, group_dir, progress):
    """Train one chunk; yields ``(trial_dir, outcome)`` per trial. Each trial's run folder is locked as
    ``infovae train`` locks it; a trial whose folder is in use, or cannot be resumed, fails on its own."""
    locks: list[FolderLock] = []
    try:
        ready, states = [], []
        for trial_dir, config in chunk:
            try:
                states.append(_take(trial_dir, config, splits, locks))
            except UserInputError as error:
                yield trial_dir, record_outcome(trial_dir, "failed", typed_first_line(error))
                continue
            ready.append((trial_dir, config))
        if not ready:
            return
        try:
            backend = build_backend([config for _, config in ready], splits)
            state = None if all(s is None for s in states) else join_states(states)
        except UserInputError as error:
            for trial_dir, _ in ready:
                yield trial_dir, record_outcome(trial_dir, "failed", typed_first_line(error))
            return
        trials = [TrialProgress(config, RunFolder(trial_dir / RUN), len(splits.train)) for trial_dir, config in ready]
        write_members(group_dir, [trial_dir.name for trial_dir, _ in ready])
        try:
            outcomes = train_group(backend, trials, splits, group_dir / CHECKPOINT, state, progress, per_trial_checkpoints=True)
        except RunInterrupted as error:
            for trial_dir, _ in ready:
                record_outcome(trial_dir, "interrupted", error)
            raise KeyboardInterrupt from None
        # Every trial has a checkpoint of its own now (the finished ones) or a failure to report.
        shutil.rmtree(group_dir, ignore_errors=True)
        for (trial_dir, _), outcome in zip(ready, outcomes):
            yield trial_dir, record_outcome(trial_dir, outcome.status, outcome.error, outcome.summary)
    finally:
        for lock in locks:
            lock.release()


def run_chunk_process(group_dir: str | Path, trial_dirs: Sequence[str | Path]) -> None:
    """A worker process of a CPU sweep: train one chunk (its trials' configs were checked by the sweep)
    and record each trial's outcome; Ctrl-C or SIGTERM leaves the chunk's checkpoint and exits 130."""
    chunk = [(Path(trial_dir), _trial_config(trial_dir)) for trial_dir in trial_dirs]
    splits = load_splits(chunk[0][1].data, chunk[0][1].likelihood)
    chunk = [(trial_dir, fit_batch_size(config, splits.train)) for trial_dir, config in chunk]
    try:
        for _ in _run_chunk(chunk, splits, Path(group_dir), progress=False):
            pass
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    stop_with_sweep()
    run_chunk_process(sys.argv[1], sys.argv[2:])
