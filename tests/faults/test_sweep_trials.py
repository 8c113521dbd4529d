"""A sweep's bookkeeping of its trials: an outcome settled from what the trial left, a damaged outcome,
a failed trial retried from its checkpoint."""

import json
import shutil

import pytest
import yaml

from .matrix import TINY, copy_run

# -- sweep bookkeeping -------------------------------------------------------------------------------


def _trial_dir(root, runs, config=None, finished=False, outcome=None):
    trial = root / "trial"
    trial.mkdir()
    (trial / "trial.json").write_text(json.dumps({"config": config or TINY, "overrides": {}, "seed": 0}))
    copy_run(runs, trial / "run", finished=finished)
    if outcome is not None:
        (trial / "outcome.json").write_text(json.dumps(outcome) if not isinstance(outcome, str) else outcome)
    return trial


def test_a_trial_with_a_summary_is_never_recorded_failed(runs, tmp_path):
    """(3) A trial process that wrote summary.json and then crashed or was stopped finished all the same."""
    from infovae.sweeps.executors import settle

    trial = _trial_dir(tmp_path, runs, finished=True, outcome={"status": "failed", "error": "killed", "summary": {}})
    for stopping in (False, True):
        outcome = settle(trial, "exit code -9", stopping)
        assert outcome["status"] == "ok" and outcome["summary"]["steps"] == 4


def test_a_trial_that_ended_without_an_outcome_is_interrupted_when_the_sweep_stops(runs, tmp_path):
    from infovae.sweeps.executors import settle

    trial = _trial_dir(tmp_path, runs)
    assert settle(trial, "exit code -15", stopping=True)["status"] == "interrupted"
    (trial / "outcome.json").unlink()
    assert settle(trial, "exit code -11", stopping=False)["status"] == "failed"


@pytest.mark.parametrize("damaged", ['{"status": 1}', "[1, 2]", '{"status": "ok"}', "{"])
def test_a_damaged_outcome_counts_as_none(runs, tmp_path, damaged):
    """A damaged outcome.json is no outcome: the trial runs (or resumes) again instead of a traceback."""
    from infovae.sweeps.trial import read_outcome

    assert read_outcome(_trial_dir(tmp_path, runs, outcome=damaged)) is None


def test_retry_failed_resumes_a_failed_trial_from_its_checkpoint(runs, tmp_path):
    """(3) --retry-failed runs a failed trial again from its checkpoint: its run folder is kept."""
    from infovae.sweeps.spec import load_sweep
    from infovae.sweeps.sweep import _pending
    from infovae.sweeps.trial import run_trial

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": TINY, "seeds": [0]}))
    spec = load_sweep(sweep)
    out = tmp_path / "sweep"
    (out / "trials").mkdir(parents=True)
    trial = out / "trials" / spec.trials[0].name
    shutil.move(_trial_dir(tmp_path, runs, outcome={"status": "failed", "error": "diverged", "summary": {}}), trial)
    config_inode = (trial / "run" / "config.yaml").stat().st_ino
    assert _pending(spec, out, retry_failed=False) == []
    assert _pending(spec, out, retry_failed=True) == [trial]
    outcome = run_trial(trial)
    assert outcome["status"] == "ok" and outcome["summary"]["steps"] == 6
    assert (trial / "run" / "config.yaml").stat().st_ino == config_inode, "the run folder was made anew"
    assert [json.loads(line)["step"] for line in (trial / "run" / "metrics.jsonl").read_text().splitlines()] == [2, 4, 6]
