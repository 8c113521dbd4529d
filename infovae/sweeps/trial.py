"""One trial of a sweep, run wherever an executor puts it; its outcome is a small JSON record.

``python -m infovae.sweeps.trial TRIAL_DIR`` runs the trial described by ``TRIAL_DIR/trial.json``
(written by the sweep) and records the outcome in ``TRIAL_DIR/outcome.json``. A failure (an invalid
config, a diverged run, a crash) is an outcome too, so one trial never stops the others.
"""

import json
import shutil
import sys
import traceback
from pathlib import Path

from infovae.training.checkpoint import write_json

__all__ = ["OUTCOME", "TRIAL", "read_outcome", "run_trial"]

TRIAL, OUTCOME, RUN = "trial.json", "outcome.json", "run"


def read_outcome(trial_dir):
    path = Path(trial_dir) / OUTCOME
    return json.loads(path.read_text()) if path.exists() else None


def _one_line(error):
    return f"{type(error).__name__}: {error}".splitlines()[0][:500]


def run_trial(trial_dir):
    """Run (or resume) the trial in ``trial_dir`` and record its outcome; returns the outcome."""
    from infovae.training.config import ConfigError, parse_config
    from infovae.training.loop import CHECKPOINT, TrainingDiverged, resume_run, start_run

    trial_dir = Path(trial_dir)
    spec = json.loads((trial_dir / TRIAL).read_text())
    run_dir = trial_dir / RUN
    try:
        config = parse_config(spec["config"])
        if (run_dir / CHECKPOINT).exists():
            summary = resume_run(run_dir, progress=False)
        else:
            # A run that died before its first checkpoint has nothing worth keeping.
            shutil.rmtree(run_dir, ignore_errors=True)
            summary = start_run(config, run_dir, progress=False)
        outcome = {"status": "ok", "error": "", "summary": summary}
    except (ConfigError, TrainingDiverged, ValueError) as error:
        outcome = {"status": "failed", "error": _one_line(error), "summary": {}}
    except Exception as error:  # a crash inside one trial is that trial's failure, with its traceback kept
        (trial_dir / "traceback.txt").write_text(traceback.format_exc())
        outcome = {"status": "failed", "error": _one_line(error), "summary": {}}
    write_json(trial_dir / OUTCOME, outcome)
    return outcome


if __name__ == "__main__":
    run_trial(sys.argv[1])
