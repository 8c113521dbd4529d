"""Sweeps: the sweep file, both executors, failed trials, resumption and the results tables."""

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from infovae.cli import main
from infovae.sweeps import load_sweep, open_sweep, run_sweep
from infovae.sweeps.progress import ProgressLines, wants_lines
from infovae.training.config import ConfigError

BASE = {
    "data": {"kind": "strategies", "num_examples": 200, "horizon": 3, "num_strategies": 2, "similar_pairs": 0},
    "model": {"latent": "discrete", "latent_size": 3, "hidden": 8},
    "objective": {"beta": 1.0, "marginal": "kl"},
    "train": {"steps": 6, "batch_size": 32, "eval_every": 3, "eval_examples": 30},
}


def write(tmp_path, sweep, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(sweep))
    return path


def grid_sweep(tmp_path, **extra):
    return write(
        tmp_path,
        {"base": BASE, "grid": {"objective.beta": [1.0, 0.0], "objective.marginal_weight": [0.0, 5.0]}, "seeds": [0], **extra},
    )


def test_sweep_file_expands_grid_list_random_and_seeds(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    spec = load_sweep(
        write(
            tmp_path,
            {
                "base": "base.yaml",
                "grid": {"objective.beta": [1.0, 0.0], "objective.jsd_weight": [0.0, 0.1, 1.0]},
                "list": [{"objective.beta": 2.0}],
                "random": {"num_trials": 2, "seed": 1, "space": {"objective.marginal_weight": {"loguniform": [0.1, 10.0]}}},
                "seeds": [0, 1],
            },
        )
    )
    assert len(spec.trials) == (6 + 1 + 2) * 2
    assert spec.base == BASE
    assert {t.overrides["objective.beta"] for t in spec.trials[:12]} == {1.0, 0.0}
    drawn = [t.overrides["objective.marginal_weight"] for t in spec.trials if "objective.marginal_weight" in t.overrides]
    assert all(0.1 <= w <= 10.0 for w in drawn) and len(set(drawn)) == 2
    assert len({t.name for t in spec.trials}) == len(spec.trials)
    assert spec.trials[0].raw_config(spec.base)["train"]["seed"] == 0


def test_a_results_table_shows_the_value_a_trial_left_to_its_base(tmp_path):
    from infovae.sweeps.results import aggregate, markdown_table, trial_table

    # The first entry leaves beta to the base (1.0) and jsd_weight to the schema's default (0); the
    # second overrides both.
    entries = [{"objective.marginal_weight": 5.0}, {"objective.beta": 0.0, "objective.jsd_weight": 0.1}]
    spec = load_sweep(write(tmp_path, {"base": BASE, "list": entries, "seeds": [0]}))
    outcomes = {trial.name: {"status": "ok", "error": "", "summary": {"probe_accuracy": 0.5}} for trial in spec.trials}
    # A sweep read back from its folder knows its base only through each trial's recorded config.
    for trial in spec.trials:
        (tmp_path / "trials" / trial.name).mkdir(parents=True)
        (tmp_path / "trials" / trial.name / "trial.json").write_text(json.dumps({"config": trial.raw_config(spec.base)}))
    keys = ["objective.beta", "objective.jsd_weight", "objective.marginal_weight"]
    for table in (trial_table(spec, outcomes), trial_table(replace(spec, base={}), outcomes, tmp_path / "trials")):
        assert table[keys].values.tolist() == [[1.0, 0.0, 5.0], [0.0, 0.1, 0.0]]
        assert "none" not in markdown_table(spec, aggregate(spec, table))
    # Without its recorded config, a read-back trial's value is unknown, not the schema's default.
    (tmp_path / "trials" / spec.trials[0].name / "trial.json").unlink()
    assert trial_table(replace(spec, base={}), outcomes, tmp_path / "trials")["objective.beta"].isna().tolist() == [True, False]


def test_the_runs_column_counts_only_finished_trials(tmp_path):
    from infovae.sweeps.results import aggregate, markdown_table, trial_table

    spec = load_sweep(write(tmp_path, {"base": BASE, "grid": {"objective.beta": [1.0]}, "seeds": [0, 1, 2]}))
    statuses = ["ok", "interrupted", "failed"]
    outcomes = {
        trial.name: {"status": status, "error": "", "summary": {"probe_accuracy": 0.5} if status == "ok" else {}}
        for trial, status in zip(spec.trials, statuses, strict=True)
    }
    settings = aggregate(spec, trial_table(spec, outcomes))
    assert settings[["runs", "finished", "failed"]].values.tolist() == [[3, 1, 1]]
    row = markdown_table(spec, settings).splitlines()[2]
    assert "| 1/3 |" in row, row


def test_a_trial_without_an_outcome_is_a_pending_row_that_counts_as_no_run(tmp_path):
    """results.csv holds every trial of the sweep (SPEC §5): one never run, or queued when the sweep was
    stopped, is ``pending``; it is no run in results_by_setting.csv, nor failed, and results.md names it."""
    from infovae.sweeps.results import write_results
    from infovae.sweeps.sweep import _prepare

    spec = load_sweep(write(tmp_path, {"base": BASE, "grid": {"objective.beta": [1.0]}, "seeds": [0, 1, 2]}))
    out = tmp_path / "out"
    out.mkdir()
    _prepare(spec, out)
    ran, stopped, queued = (out / "trials" / trial.name for trial in spec.trials)
    (ran / "outcome.json").write_text(json.dumps({"status": "ok", "error": "", "summary": {"probe_accuracy": 0.5}}))
    (stopped / "outcome.json").write_text(json.dumps({"status": "interrupted", "error": "stopped", "summary": {}}))

    sweep = open_sweep(out)
    write_results(sweep.spec, sweep.results, out)
    rows = {row["trial"]: row["status"] for row in read_csv(out / "results.csv")}
    assert rows == {ran.name: "ok", stopped.name: "interrupted", queued.name: "pending"}
    assert dict(zip(sweep.results["trial"], sweep.results["status"])) == rows
    assert list(sweep.failed["trial"]) == [stopped.name]
    assert sweep.by_setting[["runs", "finished", "failed"]].values.tolist() == [[2, 1, 0]]
    (setting,) = read_csv(out / "results_by_setting.csv")
    assert (setting["runs"], setting["finished"]) == ("2", "1")
    assert f"- `{queued.name}` pending\n" in (out / "results.md").read_text()


def test_a_sweep_read_back_keeps_its_files_column_order(tmp_path):
    from infovae.sweeps.sweep import _prepare

    sweep = {"base": BASE, "grid": {"objective.marginal_weight": [0.0], "objective.beta": [1.0]}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    spec = load_sweep(tmp_path / "sweep.yaml")
    assert spec.swept_keys == ("objective.marginal_weight", "objective.beta")
    (tmp_path / "sweep").mkdir()
    _prepare(spec, tmp_path / "sweep")
    assert open_sweep(tmp_path / "sweep").spec.swept_keys == spec.swept_keys


def test_seed_keys_give_each_replicate_its_own_data_and_initialisation(tmp_path):
    spec = load_sweep(write(tmp_path, {"base": BASE, "seeds": [3, 4], "seed_keys": ["train.seed", "data.seed"]}))
    configs = [t.raw_config(spec.base) for t in spec.trials]
    assert [(c["train"]["seed"], c["data"]["seed"]) for c in configs] == [(3, 3), (4, 4)]
    plain = load_sweep(write(tmp_path, {"base": BASE, "seeds": [3, 4]}))
    assert [t.raw_config(plain.base)["data"].get("seed", 0) for t in plain.trials] == [BASE["data"].get("seed", 0)] * 2


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"base": BASE, "grid": {"objective.beta": []}}, "grid must map dotted config keys to non-empty lists"),
        ({"base": BASE, "seeds": "0"}, "seeds must be a non-empty list of integers"),
        ({"base": BASE, "grids": {}}, "unknown key"),
        ({"base": "missing.yaml"}, "base config 'missing.yaml' does not exist"),
        ({"base": BASE, "grid": {"train.seed": [1, 2]}}, "use seeds"),
        ({"base": BASE, "seed_keys": ["train.seed", "data.seed"], "grid": {"data.seed": [1, 2]}}, "use seeds"),
        ({"base": BASE, "seed_keys": ["data.seed"]}, "must be a list of dotted config keys that includes train.seed"),
        (
            {"base": BASE, "random": {"num_trials": 2, "space": {"objective.beta": {"normal": [0, 1]}}}},
            "random.space.objective.beta must be one of",
        ),
    ],
)
def test_bad_sweep_files_name_the_problem(tmp_path, sweep, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write(tmp_path, sweep))


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_local_sweep_records_a_failed_trial_and_resumes(tmp_path, capsys):
    sweep = write(
        tmp_path,
        {
            "base": BASE,
            "grid": {"objective.beta": [1.0, 0.0], "objective.marginal_weight": [0.0, 5.0]},
            # An invalid combination: a failed trial, not a failed sweep.
            "list": [{"objective.marginal": "mmd", "objective.marginal_weight": 1.0}],
            "seeds": [0],
        },
    )
    result = run_sweep(sweep, tmp_path / "out", workers=2, progress=False)
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert len(rows) == 5
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "marginal='mmd' needs a continuous latent, but model.latent is discrete" in failed[0]["error"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(0 <= float(r["probe_accuracy"]) <= 1 for r in ok)
    assert {"objective.beta", "objective.marginal_weight", "seed", "status", "error", "test_loss", "mi", "coverage_tv"} <= set(
        rows[0]
    )
    assert "| beta | marginal_weight | marginal | runs |" in result.table and "1/1" in result.table
    assert (tmp_path / "out" / "results_by_setting.csv").exists() and "Trials not finished" in (
        tmp_path / "out" / "results.md"
    ).read_text()

    # Re-running skips every trial that has an outcome: nothing is trained again.
    outcomes = sorted((tmp_path / "out" / "trials").glob("*/outcome.json"))
    stamps = [p.stat().st_mtime_ns for p in outcomes]
    wall = result.wall_seconds
    run_sweep(sweep, tmp_path / "out", workers=2, progress=False)
    assert [p.stat().st_mtime_ns for p in outcomes] == stamps
    # The wall time is read from the trials' files: a re-run that trains nothing leaves it as it was.
    assert 0 < wall == open_sweep(tmp_path / "out").wall_seconds
    # A sweep that gained a seed runs only the new trials; its output is not a terminal, so it says
    # so in lines, one per finished trial.
    grown = write(tmp_path, {**yaml.safe_load(sweep.read_text()), "seeds": [0, 1]}, "grown.yaml")
    capsys.readouterr()
    result = run_sweep(grown, tmp_path / "out", workers=2)
    assert len(result.results) == 10 and [p.stat().st_mtime_ns for p in outcomes] == stamps
    lines = capsys.readouterr().err.splitlines()
    assert "5 of 10 trials to run" in lines[0]
    finished = [line.split(": ", 1)[1] for line in lines if "trials finished" in line and "others are training" not in line]
    assert [line.split(" trials")[0] for line in finished] == [f"{n}/10" for n in range(6, 11)]
    assert sum("needs a continuous latent" in line for line in lines) == 1
    # The same trials with another base config are refused.
    changed = {**yaml.safe_load(sweep.read_text()), "base": {**BASE, "train": {**BASE["train"], "steps": 9}}}
    with pytest.raises(ConfigError, match="holds a different sweep"):
        run_sweep(write(tmp_path, changed, "changed.yaml"), tmp_path / "out", progress=False)


@pytest.mark.slow
def test_a_crashing_trial_is_recorded_and_retried(tmp_path, monkeypatch):
    sweep = grid_sweep(tmp_path)
    result = run_sweep(sweep, tmp_path / "out", workers=2, progress=False)
    assert len(result.results) == 4 and result.failed.empty
    trial = sorted((tmp_path / "out" / "trials").iterdir())[0]
    # A finished trial is never recorded as failed, whatever its process does: this one has not finished.
    (trial / "outcome.json").unlink()
    (trial / "run" / "summary.json").unlink()
    # The trial's process dies at start-up, before it can record anything.
    crash = tmp_path / "crash"
    crash.mkdir()
    (crash / "sitecustomize.py").write_text("import os\nos._exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(crash))
    result = run_sweep(sweep, tmp_path / "out", workers=1, progress=False)
    crashed = result.results[result.results["status"] == "failed"].to_dict("records")
    assert len(crashed) == 1 and "crashed" in crashed[0]["error"] and crashed[0]["trial"] == trial.name
    monkeypatch.delenv("PYTHONPATH")
    # Without --retry-failed the failure stands; with it the trial runs again.
    assert len(run_sweep(sweep, tmp_path / "out", workers=1, progress=False).failed) == 1
    result = run_sweep(sweep, tmp_path / "out", workers=1, retry_failed=True, progress=False)
    assert result.failed.empty


@pytest.mark.slow
def test_ray_executor_runs_the_same_sweep(tmp_path):
    pytest.importorskip("ray")
    result = run_sweep(grid_sweep(tmp_path), tmp_path / "out", executor="ray", progress=False)
    assert len(result.results) == 4 and result.failed.empty
    for trial in (tmp_path / "out" / "trials").iterdir():
        assert json.loads((trial / "outcome.json").read_text())["status"] == "ok"
        assert (trial / "run" / "summary.json").exists() and (trial / "run" / "metrics.jsonl").exists()


def test_sweep_command_line_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["sweep", str(tmp_path / "missing.yaml")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "does not exist" in err and err.count("\n") == 1


def test_progress_lines_say_what_finished_and_that_the_sweep_is_alive():
    stream = io.StringIO()
    with ProgressLines(total=3, done=1, stream=stream, every=60.0) as lines:
        lines.finished(Path("a-seed0"), {"status": "ok", "error": "", "summary": {}})
        lines.heartbeat(lines.last + 30)  # printed within the minute: nothing more
        lines.heartbeat(lines.last + 61)
        lines.finished(Path("b-seed0"), {"status": "failed", "error": "ConfigError: bad", "summary": {}})
    printed = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in printed] == [
        "2 of 3 trials to run",
        "2/3 trials finished (0 failed); a-seed0 ok",
        "2/3 trials finished (0 failed); the others are training",
        "3/3 trials finished (1 failed); b-seed0 failed: ConfigError: bad",
    ]
    assert not wants_lines(False, stream) and wants_lines(None, stream) and not wants_lines(None, _Terminal())


class _Terminal(io.StringIO):
    def isatty(self):
        return True
