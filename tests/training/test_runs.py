"""Runs end to end through the command line: run directories, resume, atomic checkpoints, bad input."""

import json
import os
import time

import numpy as np
import pytest
import yaml

from infovae import files as checkpoint_module
from infovae.cli import main
from infovae.errors import RunDirError, TrainingDiverged
from infovae.training.checkpoint import load_checkpoint
from infovae.training.config import parse_config
from infovae.training.loop import resume_run, start_run
from infovae.training.pyro_backend import PyroBackend

from .crash import start_and_crash

SUMMARY_KEYS = {
    "test_loss",
    "test_recon",
    "test_kl",
    "mi",
    "marginal_kl",
    "test_jsd",
    "latent_perplexity",
    "probe_accuracy",
    "nmi",
    "coverage_tv",
}

TINY = {
    "data": {"kind": "strategies", "num_examples": 240, "horizon": 4, "num_strategies": 3},
    "model": {"latent": "discrete", "latent_size": 4, "hidden": 16},
    "objective": {"beta": 0.5, "marginal": "kl", "marginal_weight": 2.0, "jsd_weight": 0.1},
    "train": {"steps": 30, "batch_size": 32, "eval_every": 10, "eval_examples": 60, "lr": 0.01},
}


def write_config(tmp_path, raw=TINY, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return done.value.code, out, err


@pytest.mark.parametrize(
    "model, objective",
    [
        ({"latent": "discrete"}, {}),
        (
            {"latent": "gaussian", "latent_size": 2, "prior": "learned"},
            {"marginal": "mmd", "marginal_weight": 5.0, "jsd_weight": 0.1},
        ),
    ],
)
def test_train_writes_a_complete_run_directory(tmp_path, capsys, model, objective):
    raw = {**TINY, "model": {**TINY["model"], **model}, "objective": {"beta": 0.5, **objective}}
    started = time.time()
    code, out, err = run_cli(["train", write_config(tmp_path, raw), "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    ended = time.time()
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "splits.npz", "metrics.jsonl", "checkpoint.npz", "summary.json"}
    summary = json.loads((run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert 0 <= summary["probe_accuracy"] <= 1 and 0 <= summary["coverage_tv"] <= 1
    assert summary["probe_accuracy"] <= summary["bayes_accuracy"] + 0.25  # the ceiling, up to held-out noise
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30]
    assert {"loss", "recon", "kl", "jsd", "mi", "marginal_kl", "probe_accuracy", "nmi", "train_loss"} <= set(records[0])
    # Each evaluation's wall-clock time, in order, within the run.
    times = [r["unix_seconds"] for r in records]
    assert started - 0.001 <= times[0] <= times[1] <= times[2] <= ended + 0.001
    # One name per quantity: the objective's marginal is recorded where it is not marginal_kl itself.
    assert ("marginal" in records[0]) == (objective.get("marginal") == "mmd") and "mean_kl" not in records[0]
    assert "test_loss" in out and str(run) in out
    assert parse_config(yaml.safe_load((run / "config.yaml").read_text())).objective.beta == 0.5


def test_overrides_on_the_command_line(tmp_path, capsys):
    code, _, err = run_cli(
        ["train", write_config(tmp_path), "objective.beta=0", "train.steps=10", "--out", tmp_path / "run"], capsys
    )
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["objective"]["beta"] == 0.0 and saved["train"]["steps"] == 10


def _final_weights(run):
    return load_checkpoint(run / "checkpoint.npz")["backend"]["weights"]


def _without_timings(text):
    return [{k: v for k, v in json.loads(line).items() if "seconds" not in k} for line in text.splitlines()]


def test_resume_gives_the_same_weights_and_metrics_as_an_uninterrupted_run(tmp_path, monkeypatch):
    config = parse_config(TINY)
    start_run(config, tmp_path / "whole", progress=False)

    start_and_crash(monkeypatch, lambda: start_run(config, tmp_path / "crashed", progress=False), step=25)
    assert load_checkpoint(tmp_path / "crashed" / "checkpoint.npz")["step"] == 20
    resume_run(tmp_path / "crashed", progress=False)

    whole, resumed = _final_weights(tmp_path / "whole"), _final_weights(tmp_path / "crashed")
    for part in ("model", "guide"):
        for name, value in whole[part].items():
            np.testing.assert_array_equal(value, resumed[part][name], err_msg=name)
    assert _without_timings((tmp_path / "whole" / "metrics.jsonl").read_text()) == _without_timings(
        (tmp_path / "crashed" / "metrics.jsonl").read_text()
    )
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("whole", "crashed"))
    assert {k: v for k, v in a.items() if "seconds" not in k} == {k: v for k, v in b.items() if "seconds" not in k}


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    config = parse_config(TINY)
    real_fsync = checkpoint_module.os.fsync
    writes = {"n": 0}

    def failing_fsync(fd):
        # The second checkpoint dies after its bytes are written but before they reach the disk.
        if ".checkpoint.npz." in os.readlink(f"/proc/self/fd/{fd}"):
            writes["n"] += 1
            if writes["n"] == 2:
                raise OSError("disk full")
        real_fsync(fd)

    monkeypatch.setattr(checkpoint_module.os, "fsync", failing_fsync)
    # One line (a RunDirError, exit code 2 on the command line), not a raw OSError.
    with pytest.raises(RunDirError, match="disk full; the previous file is kept"):
        start_run(config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert load_checkpoint(run / "checkpoint.npz")["step"] == 10
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(checkpoint_module.os, "fsync", real_fsync)
    summary = resume_run(run, progress=False)
    assert summary["steps"] == 30


def test_a_non_finite_loss_stops_the_run_naming_the_term_and_step(tmp_path, monkeypatch):
    real_step = PyroBackend._step
    calls = {"n": 0}

    def diverging_step(self, x, y):
        calls["n"] += 1
        terms = real_step(self, x, y)
        if calls["n"] == 15:
            terms["marginal"] = float("nan")
        return terms

    monkeypatch.setattr(PyroBackend, "_step", diverging_step)
    with pytest.raises(TrainingDiverged, match="step 15: the marginal term is nan.*checkpoint \\(step 10\\)"):
        start_run(parse_config(TINY), tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")["step"] == 10


def test_a_corrupt_checkpoint_is_reported(tmp_path, capsys):
    start_run(parse_config({**TINY, "train": {**TINY["train"], "steps": 10}}), tmp_path / "run", progress=False)
    (tmp_path / "run" / "summary.json").unlink()
    (tmp_path / "run" / "checkpoint.npz").write_bytes(b"PK\x03\x04 not a whole archive")
    code, _, err = run_cli(["train", "--resume", tmp_path / "run"], capsys)
    assert code == 2 and "cannot be read" in err and err.count("\n") == 1


def test_a_trusted_pickle_with_a_checkpoints_structure_is_converted(tmp_path):
    import pickle

    from infovae.training.checkpoint import convert_legacy_checkpoint

    # infovae 0.1 pickled what the loop checkpointed: the step, the time, the backend's name and state.
    state = {"step": 4, "seconds": 0.5, "backend_name": "pyro", "backend": {"w": np.arange(3.0)}, "sampler": {"position": 2}}
    (tmp_path / "checkpoint.pkl").write_bytes(pickle.dumps(state))
    converted = load_checkpoint(convert_legacy_checkpoint(tmp_path))
    assert converted["step"] == 4 and converted["backend_name"] == "pyro" and converted["sampler"] == {"position": 2}
    assert converted["backend"]["w"].tolist() == [0.0, 1.0, 2.0]


def _npz(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


BAD_INPUT = {
    "missing config": (lambda t: t / "nope.yaml", "does not exist"),
    "yaml error": (lambda t: _text(t, "data: {kind: [strategies\n"), "not valid YAML"),
    "unknown key": (lambda t: _text(t, "objective: {betta: 1}\n"), "objective.betta: unknown key"),
    "wrong type": (lambda t: _text(t, "train: {steps: lots}\n"), "train.steps"),
    "out of range": (lambda t: _text(t, "objective: {beta: -2}\n"), "objective.beta"),
    "npz lengths differ": (
        lambda t: _text(
            t,
            f"data: {{kind: npz, path: {_npz(t, x=np.zeros((50, 2)), y=np.zeros((40, 3)))}}}\nmodel: {{likelihood: gaussian}}\n",
        ),
        "",
    ),
    "npz with NaN": (
        lambda t: _text(
            t,
            f"data: {{kind: npz, path: {_npz(t, x=np.full((50, 2), np.nan), y=np.zeros((50, 3)))}}}\nmodel: "
            f"{{likelihood: gaussian}}\n",
        ),
        "",
    ),
    "npz missing": (lambda t: _text(t, "data: {kind: npz, path: missing.npz}\nmodel: {likelihood: gaussian}\n"), "missing.npz"),
}


def _text(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_no_traceback(tmp_path, capsys, case):
    make, message = BAD_INPUT[case]
    code, out, err = run_cli(["train", make(tmp_path), "--out", tmp_path / "run"], capsys)
    assert code == 2
    assert err.startswith("infovae: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert not (tmp_path / "run").exists()


def test_an_existing_run_is_never_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    code, _, err = run_cli(["train", write_config(tmp_path), "--out", run], capsys)
    assert code == 2 and "already exists" in err
    assert (run / "summary.json").read_text() == "{}"
    code, _, err = run_cli(["train", "--resume", run], capsys)
    assert code == 2 and "holds no run to resume" in err


def test_bad_command_line_usage_is_one_line(capsys):
    code, _, err = run_cli(["train", "--bogus"], capsys)
    assert code == 2 and err.count("\n") == 1
    code, _, err = run_cli(["train"], capsys)
    assert code == 2 and "give a CONFIG file" in err


def test_numpyro_backend_writes_the_same_run_directory_and_resumes_exactly(tmp_path, capsys, monkeypatch):
    pytest.importorskip("numpyro")
    from infovae.training.numpyro_backend import NumPyroBackend

    raw = {**TINY, "backend": "numpyro"}
    code, _, err = run_cli(["train", write_config(tmp_path, raw), "--out", tmp_path / "whole"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary) and summary["backend"] == "numpyro"

    real = NumPyroBackend.train_steps
    calls = {"n": 0}

    def crashing(self, indices, active):
        calls["n"] += 1
        if calls["n"] == 3:  # the chunk after the second evaluation
            raise KeyboardInterrupt
        return real(self, indices, active)

    monkeypatch.setattr(NumPyroBackend, "train_steps", crashing)
    with pytest.raises(KeyboardInterrupt):
        start_run(parse_config(raw), tmp_path / "crashed", progress=False)
    monkeypatch.setattr(NumPyroBackend, "train_steps", real)
    resume_run(tmp_path / "crashed", progress=False)
    whole, resumed = (load_checkpoint(tmp_path / d / "checkpoint.npz")["backend"] for d in ("whole", "crashed"))
    for a, b in zip(jax_leaves(whole["params"]), jax_leaves(resumed["params"])):
        np.testing.assert_array_equal(a, b)
    assert _without_timings((tmp_path / "whole" / "metrics.jsonl").read_text()) == _without_timings(
        (tmp_path / "crashed" / "metrics.jsonl").read_text()
    )


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)
