"""Resuming never loses what a run recorded: a run with evaluations but no checkpoint is refused rather than
trained over from step 0, and data whose content changed since the run began is refused."""

import numpy as np
import pytest
import yaml

import infovae
from infovae.errors import CheckpointError, RunDirError
from infovae.training.config import parse_config
from infovae.training.loop import resume_run, start_run
from infovae.training.runs import open_run

TINY = {
    "data": {"kind": "strategies", "num_examples": 120, "horizon": 3, "num_strategies": 2},
    "model": {"latent": "discrete", "latent_size": 3, "hidden": 8},
    "objective": {"beta": 1.0, "marginal": "kl"},
    "train": {"steps": 4, "batch_size": 16, "eval_every": 2, "eval_examples": 20},
}


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lock"}


def _npz_config(path):
    return {**TINY, "data": {"kind": "npz", "path": str(path)}, "model": {**TINY["model"], "likelihood": "gaussian"}}


def _write_npz(path, x, y):
    np.savez(path, x=x, y=y)


def _npz_run(tmp_path):
    """A finished run on an ``.npz`` data set; returns the run folder, the data file and its arrays."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 2)).astype(np.float32), rng.normal(size=(100, 3)).astype(np.float32)
    data = tmp_path / "data.npz"
    _write_npz(data, x, y)
    start_run(parse_config(_npz_config(data)), tmp_path / "run", progress=False)
    return tmp_path / "run", data, x, y


def test_a_run_with_evaluations_but_no_checkpoint_is_refused_not_trained_over(tmp_path):
    start_run(parse_config(TINY), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    (run / "summary.json").unlink()
    (run / "checkpoint.npz").unlink()
    before = _files(run)
    for resume in (lambda: resume_run(run, progress=False), lambda: infovae.resume(run, progress=False)):
        with pytest.raises(RunDirError, match="has evaluations but no checkpoint of its own.*SWEEP_DIR/groups/"):
            resume()
        assert _files(run) == before


def test_extending_a_finished_run_without_its_checkpoint_is_refused(tmp_path):
    start_run(parse_config(TINY), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    (run / "checkpoint.npz").unlink()
    before = _files(run)
    with pytest.raises(RunDirError, match="no checkpoint of its own"):
        resume_run(run, steps=6, progress=False)
    assert _files(run) == before


def test_a_run_stopped_before_its_first_evaluation_starts_over(tmp_path):
    """Nothing recorded, nothing to lose: a folder with only config.yaml and splits.npz resumes from step 0."""
    start_run(parse_config(TINY), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("summary.json", "checkpoint.npz", "metrics.jsonl"):
        (run / name).unlink()
    assert resume_run(run, progress=False)["steps"] == 4


def test_an_npz_whose_content_changed_with_the_same_rows_is_refused(tmp_path):
    run, data, x, y = _npz_run(tmp_path)
    changed = y.copy()
    changed[7, 1] += 0.5
    _write_npz(data, x, changed)
    before = _files(run)
    with pytest.raises(RunDirError, match=f"^{data}: its content has changed since the run in .* began"):
        resume_run(run, steps=6, progress=False)
    with pytest.raises(RunDirError, match="content has changed"):
        open_run(run).splits  # what reports read
    assert _files(run) == before
    _write_npz(data, x, y)
    assert resume_run(run, steps=6, progress=False)["steps"] == 6


def test_a_run_folder_without_a_data_digest_resumes_by_its_split_alone(tmp_path):
    """A folder of an earlier version: ``splits.npz`` holds the indices only."""
    run, data, x, y = _npz_run(tmp_path)
    with np.load(run / "splits.npz") as saved:
        assert str(saved["data_sha256"])
        indices = {k: saved[k] for k in ("train", "val", "test")}
    np.savez(run / "splits.npz", **indices)
    assert resume_run(run, steps=6, progress=False)["steps"] == 6


@pytest.mark.parametrize("key, value", [("hidden", 12), ("latent_size", 5), ("prior", "learned")])
def test_a_model_key_edited_by_hand_is_refused_naming_it_before_anything_is_written(tmp_path, key, value):
    start_run(parse_config(TINY), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    raw = yaml.safe_load((run / "config.yaml").read_text())
    raw["model"][key] = value  # the weights' shapes change with it
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    before = _files(run)
    named = f"model.{key} differs from the config the checkpoint was trained with"
    for use in (lambda: resume_run(run, steps=6, progress=False), lambda: open_run(run).backend):
        with pytest.raises(CheckpointError, match=named):
            use()
        assert _files(run) == before
    (run / "summary.json").unlink()
    with pytest.raises(CheckpointError, match=named):
        resume_run(run, progress=False)
