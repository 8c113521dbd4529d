"""One trial of an interrupted sweep resumed on its own (``infovae train --resume TRIAL/run``): from its
group's checkpoint, keeping the evaluations made before the interruption, and recorded in the sweep."""

import csv
import json

import pytest

pytest.importorskip("numpyro")

import infovae  # noqa: E402
from infovae.errors import RunInterrupted  # noqa: E402
from infovae.sweeps import run_sweep  # noqa: E402
from infovae.training.numpyro_backend import NumPyroBackend  # noqa: E402

SWEEP = {
    "base": {
        "data": {"kind": "strategies", "num_examples": 120, "horizon": 3, "num_strategies": 2},
        "model": {"latent": "discrete", "latent_size": 3, "hidden": 8},
        "objective": {"beta": 0.5, "marginal": "kl", "marginal_weight": 2.0},
        "train": {"steps": 30, "batch_size": 16, "eval_every": 10, "eval_examples": 20},
        "backend": "numpyro",
    },
    "grid": {"objective.beta": [0.5, 1.0]},
    "seeds": [0],
}


def _interrupted_sweep(out, monkeypatch, request):
    """The sweep stopped as Ctrl-C stops it, after its second chunk of steps (step 20): its trials' checkpoint
    is their group's."""
    request.getfixturevalue("stop_after_second_chunk")
    with pytest.raises(RunInterrupted):
        run_sweep(SWEEP, out, executor="vectorized", progress=False, workers=1)
    monkeypatch.undo()


def _steps_trained(monkeypatch):
    """Counts the steps each later ``train_steps`` call trains."""
    trained = []
    real = NumPyroBackend.train_steps

    def counting(self, indices, active):
        trained.append(indices.shape[1])
        return real(self, indices, active)

    monkeypatch.setattr(NumPyroBackend, "train_steps", counting)
    return trained


@pytest.mark.slow
def test_a_trial_of_an_interrupted_vectorised_sweep_resumes_from_its_groups_step(tmp_path, monkeypatch, request):
    out = tmp_path / "sweep"
    _interrupted_sweep(out, monkeypatch, request)
    (group,) = (out / "groups").iterdir()
    first, second = sorted((out / "trials").iterdir())
    run_dir = first / "run"
    assert not (run_dir / "checkpoint.npz").exists()
    before = (run_dir / "metrics.jsonl").read_text()
    assert [json.loads(line)["step"] for line in before.splitlines()] == [10, 20]

    trained = _steps_trained(monkeypatch)
    run = infovae.resume(run_dir, progress=False)
    assert sum(trained) == 10  # from the group's step 20 to 30, not from 0
    assert run.summary["steps"] == 30
    # The evaluations made before the interruption are kept as written (their clock times included).
    assert (run_dir / "metrics.jsonl").read_text().startswith(before)
    assert list(run.metrics["step"]) == [10, 20, 30]
    # The group's checkpoint went into its trials' own: the other trial resumes from step 20 as well.
    assert not group.exists()
    assert not (out / "groups").exists()
    summary = (run_dir / "summary.json").read_text()

    trained.clear()
    sweep = run_sweep(SWEEP, out, executor="vectorized", progress=False, workers=1)
    assert set(sweep.results["status"]) == {"ok"}
    assert sum(trained) == 10  # the other trial only, from step 20
    assert (run_dir / "summary.json").read_text() == summary
    assert [json.loads(line)["step"] for line in (second / "run" / "metrics.jsonl").read_text().splitlines()] == [10, 20, 30]


def _interrupted_trials(out, monkeypatch, request):
    """The sweep's trials run one by one as the local executor runs each (``run_trial``), each stopped as
    Ctrl-C stops it after a chunk of steps, and the tables written as the sweep writes them when stopped."""
    from infovae.sweeps.results import write_results
    from infovae.sweeps.spec import load_sweep
    from infovae.sweeps.sweep import _prepare
    from infovae.sweeps.trial import run_trial

    request.getfixturevalue("stop_after_second_chunk")
    spec = load_sweep(SWEEP)
    out.mkdir()
    _prepare(spec, out)
    for trial in spec.trials:
        assert run_trial(out / "trials" / trial.name)["status"] == "interrupted"
    sweep = infovae.open_sweep(out)
    write_results(sweep.spec, sweep.results, out)
    monkeypatch.undo()


def _statuses(path):
    with open(path) as f:
        return {row["trial"]: row["status"] for row in csv.DictReader(f)}


def _assert_a_resumed_trial_is_recorded(out, executor):
    """Resuming the first trial records it ok, with its summary, in its outcome and the sweep's tables; a
    rerun of the sweep finishes the other and leaves the resumed one as it is."""
    first, second = sorted(p.name for p in (out / "trials").iterdir())
    assert _statuses(out / "results.csv") == {first: "interrupted", second: "interrupted"}
    run = infovae.resume(out / "trials" / first / "run", progress=False)

    assert json.loads((out / "trials" / first / "outcome.json").read_text())["summary"] == run.summary
    rows = infovae.open_sweep(out).results.set_index("trial")
    assert rows.loc[first, "status"] == "ok" and rows.loc[second, "status"] == "interrupted"
    assert rows.loc[first, "steps"] == 30 and rows.loc[first, "test_loss"] == run.summary["test_loss"]
    assert _statuses(out / "results.csv") == {first: "ok", second: "interrupted"}
    with open(out / "results_by_setting.csv") as f:
        assert sorted(row["finished"] for row in csv.DictReader(f)) == ["0", "1"]
    text = (out / "results.md").read_text()
    assert f"`{first}`" not in text and f"`{second}` interrupted" in text

    summary = (out / "trials" / first / "run" / "summary.json").read_text()
    sweep = run_sweep(SWEEP, out, executor=executor, progress=False, workers=1)
    assert set(sweep.results["status"]) == {"ok"}
    assert (out / "trials" / first / "run" / "summary.json").read_text() == summary, "the resumed trial trained again"


@pytest.mark.slow
def test_a_resumed_trial_of_an_interrupted_vectorised_sweep_is_recorded_in_the_sweep(tmp_path, monkeypatch, request):
    out = tmp_path / "sweep"
    _interrupted_sweep(out, monkeypatch, request)
    _assert_a_resumed_trial_is_recorded(out, "vectorized")


@pytest.mark.slow
def test_a_resumed_trial_of_an_interrupted_local_sweep_is_recorded_in_the_sweep(tmp_path, monkeypatch, request):
    out = tmp_path / "sweep"
    _interrupted_trials(out, monkeypatch, request)
    _assert_a_resumed_trial_is_recorded(out, "local")


def test_a_rerun_refuses_a_trial_whose_data_changed_since_it_began(tmp_path):
    """A trial with a checkpoint of its own resumes only on the data it trained on (same rows, a changed value)."""
    import numpy as np

    from infovae.data.registry import load_splits
    from infovae.errors import RunDirError
    from infovae.sweeps.vectorized import _take
    from infovae.training.checkpoint import save_checkpoint
    from infovae.training.config import parse_config
    from infovae.training.run_folder import RunFolder

    data = tmp_path / "data.npz"
    y = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    np.savez(data, y=y)
    base = SWEEP["base"]
    config = parse_config(
        {**base, "data": {"kind": "npz", "path": str(data)}, "model": {**base["model"], "likelihood": "gaussian"}}
    )
    folder = RunFolder(tmp_path / "trial" / "run")
    folder.create()
    folder.write_start(config, load_splits(config.data, config.likelihood))
    save_checkpoint(
        folder.checkpoint_path, {"step": 10, "seconds": 1.0, "backend_name": "numpyro", "backend": {}, "trials": [{}]}
    )
    y[3, 2] += 1.0
    np.savez(data, y=y)
    locks = []
    try:
        with pytest.raises(RunDirError, match=f"{data}: its content has changed since the run"):
            _take(tmp_path / "trial", config, load_splits(config.data, config.likelihood), locks)
    finally:
        for lock in locks:
            lock.release()
