"""Training options: model selection, early stopping, warm-up, schedules, clipping, the device,
extending a finished run, the unconditional VAE, and their bad values."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import yaml

from infovae.data.registry import load_splits
from infovae.training.checkpoint import load_checkpoint
from infovae.training.config import ConfigError, parse_config
from infovae.training.loop import MinibatchSampler, build_backend, resume_run, start_run

from .crash import start_and_crash

TINY = {
    "data": {"kind": "strategies", "num_examples": 240, "horizon": 4, "num_strategies": 3},
    "model": {"latent": "discrete", "latent_size": 4, "hidden": 16},
    "objective": {"beta": 0.5, "marginal": "kl", "marginal_weight": 2.0, "jsd_weight": 0.1},
    "train": {"steps": 30, "batch_size": 32, "eval_every": 10, "eval_examples": 60, "lr": 0.01},
}


def with_train(raw=TINY, **train):
    return {**raw, "train": {**raw["train"], **train}}


def overfitting_data(tmp_path, n=60):
    """Few examples of 4-d targets that depend on x through a label: a wide network overfits them."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 3))
    y = x[:, :1] + 2.0 * labels[:, None] + 0.5 * rng.normal(size=(n, 4))
    path = tmp_path / "small.npz"
    np.savez(path, x=x, y=y, labels=labels)
    return path


def overfitting_config(path, **train):
    return {
        "data": {"kind": "npz", "path": str(path), "val_fraction": 0.25, "test_fraction": 0.25},
        "model": {"latent": "discrete", "latent_size": 2, "hidden": 64, "likelihood": "gaussian", "decoder_scale": "amortized"},
        "train": {"steps": 300, "batch_size": 16, "eval_every": 20, "lr": 0.01, **train},
    }


def records(run):
    """The evaluations of ``run``, less their wall-clock times (two runs of the same training differ there only)."""
    return [
        {k: v for k, v in json.loads(line).items() if k != "unix_seconds"}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.mark.slow
def test_select_best_evaluates_the_weights_of_the_best_validation_step(tmp_path):
    path = overfitting_data(tmp_path)
    last = start_run(parse_config(overfitting_config(path, select="last")), tmp_path / "last", progress=False)
    best = start_run(parse_config(overfitting_config(path)), tmp_path / "best", progress=False)
    losses = [(r["loss"], r["step"]) for r in records(tmp_path / "best")]
    best_step = min(losses)[1]
    # The toy overfits: the validation loss is best early and worse at the end.
    assert best_step < 300 and losses[-1][0] > min(losses)[0]
    assert best["selected_step"] == best_step and last["selected_step"] == 300
    assert best["test_loss"] < last["test_loss"]
    # The same training either way; only the weights evaluated differ.
    assert records(tmp_path / "best") == records(tmp_path / "last")


def test_early_stopping_stops_after_patience_evaluations_without_improvement(tmp_path):
    path = overfitting_data(tmp_path)
    summary = start_run(parse_config(overfitting_config(path, early_stopping={"patience": 2})), tmp_path / "run", progress=False)
    steps = [r["step"] for r in records(tmp_path / "run")]
    losses = [r["loss"] for r in records(tmp_path / "run")]
    best = int(np.argmin(losses))
    assert summary["stopped_early"] and summary["steps"] == steps[-1] < 300
    assert len(steps) == best + 3  # the best evaluation, then two without improvement


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_warmup_ramps_each_weight_linearly_from_zero(backend):
    if backend == "numpyro":
        pytest.importorskip("numpyro")
    config = parse_config({**with_train(warmup={"beta": 4, "marginal_weight": 8, "jsd_weight": 2}), "backend": backend})
    splits = load_splits(config.data, config.likelihood)
    model = build_backend([config], splits)
    sampler = MinibatchSampler(len(splits.train), 32, 0)
    terms = model.train_steps(np.stack([sampler.next() for _ in range(10)])[None], np.ones(1, bool))
    for t in range(10):
        step = {name: values[0, t] for name, values in terms.items()}
        beta, gamma, delta = 0.5 * min(1, t / 4), 2.0 * min(1, t / 8), 0.1 * min(1, t / 2)
        expected = -(step["recon"] - beta * step["kl"] - gamma * step["marginal"] + delta * step["jsd"])
        assert step["loss"] == pytest.approx(expected, rel=1e-5), t


def test_both_backends_follow_the_same_schedule_clip_and_warmup():
    pytest.importorskip("numpyro")
    raw = with_train(lr_schedule="cosine", grad_clip=0.05, warmup={"marginal_weight": 3}, steps=8, lr=0.05)
    losses = {}
    for backend in ("pyro", "numpyro"):
        config = parse_config({**raw, "backend": backend})
        splits = load_splits(config.data, config.likelihood)
        model = build_backend([config], splits)
        sampler = MinibatchSampler(len(splits.train), 32, 0)
        losses[backend] = model.train_steps(np.stack([sampler.next() for _ in range(8)])[None], np.ones(1, bool))["loss"][0]
    # Same initial weights and minibatches: the backends agree to float32 noise over the steps.
    np.testing.assert_allclose(losses["numpyro"], losses["pyro"], rtol=1e-4)
    assert not np.allclose(losses["pyro"][-1], losses["pyro"][0])


def test_grad_clip_bounds_the_first_adam_moment():
    config = parse_config(with_train(grad_clip=1e-3))
    splits = load_splits(config.data, config.likelihood)
    model = build_backend([config], splits)
    model.train_steps(np.arange(32)[None, None], np.ones(1, bool))
    norm = float(np.sqrt(sum(float((m**2).sum()) for m in model.optim.mu)))
    # After one step Adam's first moment is (1 - beta1) times the clipped gradient.
    assert norm == pytest.approx(0.1 * 1e-3, rel=1e-4)


def test_extending_a_finished_run_equals_training_to_the_new_length_in_one_go(tmp_path):
    start_run(parse_config(with_train(steps=30)), tmp_path / "whole", progress=False)
    start_run(parse_config(with_train(steps=20)), tmp_path / "extended", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant learning rate: nothing to warn of
        summary = resume_run(tmp_path / "extended", steps=30, progress=False)
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.npz")["backend"]["weights"]
    extended = load_checkpoint(tmp_path / "extended" / "checkpoint.npz")["backend"]["weights"]
    for part in ("model", "guide"):
        for name, value in whole[part].items():
            np.testing.assert_array_equal(value, extended[part][name], err_msg=name)
    assert summary["steps"] == 30
    assert yaml.safe_load((tmp_path / "extended" / "config.yaml").read_text())["train"]["steps"] == 30
    expected = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert {k: v for k, v in summary.items() if "seconds" not in k} == {k: v for k, v in expected.items() if "seconds" not in k}
    with pytest.raises(ValueError, match="fewer than the run's 30"):
        resume_run(tmp_path / "extended", steps=10, progress=False)


@pytest.mark.parametrize("finished", [True, False])
def test_extending_a_cosine_run_warns_that_its_steps_so_far_decayed_over_the_old_length(tmp_path, monkeypatch, finished):
    config = parse_config(with_train(steps=20, lr_schedule="cosine"))
    if finished:
        start_run(config, tmp_path / "run", progress=False)
    else:  # a crash at step 15 leaves the checkpoint of step 10
        start_and_crash(monkeypatch, lambda: start_run(config, tmp_path / "run", progress=False), step=15)
    done = 20 if finished else 10
    with pytest.warns(
        UserWarning, match=rf"first {done} steps followed the decay over 20 steps, the rest follow the decay over 40"
    ):
        resume_run(tmp_path / "run", steps=40, progress=False)


def without_timings(summary):
    return {k: v for k, v in summary.items() if "seconds" not in k}


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_extending_a_run_that_ended_off_the_evaluation_grid_evaluates_and_selects_as_one_go(tmp_path, backend):
    if backend == "numpyro":
        pytest.importorskip("numpyro")
    raw = {**with_train(eval_every=20), "backend": backend}
    whole = start_run(parse_config(with_train(raw, steps=40)), tmp_path / "whole", progress=False)
    short = start_run(parse_config(with_train(raw, steps=10)), tmp_path / "extended", progress=False)
    # The shorter run's end is its own candidate: the validation loss is lowest there (these seeds),
    # lower than at step 20, which the run of 40 steps selects.
    assert short["selected_step"] == 10 and whole["selected_step"] == 20
    extended = resume_run(tmp_path / "extended", steps=40, progress=False)
    assert records(tmp_path / "extended") == records(tmp_path / "whole")
    assert [r["step"] for r in records(tmp_path / "extended")] == [20, 40]
    assert without_timings(extended) == without_timings(whole)


def test_a_run_whose_end_off_the_grid_is_best_reports_its_last_weights(tmp_path):
    from infovae.training.runs import open_run

    short = start_run(parse_config(with_train(steps=10, eval_every=20)), tmp_path / "run", progress=False)
    assert short["selected_step"] == 10
    last = load_checkpoint(tmp_path / "run" / "checkpoint.npz")["backend"]["weights"]["model"]
    held = open_run(tmp_path / "run").backend.model.state_dict()
    for name, value in last.items():
        np.testing.assert_array_equal(held[name].numpy(), value, err_msg=name)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_an_npz_without_x_trains_an_unconditional_vae(tmp_path, backend):
    if backend == "numpyro":
        pytest.importorskip("numpyro")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 80)
    np.savez(tmp_path / "y.npz", y=(rng.random((80, 6)) < 0.2 + 0.6 * labels[:, None]).astype(float) * 0.9, labels=labels)
    config = {
        "data": {"kind": "npz", "path": str(tmp_path / "y.npz")},
        "model": {"latent": "discrete", "latent_size": 2, "hidden": 16, "likelihood": "bernoulli"},
        "train": {"steps": 20, "batch_size": 16, "eval_every": 10},
        "backend": backend,
    }
    summary = start_run(parse_config(config), tmp_path / "run", progress=False)
    assert np.isfinite(summary["nll"]) and 0 <= summary["probe_accuracy"] <= 1


def test_cuda_without_a_device_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(with_train(device="cuda")))
    done = subprocess.run(
        [sys.executable, "-m", "infovae", "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no CUDA device" in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("model", "decoder_scale", -1, "model.decoder_scale"),
        ("model", "decoder_scale", "wide", "model.decoder_scale"),
        ("model", "min_scale", 0, "model.min_scale"),
        ("train", "select", "worst", "train.select"),
        ("train", "monitor", "loss_of_faith", "train.monitor"),
        ("train", "early_stopping", {"patience": 0}, "train.early_stopping.patience"),
        ("train", "warmup", {"beta": -1}, "train.warmup.beta"),
        ("train", "warmup", {"gamma": 5}, "train.warmup.gamma: unknown key"),
        ("train", "lr_schedule", "linear", "train.lr_schedule"),
        ("train", "grad_clip", 0, "train.grad_clip"),
        ("train", "device", "tpu", "train.device"),
    ],
)
def test_bad_values_of_the_options_name_the_key(section, key, value, message):
    raw = {**TINY, section: {**TINY.get(section, {}), key: value}}
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_monitor_the_data_cannot_give_is_refused(tmp_path):
    path = overfitting_data(tmp_path)
    raw = overfitting_config(path, select="best", monitor="coverage_tv")
    with pytest.raises(ValueError, match="train.monitor=coverage_tv needs a data set with a known generator"):
        start_run(parse_config(raw), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
