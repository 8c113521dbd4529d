"""Running a sweep into a folder, resumably, and reading it back.

A sweep folder holds ``sweep.json`` (the sweep and its trials), ``trials/NAME/`` per trial (its
``trial.json``, ``outcome.json`` and run folder ``run/``), ``groups/`` (the vectorised executor's
checkpoints of unfinished groups), the results tables, and ``.lock`` while a sweep runs there (one
sweep per folder at a time). Running the sweep again skips the finished trials, resumes the
interrupted ones from their checkpoints, and leaves the failed ones alone unless ``retry_failed``
(which resumes a failed trial that has a checkpoint, and never deletes one); a sweep that gained
settings or seeds runs only the new trials.
"""

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from infovae.errors import ConfigError, RunDirError, RunInterrupted, UserInputError
from infovae.files import FolderLock, read_json, remove_temporary_files, short_repr, write_json
from infovae.sweeps import executors
from infovae.sweeps.groups import GROUPS, dissolve_groups
from infovae.sweeps.progress import ProgressLines, wants_lines
from infovae.sweeps.results import aggregate, markdown_table, trial_table, write_results
from infovae.sweeps.spec import SweepSpec, SweepTrial, load_sweep, unique_names
from infovae.sweeps.trial import (
    OUTCOME,
    RUN,
    TRIAL,
    read_outcome,
    record_ending,
    record_outcome,
    sigterm_as_ctrl_c,
    trial_config,
)

__all__ = ["SWEEP", "Sweep", "open_sweep", "resume_trial", "run_sweep", "trial_sweep"]

SWEEP = "sweep.json"


@dataclass
class Sweep:
    """A sweep folder read back.

    :ivar dir: the sweep folder.
    :ivar spec: the sweep's trials as recorded there.
    :ivar results: ``results.csv`` as a pandas DataFrame (one row per trial; ``pending`` without an outcome).
    """

    dir: Path
    spec: SweepSpec
    results: pd.DataFrame

    @property
    def by_setting(self) -> pd.DataFrame:
        """Mean, standard deviation and count over seeds per setting of the swept keys."""
        return aggregate(self.spec, self.results)

    @property
    def table(self) -> str:
        """The per-setting table as markdown."""
        return markdown_table(self.spec, self.by_setting)

    @property
    def failed(self) -> pd.DataFrame:
        """The trials that ran and did not finish (failed or interrupted)."""
        return self.results[self.results["status"].isin(("failed", "interrupted"))] if len(self.results) else self.results

    @property
    def wall_seconds(self) -> float:
        """From the first trial's start to the last trial's end, read from the times of the files the
        sweep wrote, so that a sweep run elsewhere and copied here with its times is timed too; a pause
        between an interruption and the resumption counts. NaN before any trial ended."""
        trials = self.dir / "trials"
        starts = [p.stat().st_mtime for p in trials.glob(f"*/{TRIAL}")]
        ends = [p.stat().st_mtime for p in trials.glob(f"*/{OUTCOME}")]
        return max(ends) - min(starts) if starts and ends else float("nan")

    def run_dir(self, trial_name: str) -> Path:
        """The run folder of the trial ``trial_name``."""
        return self.dir / "trials" / trial_name / RUN


def _recorded_spec(sweep_dir):
    """The sweep's trials as recorded in its folder (the sweep file may have moved or changed)."""
    path = Path(sweep_dir) / SWEEP
    try:
        record = read_json(path)
        shared = record.get("set", {})
        seed_keys = tuple(record.get("seed_keys", ("train.seed",)))
        trials = unique_names(tuple(SweepTrial(t["overrides"], t["seed"], shared, seed_keys) for t in record["trials"]))
    except FileNotFoundError:
        raise RunDirError(f"{sweep_dir} holds no sweep (no {SWEEP})") from None
    except (KeyError, TypeError, AttributeError):
        raise RunDirError(f"{path} is damaged") from None
    derived = tuple(dict.fromkeys(k for t in trials for k in t.overrides))
    recorded = tuple(record["swept_keys"]) if isinstance(record.get("swept_keys"), list) else ()
    swept = recorded if sorted(recorded) == sorted(derived) else derived  # a folder from before they were recorded
    spec_path = Path(record["spec"]) if record.get("spec") else None  # None: a sweep given as a mapping
    return SweepSpec(base={}, trials=trials, swept_keys=swept, path=spec_path, shared=shared, seed_keys=seed_keys)


def open_sweep(sweep_dir: str | Path) -> Sweep:
    """Read the sweep folder ``sweep_dir`` back: its trials and every outcome recorded there."""
    sweep_dir = Path(sweep_dir)
    spec = _recorded_spec(sweep_dir)
    outcomes = {t.name: read_outcome(sweep_dir / "trials" / t.name) for t in spec.trials}
    return Sweep(sweep_dir, spec, trial_table(spec, {k: v for k, v in outcomes.items() if v is not None}, sweep_dir / "trials"))


def _write_tables(sweep_dir):
    """Write the sweep folder's results tables from the outcomes recorded there; returns the sweep read back.
    Written even when no trial has an outcome yet (Ctrl-C before the first ended), so that the tables
    always describe the folder as it is."""
    result = open_sweep(sweep_dir)
    empty = pd.DataFrame(columns=[*result.spec.swept_keys, "seed", "status", "error", "trial"])
    write_results(result.spec, result.results if len(result.results) else empty, sweep_dir)
    return result


def trial_sweep(run_dir: str | Path) -> Path | None:
    """The sweep folder of the trial whose run folder is ``run_dir`` (``SWEEP/trials/NAME/run``, with
    ``SWEEP/sweep.json`` recording the trial ``NAME``), or ``None`` for a run of no sweep."""
    run_dir = Path(run_dir).absolute()
    trial_dir = run_dir.parent
    sweep_dir = trial_dir.parent.parent
    if run_dir.name != RUN or trial_dir.parent.name != "trials" or not (sweep_dir / SWEEP).is_file():
        return None
    return sweep_dir if trial_dir.name in {t.name for t in _recorded_spec(sweep_dir).trials} else None


def resume_trial(sweep_dir: Path, run_dir: str | Path, resume: Callable[[], dict[str, Any]]) -> None:
    """Resume the trial of the sweep folder ``sweep_dir`` whose run folder is ``run_dir``
    (:func:`trial_sweep`) with ``resume()`` (which returns the run's summary), as running the sweep again
    would: under the sweep folder's lock, from its group's checkpoint where a vectorised sweep left it
    there, recording the trial's outcome and rewriting the sweep's tables. A resume refused as bad input
    changed nothing, so the outcome recorded before stands."""
    trial_dir = Path(run_dir).absolute().parent
    with FolderLock(sweep_dir, "sweep folder"):
        dissolve_groups(sweep_dir)
        try:
            record_outcome(trial_dir, "ok", summary=resume())
        except UserInputError:  # refused before training: the run and its recorded outcome are as they were
            raise
        except (Exception, KeyboardInterrupt) as error:
            record_ending(trial_dir, error)
            _write_tables(sweep_dir)
            raise
        _write_tables(sweep_dir)


def _prepare(spec, out_dir):
    """Create the sweep folder, or check that the one there holds the same trials where they overlap
    (a sweep may grow: new settings or seeds are added, finished trials kept)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirError(f"{out_dir} is a file, not a sweep folder")
    if out_dir.exists() and any(p.name != ".lock" for p in out_dir.iterdir()) and not (out_dir / SWEEP).exists():
        raise RunDirError(f"{out_dir} already exists and holds no sweep; choose another --out")
    specs = {}
    for trial in spec.trials:
        specs[trial.name] = {"config": trial.raw_config(spec.base), "overrides": trial.overrides, "seed": trial.seed}
        recorded = out_dir / "trials" / trial.name / TRIAL
        if recorded.exists() and _recorded_config(recorded) != specs[trial.name]["config"]:
            raise ConfigError(f"{out_dir} holds a different sweep (trial {trial.name} has another config); choose another --out")
    write_json(out_dir / SWEEP, {
        "spec": str(spec.path.resolve()) if spec.path else None,
        "set": spec.shared,
        "seed_keys": list(spec.seed_keys),
        # The swept keys in the sweep file's order (the trials' overrides are stored with sorted keys), so
        # that a sweep read back shows its columns as the file and the written tables do.
        "swept_keys": list(spec.swept_keys),
        "trials": [{"name": t.name, "overrides": t.overrides, "seed": t.seed} for t in spec.trials],
    })  # fmt: skip
    for name, trial_spec in specs.items():
        trial_dir = out_dir / "trials" / name
        trial_dir.mkdir(parents=True, exist_ok=True)
        if not (trial_dir / TRIAL).exists():
            write_json(trial_dir / TRIAL, trial_spec)


def _recorded_config(path):
    """The config a trial's ``trial.json`` records (written atomically: one that cannot be read was damaged)."""
    return trial_config(path.parent)


def _check_inside(spec, out_dir):
    """That no trial folder of the sweep (nor its run folder) is a link leading out of the sweep folder:
    a rerun writes and deletes there."""
    root = out_dir.resolve()
    for path in [out_dir / "trials", out_dir / GROUPS, *(out_dir / "trials" / t.name / RUN for t in spec.trials)]:
        for part in (path.parent, path) if path.name == RUN else (path,):
            if part.is_symlink() and not part.resolve().is_relative_to(root):
                raise RunDirError(f"{part} is a link out of the sweep folder {out_dir}; a sweep writes only inside its folder")


def _clean_leftovers(spec, out_dir):
    """The temporary files that a process killed mid-write left in the sweep's and its trials' folders
    (a run folder's are removed by whoever takes its lock)."""
    remove_temporary_files(out_dir)
    for trial in spec.trials:
        if (out_dir / "trials" / trial.name).is_dir():
            remove_temporary_files(out_dir / "trials" / trial.name)


def _check_options(options, retry_failed, progress):
    """The executor's options as the command line checks them, before anything is made."""
    unknown = sorted(set(options) - {"workers", "trials_per_program", "address"})
    if unknown:
        raise UserInputError(f"unknown sweep option(s) {unknown}; the options are workers, trials_per_program and address")
    for name in ("workers", "trials_per_program"):
        value = options.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise UserInputError(
                f"{name} must be a whole number of at least 1 (or None for the default), got {short_repr(value)}"
            )
    address = options.get("address")
    if address is not None and not isinstance(address, str):
        raise UserInputError(f"address must be a Ray address (a string), got {short_repr(address)}")
    if not isinstance(retry_failed, bool) or not (progress is None or isinstance(progress, bool)):
        raise UserInputError("retry_failed must be True or False, and progress True, False or None")


def _pending(spec, out_dir, retry_failed):
    """The trials to run: those without an outcome, the interrupted ones, and with ``retry_failed``
    the failed ones (whose run folders are kept where they can resume)."""
    pending = []
    for trial in spec.trials:
        trial_dir = out_dir / "trials" / trial.name
        outcome = read_outcome(trial_dir)
        if outcome is None or outcome["status"] == "interrupted" or (retry_failed and outcome["status"] == "failed"):
            (trial_dir / OUTCOME).unlink(missing_ok=True)
            pending.append(trial_dir)
    return pending


def run_sweep(
    source: str | Path | Mapping[str, Any],
    out_dir: str | Path | None = None,
    executor: str = "local",
    progress: bool | None = None,
    overrides: Mapping[str, Any] | None = None,
    retry_failed: bool = False,
    **options: Any,
) -> Sweep:
    """Run the sweep ``source`` (a file or a mapping) into ``out_dir`` (default ``runs/SWEEP_FILE``)
    and return it read back. ``options`` go to the executor (``workers``, ``address``,
    ``trials_per_program``).

    :raises RunInterrupted: on Ctrl-C, after the running trials wrote their checkpoints and the
        results tables were written.
    """
    run = executors.executor(executor)
    _check_options(options, retry_failed, progress)
    spec = load_sweep(source, overrides)
    name = spec.path.stem if spec.path else "sweep"
    out_dir = Path(out_dir or Path("runs") / name)
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise RunDirError(f"{out_dir} is a file, not a sweep folder")
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a part of the path is a file, no permission, a read-only or odd file system, a name too long
        raise RunDirError(f"cannot make the sweep folder {out_dir}: {error.strerror or error}") from None
    # SIGTERM stops the sweep as Ctrl-C does: the trials checkpoint, their outcomes and the tables are written.
    with FolderLock(out_dir, "sweep folder"), sigterm_as_ctrl_c():
        _check_inside(spec, out_dir)
        _prepare(spec, out_dir)
        _clean_leftovers(spec, out_dir)
        dissolve_groups(out_dir)
        pending = _pending(spec, out_dir, retry_failed)
        done = len(spec.trials) - len(pending)
        bar = tqdm(total=len(spec.trials), initial=done, desc="trials", disable=None if progress is None else not progress)
        counts = {"failed": 0}
        # Where the bar shows nothing (the output is not a terminal), plain lines say what the sweep does.
        lines = ProgressLines(len(spec.trials), done) if pending and wants_lines(progress) else None

        def on_done(trial_dir, outcome):
            counts["failed"] += outcome["status"] != "ok"
            bar.update(1)
            bar.set_postfix(failed=counts["failed"])
            if lines is not None:
                lines.finished(trial_dir, outcome)

        interrupted = False
        try:
            with lines or nullcontext():
                if pending:
                    run(pending, on_done, sweep_dir=out_dir, progress=progress if executor == "vectorized" else False, **options)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        result = _write_tables(out_dir)
        if interrupted:
            waiting = len(spec.trials) - int((result.results["status"] == "ok").sum() if len(result.results) else 0)
            raise RunInterrupted(
                f"sweep interrupted; {waiting} trials did not finish and resume when it runs again: infovae sweep ... "
                f"--out {out_dir}"
            )
        return result
