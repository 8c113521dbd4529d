"""Where the trials of a sweep run: local worker processes (the default), Ray tasks, or one compiled
NumPyro program per group of trials (:mod:`infovae.sweeps.vectorized`).

Each executor is a function ``run(trial_dirs, on_done, **options)`` that calls ``on_done(trial_dir,
outcome)`` as each trial ends, registered by one :class:`ExecutorSpec` below. On Ctrl-C it stops
starting trials, asks the running ones to stop (they write a checkpoint and the outcome
``interrupted``), reports them, and raises ``KeyboardInterrupt``.

Locally each trial is its own process in a session of its own, so that a crash takes down one trial
and nothing else, Ctrl-C reaches the sweep alone (which then stops the trials with SIGTERM), and a
trial dies with the sweep (``PR_SET_PDEATHSIG`` on Linux). On Ray a trial travels as the files of its
folder and comes back the same way, so the cluster's machines need no shared file system.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from infovae.errors import UserInputError, typed_first_line
from infovae.files import inside
from infovae.registry import LazyCode, Registry
from infovae.sweeps.trial import PARENT_ENV, Outcome, finished_summary, read_outcome, record_outcome, run_trial

__all__ = ["EXECUTORS", "Executor", "ExecutorSpec", "OnDone", "executor", "run_local", "run_processes", "run_ray", "settle"]


# What an executor calls as each trial ends, and an executor.
OnDone = Callable[[Path, Outcome], None]
Executor = Callable[..., None]


class ExecutorSpec(LazyCode):
    """A registered executor: its ``name`` (``--executor``), its ``target`` ``"module:function"``
    (imported when used), and a one-line ``description``."""


EXECUTORS: Registry[ExecutorSpec] = Registry("executor", ExecutorSpec)
EXECUTORS.register(ExecutorSpec("local", "infovae.sweeps.executors:run_local", "worker processes on this machine"))
EXECUTORS.register(ExecutorSpec("ray", "infovae.sweeps.executors:run_ray", "Ray tasks, on a local Ray or a cluster"))
EXECUTORS.register(
    ExecutorSpec("vectorized", "infovae.sweeps.vectorized:run_vectorized", "one compiled NumPyro program per group of trials")
)


def executor(name: str) -> Executor:
    """The function of the executor ``name``."""
    if name not in EXECUTORS:
        raise UserInputError(f"executor must be one of {tuple(EXECUTORS)}, got {name!r}")
    return EXECUTORS[name].load("executor")


def settle(trial_dir: str | Path, detail: str, stopping: bool) -> Outcome:
    """The outcome of a trial whose process or task ended: its finished summary if it has one (never
    'failed' then), else what it recorded, else interrupted (when the sweep was stopping) or crashed."""
    summary = finished_summary(trial_dir)
    if summary is not None:
        return record_outcome(trial_dir, "ok", summary=summary)
    outcome = read_outcome(trial_dir)
    if outcome is not None and outcome["status"] != "ok":
        return outcome
    if stopping:
        return record_outcome(trial_dir, "interrupted", "the sweep was stopped before this trial finished")
    return record_outcome(trial_dir, "failed", f"the trial's process crashed: {detail}")


def _trial_env(threads, workers):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), PARENT_ENV: str(os.getpid())}
    if workers > 1:
        # Several JAX processes on one GPU would each reserve most of its memory.
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env


def run_local(trial_dirs: Sequence[Path], on_done: OnDone, workers: int | None = None, **_: Any) -> None:
    """Run the trials in ``workers`` processes at a time (default: the cores)."""
    tasks = [(trial_dir,) for trial_dir in trial_dirs]
    run_processes(tasks, on_done, workers, lambda task: [sys.executable, "-m", "infovae.sweeps.trial", str(task[0])])


def run_processes(
    tasks: Sequence[tuple[Path, ...]],
    on_done: OnDone,
    workers: int | None,
    command: Callable[[tuple[Path, ...]], list[str]],
) -> None:
    """Run each task (a tuple of trial folders) as the process ``command(task)``, ``workers`` at a time
    (default: the cores), each in a session of its own, and settle each of its trials when it ends."""
    workers = workers or max(1, min(os.cpu_count() or 1, len(tasks)))
    env = _trial_env(max(1, (os.cpu_count() or 1) // workers), workers)
    stopping, lock, running = threading.Event(), threading.Lock(), {}

    def one(task):
        with lock:
            if stopping.is_set():
                return task, None
            process = subprocess.Popen(
                command(task), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
            )  # fmt: skip
            running[task] = process
        _, stderr = process.communicate()
        with lock:
            running.pop(task, None)
        tail = (stderr.strip().splitlines() or [f"exit code {process.returncode}"])[-1]
        return task, [settle(trial_dir, tail, stopping.is_set()) for trial_dir in task]

    pool = ThreadPoolExecutor(max_workers=workers)
    futures = [pool.submit(one, task) for task in tasks]

    def report(done):
        for future in done:
            task, outcomes = future.result()
            for trial_dir, outcome in zip(task, outcomes or ()):
                on_done(trial_dir, outcome)

    try:
        report(as_completed(futures))
    except KeyboardInterrupt:
        stopping.set()
        for future in futures:
            future.cancel()
        with lock:
            for process in running.values():
                process.send_signal(signal.SIGTERM)  # each writes a checkpoint and exits
        try:
            report(as_completed([f for f in futures if not f.cancelled()]))
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once
            with lock:
                for process in running.values():
                    process.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _pack(folder):
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


def _unpack(files, folder):
    for name, data in files.items():
        path = inside(folder, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _run_packed(files):
    """Ray task: rebuild the trial folder in a scratch folder, run it, send its files back."""
    with tempfile.TemporaryDirectory(prefix="infovae-trial-") as scratch:
        _unpack(files, scratch)
        run_trial(scratch)
        return _pack(scratch)


def run_ray(trial_dirs: Sequence[Path], on_done: OnDone, address: str | None = None, **_: Any) -> None:
    """Run the trials as Ray tasks, on a local Ray started here or the cluster at ``address``."""
    try:
        import ray
    except ImportError:
        raise UserInputError("--executor ray needs Ray: pip install 'infovae[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    pending = {}
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_run_packed)
        pending = {task.remote(_pack(d)): d for d in trial_dirs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            trial_dir = pending.pop(ready[0])
            try:
                _unpack(ray.get(ready[0]), trial_dir)
                outcome = settle(trial_dir, "no outcome", False)
            except Exception as error:  # the task's worker died, or sent back a name outside its folder
                outcome = record_outcome(trial_dir, "failed", f"the trial's task failed: {typed_first_line(error)}")
            on_done(trial_dir, outcome)
    except KeyboardInterrupt:
        for ref, trial_dir in pending.items():
            ray.cancel(ref)
            stopped = "the sweep was stopped; the trial restarts when it runs again"
            on_done(trial_dir, record_outcome(trial_dir, "interrupted", stopped))
        raise
    finally:
        if started_here:
            ray.shutdown()
