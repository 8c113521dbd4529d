"""A single run from its config to its run folder, and back: start, resume or extend it, and read a
finished run's data and trained model (:class:`~infovae.training.runs.Run` loads these when first used).

Everything that can be checked (config, data, model size, the folder) is checked before a folder is
created or written, so that bad input leaves nothing behind.
"""

import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infovae.core.marginals import MARGINALS
from infovae.data.base import DataSplits
from infovae.data.registry import load_splits
from infovae.diagnostics.evaluate import reports_marginal
from infovae.errors import RunDirError, TrainingDiverged, UserInputError, first_line
from infovae.files import remove_temporary_files
from infovae.training.backends import Backend, backend_class
from infovae.training.checkpoint import load_checkpoint
from infovae.training.config import RunConfig, apply_overrides, architecture, fit_batch_size, parse_config
from infovae.training.loop_checkpoint import restore_group
from infovae.training.loop_group import train_group
from infovae.training.loop_progress import TrialProgress
from infovae.training.run_folder import RunFolder

__all__ = ["build_backend", "load_run_splits", "restore_backend", "resume_run", "start_run"]


def _check_monitor(config, splits):
    """That the data and objective give the quantity ``train.monitor`` watches."""
    monitor = config.train.monitor
    if config.train.select == "last" and config.train.early_stopping is None:
        return
    needs = {
        "probe_accuracy": (splits.train.labels is not None, "labelled data"),
        "nmi": (splits.train.labels is not None, "labelled data"),
        "ami": (splits.train.labels is not None, "labelled data"),
        "coverage_tv": (splits.generator is not None, "a data set with a known generator (strategies)"),
        "marginal": (reports_marginal(config.objective), "objective.marginal other than kl"),
    }
    ok, what = needs.get(monitor, (True, ""))
    if not ok:
        raise UserInputError(f"train.monitor={monitor} needs {what}")


def build_backend(configs: Sequence[RunConfig], splits: DataSplits) -> Backend:
    """The backend of a group of configs (one backend, one architecture) on ``splits``. The marginal
    divergence's function is imported and checked here, before any step (a plug-in names it by a string)."""
    arch = architecture(configs[0], splits.train)
    for config in configs:
        _check_monitor(config, splits)
        if config.objective.marginal is not None:
            MARGINALS[config.objective.marginal].function(config.backend)
    return backend_class(configs[0].backend)(configs, arch, splits.train)


def load_run_splits(config: RunConfig, folder: RunFolder) -> DataSplits:
    """The data of a run, split as its ``splits.npz`` records; data whose split or content changed since
    the run began is refused (:meth:`~infovae.training.run_folder.RunFolder.check_data`)."""
    splits = load_splits(config.data, config.likelihood)
    folder.check_data(splits, config.data)
    return splits


def restore_backend(config: RunConfig, splits: DataSplits, folder: RunFolder) -> Backend:
    """A backend holding the weights of the run folder's checkpoint."""
    backend = build_backend([config], splits)
    trial = TrialProgress(config, folder, len(splits.train))
    restore_group(load_checkpoint(folder.checkpoint_path), backend, [trial])
    if not trial.end_is_best:  # else the last weights, which the backend holds, are the selected ones
        backend.use_selected()
    return backend


def start_run(
    config: RunConfig, out_dir: str | Path, progress: bool | None = None, callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    """Train ``config`` into the new run folder ``out_dir`` and return the summary.

    Everything that can be checked (config, data, model size, the folder) is checked before the folder
    is created or written, so that bad input leaves nothing behind; bad input found only at the first step
    removes what this start made, unless it trained something.
    """
    folder = RunFolder(out_dir)
    if not folder.is_empty():
        hint = "--resume it" if folder.has_checkpoint() and not folder.summary_path.exists() else "choose another --out"
        raise RunDirError(f"run folder {folder.path} already exists and is not empty; {hint}")
    splits = load_splits(config.data, config.likelihood)
    config = fit_batch_size(config, splits.train)
    backend = build_backend([config], splits)
    made = folder.create()
    with folder.lock():
        if not folder.is_empty():
            raise RunDirError(f"run folder {folder.path} was filled by another process meanwhile; choose another --out")
        try:
            folder.write_start(config, splits)
        except BaseException:
            _remove_unstarted(folder, made)
            raise
        try:
            return _run_one(backend, config, folder, splits, None, progress, callbacks)
        except UserInputError:
            # Bad input found at the first step (a library that fails to import when a program is first
            # traced, say): the same --out must work once it is fixed.
            _remove_unstarted(folder, made)
            raise
        except (MemoryError, RuntimeError) as error:
            # Memory runs out at the first step (the optimiser's state, a step's activations), after the
            # folder was made: a run that trained nothing is removed and the size named on one line.
            if not _out_of_memory(error) or not _remove_unstarted(folder, made):
                raise
            raise UserInputError(f"the model does not fit in this machine's memory: {first_line(error)[:300]}") from None


def _remove_unstarted(folder: RunFolder, made: list[Path]) -> bool:
    """Remove what a start that failed wrote, unless it trained something (a checkpoint, an evaluation):
    the folder if the start made it, else only the run's files in it, and then the parents the start made
    (``made``: the folders :meth:`RunFolder.create` made, the run's first) while they are empty. Returns
    whether it did."""
    if folder.has_checkpoint() or folder.has_records():
        return False
    own = bool(made) and made[0] == folder.path
    if own:
        shutil.rmtree(folder.path, ignore_errors=True)
    else:  # the folder was empty when the start began (start_run checks): only the run's own files are there
        folder.clear_unstarted()
    for parent in made[1:] if own else made:
        try:
            parent.rmdir()  # only if empty: another run may have been put beside this one meanwhile
        except OSError:
            break
    return True


def _out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation that failed (NumPy's, torch's or XLA's)."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or any(s in text for s in ("allocate", "out of memory", "resource_exhausted"))


def _run_one(backend, config, folder, splits, state, progress, callbacks):
    trial = TrialProgress(config, folder, len(splits.train))
    (outcome,) = train_group(backend, [trial], splits, folder.checkpoint_path, state, progress, callbacks)
    if outcome.status != "ok":
        raise TrainingDiverged(outcome.error)
    return outcome.summary


def resume_run(
    out_dir: str | Path, steps: int | None = None, progress: bool | None = None, callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    """Continue the run in ``out_dir`` from its last checkpoint, or extend a finished run to ``steps``
    (bit-equal on CPU to a run trained to ``steps`` in one go); returns the summary."""
    folder = RunFolder(out_dir)
    if not folder.holds_run():
        raise RunDirError(f"{folder.path} holds no run to resume (no config.yaml)")
    with folder.lock():
        remove_temporary_files(folder.path)
        config = folder.read_config()
        summary = folder.read_summary()
        length = config.train.steps  # before an extension
        if steps is not None and steps != config.train.steps:
            config = _extended(config, steps, summary, folder)
        elif summary is not None:
            raise RunDirError(
                f"the run in {folder.path} has finished already (it has a summary.json); pass train.steps=N to extend it"
            )
        if not folder.has_checkpoint() and folder.has_records():
            # Training from step 0 would write over the evaluations. A trial of a vectorised sweep keeps its
            # checkpoint in its group's folder until the sweep, or infovae.resume, splits it into the trials'.
            raise RunDirError(
                f"{folder.path} has evaluations but no checkpoint of its own to resume from; a trial of a vectorised "
                "sweep resumes from its group's checkpoint (SWEEP_DIR/groups/) with infovae.resume, infovae train "
                "--resume or the sweep run again, any other run only from the start: move the folder away first"
            )
        splits = load_run_splits(config, folder)
        backend = build_backend([config], splits)
        state = load_checkpoint(folder.checkpoint_path) if folder.has_checkpoint() else None
        if state is not None and config.train.steps != length and config.train.lr_schedule == "cosine":
            warnings.warn(
                f"train.lr_schedule=cosine decays the learning rate to 0 over train.steps: the run's first "
                f"{int(state['step'])} steps followed the decay over {length} steps, the rest follow the decay over "
                f"{config.train.steps}, so the run does not equal one trained to {config.train.steps} steps in one go",
                stacklevel=2,
            )
        if steps is not None:
            if state is not None:  # a checkpoint the run cannot continue from is refused before the folder changes
                restore_group(state, backend, [TrialProgress(config, folder, len(splits.train))])
            folder.write_start(config, splits)
            folder.summary_path.unlink(missing_ok=True)
        return _run_one(backend, config, folder, splits, state, progress, callbacks)


def _extended(config, steps, summary, folder):
    """The run's config with ``train.steps`` raised to ``steps``, validated as a new run's would be."""
    extended = parse_config(apply_overrides(config.to_dict(), {"train.steps": steps}))
    steps = extended.train.steps
    if steps < config.train.steps:
        raise UserInputError(f"train.steps={steps} is fewer than the run's {config.train.steps}; a run can only be extended")
    if summary is not None and summary.get("stopped_early"):
        done = summary.get("steps")
        raise UserInputError(f"the run in {folder.path} stopped early at step {done} (train.early_stopping); it is not extended")
    return extended
