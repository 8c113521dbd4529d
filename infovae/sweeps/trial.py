"""One trial of a sweep, run wherever an executor puts it; its outcome is a small JSON record.

``python -m infovae.sweeps.trial TRIAL_DIR`` runs the trial described by ``TRIAL_DIR/trial.json``
(written by the sweep) in ``TRIAL_DIR/run`` and records the outcome in ``TRIAL_DIR/outcome.json``:
``ok`` with the summary, ``failed`` (an invalid config, a diverged run, a crash) with a one-line error,
or ``interrupted`` (Ctrl-C, SIGTERM: the run keeps a checkpoint and resumes when the sweep runs again).
A failure is an outcome too, so one trial never stops the others.
"""

import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infovae.errors import RunDirError, RunInterrupted, TrainingDiverged, UserInputError, typed_first_line
from infovae.files import read_json, write_json

__all__ = [
    "OUTCOME",
    "Outcome",
    "PARENT_ENV",
    "RUN",
    "TRIAL",
    "read_outcome",
    "record_ending",
    "record_outcome",
    "run_trial",
    "sigterm_as_ctrl_c",
    "stop_with_sweep",
    "trial_config",
]

TRIAL, OUTCOME, RUN = "trial.json", "outcome.json", "run"
# Set in a trial process started by a local sweep: the sweep's pid, so that the trial dies with it.
PARENT_ENV = "INFOVAE_SWEEP_PID"


STATUSES = ("ok", "failed", "interrupted")
# A trial's outcome as ``outcome.json`` holds it: ``status``, ``error`` (one line) and ``summary``.
Outcome = dict[str, Any]


def record_outcome(trial_dir: str | Path, status: str, error: object = "", summary: Mapping[str, Any] | None = None) -> Outcome:
    """Write the trial's outcome (the one writer of ``outcome.json``, atomically) and return it: its
    ``status`` (:data:`STATUSES`), the first line of ``error`` (at most 500 characters) and ``summary``."""
    if status not in STATUSES:
        raise ValueError(f"an outcome's status is one of {STATUSES}, got {status!r}")
    outcome = {"status": status, "error": (str(error).splitlines() or [""])[0][:500], "summary": dict(summary or {})}
    write_json(Path(trial_dir) / OUTCOME, outcome)
    return outcome


def read_outcome(trial_dir: str | Path) -> Outcome | None:
    """The trial's outcome, or ``None`` if it has none (or one that is unreadable or not an outcome:
    left by a crash or damaged, it is treated as missing and the trial runs again)."""
    path = Path(trial_dir) / OUTCOME
    try:
        outcome = read_json(path)
    except (FileNotFoundError, RunDirError):
        return None
    if (
        not isinstance(outcome, dict)
        or outcome.get("status") not in STATUSES
        or not isinstance(outcome.get("error"), str)
        or not isinstance(outcome.get("summary"), dict)
    ):
        return None
    return outcome


def trial_config(trial_dir: str | Path) -> dict[str, Any]:
    """The config mapping the trial's ``trial.json`` records (:class:`~infovae.errors.RunDirError` if damaged)."""
    path = Path(trial_dir) / TRIAL
    try:
        spec = read_json(path)
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing; run the sweep again to have it rewritten") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise RunDirError(f"{path} is damaged; delete it and run the sweep again to have it rewritten")
    return spec["config"]


def finished_summary(trial_dir: str | Path) -> dict[str, Any] | None:
    """The summary of a trial whose run finished, whatever its outcome file says (or ``None``)."""
    from infovae.training.run_folder import RunFolder

    try:
        return RunFolder(Path(trial_dir) / RUN).read_summary()
    except UserInputError:
        return None


def run_trial(trial_dir: str | Path) -> Outcome:
    """Run (or resume) the trial in ``trial_dir`` and record its outcome; returns the outcome."""
    from infovae.training.config import parse_config
    from infovae.training.loop_runs import resume_run, start_run
    from infovae.training.run_folder import RunFolder

    trial_dir = Path(trial_dir)
    folder = RunFolder(trial_dir / RUN)
    try:
        config = parse_config(trial_config(trial_dir))
        summary = finished_summary(trial_dir)
        if summary is None and folder.has_checkpoint():
            summary = resume_run(folder.path, progress=False)
        elif summary is None:
            # A run that died before its first checkpoint has nothing worth keeping but what others put there.
            if folder.path.is_dir():
                with folder.lock():
                    folder.clear_unstarted()
            summary = start_run(config, folder.path, progress=False)
        return record_outcome(trial_dir, "ok", summary=summary)
    except (Exception, KeyboardInterrupt) as error:
        return record_ending(trial_dir, error)


def record_ending(trial_dir: str | Path, error: BaseException) -> Outcome:
    """Record the outcome of a trial whose run ended with ``error`` and return it: ``interrupted`` for
    Ctrl-C or SIGTERM, ``failed`` for anything else (with the traceback kept beside it for a crash)."""
    if isinstance(error, RunInterrupted):
        return record_outcome(trial_dir, "interrupted", error)
    if isinstance(error, KeyboardInterrupt):  # stopped outside the training loop (starting up, or writing its summary)
        return record_outcome(trial_dir, "interrupted", "stopped before training began or after it ended")
    if not isinstance(error, (UserInputError, TrainingDiverged)):  # a crash: the trial's failure, traceback kept
        (Path(trial_dir) / "traceback.txt").write_text("".join(traceback.format_exception(error)))
    return record_outcome(trial_dir, "failed", typed_first_line(error))


def stop_with_sweep() -> None:
    """Ask Linux to send this process SIGTERM (it then checkpoints and exits) when the sweep that
    started it dies, however it dies."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # the sweep died before the request took hold
        os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Inside, SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does, so that whatever stops a process
    politely (``kill``, a batch scheduler, a service manager) gets what Ctrl-C gets: checkpoints and
    recorded outcomes. The training loop handles both itself while it runs. Only the main thread can
    receive signals; elsewhere nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # SIGTERM at any moment ends the trial with an outcome.
    with sigterm_as_ctrl_c():
        stop_with_sweep()
        run_trial(sys.argv[1])
