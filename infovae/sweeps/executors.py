"""Where the trials of a sweep run: local worker processes (the default) or Ray tasks.

Both run the same :func:`~infovae.sweeps.trial.run_trial`. Locally each trial is its own process, so
that a crash takes down one trial and nothing else. On Ray a trial travels as the files of its
directory and comes back the same way, so the cluster's machines need no shared file system.
"""

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from infovae.sweeps.trial import OUTCOME, read_outcome, run_trial
from infovae.training.checkpoint import write_json

__all__ = ["EXECUTORS", "run_local", "run_ray"]

EXECUTORS = ("local", "ray")


def _crashed(trial_dir, detail):
    outcome = {"status": "failed", "error": f"the trial's process crashed: {detail}"[:500], "summary": {}}
    write_json(Path(trial_dir) / OUTCOME, outcome)
    return outcome


def _run_in_process(trial_dir, threads):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run(
        [sys.executable, "-m", "infovae.sweeps.trial", str(trial_dir)], env=env, capture_output=True, text=True
    )
    outcome = read_outcome(trial_dir)
    if outcome is None or done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return _crashed(trial_dir, tail)
    return outcome


def run_local(trial_dirs, workers, on_done):
    """Run the trials in ``workers`` processes at a time; ``on_done(trial_dir, outcome)`` as each ends."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_run_in_process, d, threads): d for d in trial_dirs}
        for future in as_completed(futures):
            on_done(futures[future], future.result())


def _pack(folder):
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _unpack(files, folder):
    for name, data in files.items():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _run_packed(files):
    """Ray task: rebuild the trial directory in a scratch folder, run it, send its files back."""
    with tempfile.TemporaryDirectory(prefix="infovae-trial-") as scratch:
        _unpack(files, scratch)
        run_trial(scratch)
        return _pack(scratch)


def run_ray(trial_dirs, address, on_done):
    """Run the trials as Ray tasks, on a local Ray started here or the cluster at ``address``."""
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs Ray: pip install 'infovae[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_run_packed)
        pending = {task.remote(_pack(d)): d for d in trial_dirs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            trial_dir = pending.pop(ready[0])
            try:
                _unpack(ray.get(ready[0]), trial_dir)
                outcome = read_outcome(trial_dir)
            except Exception as error:  # the task's worker died: that trial failed
                outcome = _crashed(trial_dir, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            on_done(trial_dir, outcome)
    finally:
        if started_here:
            ray.shutdown()
