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
and the others go on unchanged. Re-running the sweep resumes an interrupted chunk from its checkpoint.

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
from infovae.errors import ConfigError, RunInterrupted, UserInputError
from infovae.sweeps.executors import OnDone, run_processes
from infovae.sweeps.trial import RUN, TRIAL, finished_summary, record_outcome, stop_with_sweep
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
GROUPS = "groups"


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
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return CPU_TRIALS_PER_PROGRAM
    limit = (device.memory_stats() or {}).get("bytes_limit")
    if not limit:
        return CPU_TRIALS_PER_PROGRAM
    return max(1, min(MAX_TRIALS_PER_PROGRAM, int(0.5 * limit // trial_bytes(arch, config))))


def _group_id(key, names):
    return hashlib.sha1(json.dumps([key, names]).encode()).hexdigest()[:12]


def _trial_config(trial_dir: str | Path) -> RunConfig:
    """The trial's config as ``trial.json`` records it, for the NumPyro backend (``ConfigError`` if invalid)."""
    spec = json.loads((Path(trial_dir) / TRIAL).read_text())
    return parse_config(apply_overrides(spec["config"], {"backend": "numpyro"}))


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
    import jax

    on_cpu = jax.default_backend() == "cpu"
    groups: dict[str, list[tuple[Path, RunConfig]]] = {}
    for trial_dir in trial_dirs:
        summary = finished_summary(trial_dir)
        if summary is not None:
            on_done(trial_dir, {"status": "ok", "error": "", "summary": summary})
            continue
        try:
            config = _trial_config(trial_dir)
        except ConfigError as error:
            on_done(trial_dir, record_outcome(trial_dir, "failed", f"ConfigError: {error}"))
            continue
        groups.setdefault(shape_key(config, split_terms=on_cpu), []).append((Path(trial_dir), config))

    splits_cache, chunks = {}, []
    for key, members in groups.items():
        data_key = json.dumps(members[0][1].data.model_dump(mode="json"), sort_keys=True) + members[0][1].likelihood
        try:
            if data_key not in splits_cache:
                splits_cache[data_key] = load_splits(members[0][1].data, members[0][1].likelihood)
            splits = splits_cache[data_key]
            members = [(trial_dir, fit_batch_size(config, splits.train)) for trial_dir, config in members]
            size = trials_per_program or default_trials_per_program(architecture(members[0][1], splits.train), members[0][1])
        except UserInputError as error:
            for trial_dir, _ in members:
                on_done(trial_dir, record_outcome(trial_dir, "failed", f"{type(error).__name__}: {error}"))
            continue
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            chunks.append((Path(sweep_dir) / GROUPS / _group_id(key, [d.name for d, _ in chunk]), chunk, splits))

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


def _run_chunk(chunk, splits, group_dir, progress):
    """Train one chunk; yields ``(trial_dir, outcome)`` per trial."""
    configs = [config for _, config in chunk]
    try:
        backend = build_backend(configs, splits)
    except UserInputError as error:
        for trial_dir, _ in chunk:
            yield trial_dir, record_outcome(trial_dir, "failed", f"{type(error).__name__}: {error}")
        return
    checkpoint = group_dir / CHECKPOINT
    state = load_checkpoint(checkpoint) if checkpoint.exists() else None
    trials = []
    for trial_dir, config in chunk:
        folder = RunFolder(trial_dir / RUN)
        if state is None:
            # Nothing of this chunk was checkpointed: whatever its folders hold starts over.
            shutil.rmtree(folder.path, ignore_errors=True)
            folder.create()
            folder.write_start(config, splits)
        trials.append(TrialProgress(config, folder, len(splits.train)))
    group_dir.mkdir(parents=True, exist_ok=True)
    try:
        outcomes = train_group(backend, trials, splits, checkpoint, state, progress, per_trial_checkpoints=True)
    except RunInterrupted as error:
        for trial_dir, _ in chunk:
            record_outcome(trial_dir, "interrupted", error)
        raise KeyboardInterrupt from None
    shutil.rmtree(group_dir, ignore_errors=True)
    for (trial_dir, _), outcome in zip(chunk, outcomes):
        yield trial_dir, record_outcome(trial_dir, outcome.status, outcome.error, outcome.summary)


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
