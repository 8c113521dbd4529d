"""Running a sweep into a directory, resumably.

A sweep directory holds ``sweep.json`` (the sweep file and its trials), ``trials/NAME/`` per trial
(its ``trial.json``, ``outcome.json`` and run directory ``run/``) and the results tables. Running the
sweep again skips the trials that have an outcome (``retry_failed`` runs the failed ones again); a
sweep file that gained settings or seeds runs only the new trials.
"""

import json
import os
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from infovae.sweeps import executors
from infovae.sweeps.results import trial_rows, write_results
from infovae.sweeps.spec import load_sweep
from infovae.sweeps.trial import OUTCOME, TRIAL, read_outcome
from infovae.training.checkpoint import write_json
from infovae.training.config import ConfigError

__all__ = ["SweepResult", "run_sweep"]

SWEEP = "sweep.json"


class SweepResult:
    """What a sweep produced: its directory, one row per trial, and the per-setting markdown table."""

    def __init__(self, path, rows, table):
        self.path, self.rows, self.table = path, rows, table

    @property
    def failed(self):
        return [r for r in self.rows if r["status"] != "ok"]


def _prepare(spec, out_dir):
    """Create the sweep directory, or check that the one there holds the same trials where they overlap
    (a sweep may grow: new settings or seeds are added, finished trials kept)."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / SWEEP).exists():
        raise ConfigError(f"{out_dir} already exists and holds no sweep; choose another --out")
    specs = {}
    for trial in spec.trials:
        specs[trial.name] = {"config": trial.raw_config(spec.base), "overrides": trial.overrides, "seed": trial.seed}
        recorded = out_dir / "trials" / trial.name / TRIAL
        if recorded.exists() and json.loads(recorded.read_text())["config"] != specs[trial.name]["config"]:
            raise ConfigError(f"{out_dir} holds a different sweep (trial {trial.name} has another config); choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / SWEEP, {"spec": str(spec.path.resolve()), "trials": [{"name": t.name, "overrides": t.overrides, "seed": t.seed} for t in spec.trials]})
    for name, trial_spec in specs.items():
        trial_dir = out_dir / "trials" / name
        trial_dir.mkdir(parents=True, exist_ok=True)
        if not (trial_dir / TRIAL).exists():
            write_json(trial_dir / TRIAL, trial_spec)


def run_sweep(path, out_dir=None, executor="local", workers=None, address=None, retry_failed=False, progress=None):
    """Run the sweep file ``path`` into ``out_dir`` (default ``runs/SWEEP-NAME``) and return its results."""
    spec = load_sweep(path)
    if executor not in executors.EXECUTORS:
        raise ConfigError(f"executor must be one of {executors.EXECUTORS}, got {executor!r}")
    workers = workers or max(1, min(os.cpu_count() or 1, len(spec.trials)))
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    out_dir = Path(out_dir or Path("runs") / Path(path).stem)
    _prepare(spec, out_dir)

    outcomes, pending = {}, []
    for trial in spec.trials:
        trial_dir = out_dir / "trials" / trial.name
        outcome = read_outcome(trial_dir)
        if outcome is None or (retry_failed and outcome["status"] != "ok"):
            if outcome is not None:
                (trial_dir / OUTCOME).unlink()
                shutil.rmtree(trial_dir / "run", ignore_errors=True)
            pending.append(trial_dir)
        else:
            outcomes[trial.name] = outcome

    skipped = len(outcomes)
    bar = tqdm(total=len(spec.trials), initial=skipped, desc="trials", disable=None if progress is None else not progress)
    counts = {"failed": sum(o["status"] != "ok" for o in outcomes.values())}

    def on_done(trial_dir, outcome):
        outcomes[Path(trial_dir).name] = outcome
        counts["failed"] += outcome["status"] != "ok"
        bar.update(1)
        bar.set_postfix(running=min(workers, len(pending) - (bar.n - skipped)), failed=counts["failed"])

    if pending:
        if executor == "local":
            executors.run_local(pending, workers, on_done)
        else:
            executors.run_ray(pending, address, on_done)
    bar.close()
    rows = trial_rows(spec, outcomes)
    table = write_results(spec, rows, out_dir)
    return SweepResult(out_dir, rows, table)
