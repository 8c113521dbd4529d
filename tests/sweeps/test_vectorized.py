"""The vectorised executor: trials as one compiled program, with the numbers each trial gets alone."""

import json

import numpy as np
import pytest

from infovae.diagnostics.two_sample import PERMUTATIONS

pytest.importorskip("numpyro")

from infovae.data.registry import load_splits  # noqa: E402
from infovae.errors import RunInterrupted  # noqa: E402
from infovae.sweeps import open_sweep, run_sweep  # noqa: E402
from infovae.training import loop_group  # noqa: E402
from infovae.training.config import parse_config  # noqa: E402
from infovae.training.loop import MinibatchSampler, build_backend  # noqa: E402

BASE = {
    "data": {"kind": "strategies", "num_examples": 240, "horizon": 4, "num_strategies": 3},
    "model": {"latent": "discrete", "latent_size": 4, "hidden": 16},
    "objective": {"beta": 0.5, "marginal": "kl", "marginal_weight": 2.0},
    "train": {"steps": 30, "batch_size": 32, "eval_every": 10, "eval_examples": 60, "lr": 0.01},
    "backend": "numpyro",
}
# Per-trial scalars only: these three share one program.
GROUP = [
    {"objective": {"beta": 1.0, "jsd_weight": 0.1}, "train": {"seed": 0}},
    {"objective": {"beta": 0.3, "marginal_weight": 7.0}, "train": {"seed": 1, "lr": 0.003, "grad_clip": 0.5}},
    {"objective": {"beta": 0.0}, "train": {"seed": 2, "warmup": {"marginal_weight": 20}, "lr_schedule": "cosine"}},
]


def config(change):
    raw = {key: {**value, **change.get(key, {})} if isinstance(value, dict) else value for key, value in BASE.items()}
    return parse_config(raw)


def train(configs, steps):
    splits = load_splits(configs[0].data, configs[0].likelihood)
    backend = build_backend(configs, splits)
    samplers = [MinibatchSampler(len(splits.train), c.train.batch_size, c.train.seed) for c in configs]
    chunks = []
    for done in range(0, steps, 10):
        indices = np.stack([np.stack([s.next() for _ in range(min(10, steps - done))]) for s in samplers])
        chunks.append(backend.train_steps(indices, np.ones(len(configs), bool)))
    terms = {name: np.concatenate([c[name] for c in chunks], axis=1) for name in chunks[0]}
    return backend, splits, terms


def test_a_trial_in_the_program_gets_the_numbers_it_gets_alone():
    import jax

    # On a GPU the batched kernels round differently: measured on an H200, 8e-7 relative on the first
    # step's KL term, where a CPU stays within 2e-7 and gives the loss bit for bit.
    on_cpu = jax.devices()[0].platform == "cpu"
    first_step_rtol = 2e-7 if on_cpu else 2e-6
    configs = [config(c) for c in GROUP]
    group, splits, together = train(configs, 100)
    alone_backend, _, alone = train([configs[1]], 100)
    # The group computes the JSD (trial 0 weighs it); trial 1 does not weigh it, and gets what it gets alone.
    assert "jsd" in together and "jsd" not in alone
    for name, values in alone.items():
        # The first step agrees to float32 rounding of the batched arithmetic (the loss exactly); a
        # hundred Adam steps later, to float32 noise.
        np.testing.assert_allclose(together[name][1, 0], values[0, 0], rtol=first_step_rtol, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(together[name][1], values[0], rtol=1e-4, atol=1e-6, err_msg=name)
    assert together["loss"][1, 0] == alone["loss"][0, 0] or not on_cpu
    seeds = [5, 6, 7]
    evaluated = group.evaluate(splits.val, splits.train, splits.generator, seeds)
    alone_evaluated = alone_backend.evaluate(splits.val, splits.train, splits.generator, seeds[1:2])
    for name, values in alone_evaluated.items():
        if values[0] is not None:
            # A permutation p-value counts relabellings whose statistic reaches the observed one: float32
            # rounding may move one of them across it, a step of 1 / (PERMUTATIONS + 1).
            atol = 1.01 / (PERMUTATIONS + 1) if name == "marginal_mmd_p" else 1e-5
            np.testing.assert_allclose(evaluated[name][1], values[0], rtol=1e-4, atol=atol, err_msg=name)


# The same trials as a sweep's list (the sweep gives each its seed).
LIST = [
    {"objective.beta": 1.0, "objective.jsd_weight": 0.1},
    {"objective.beta": 0.3, "objective.marginal_weight": 7.0, "train.lr": 0.003, "train.grad_clip": 0.5},
    {"objective.beta": 0.0, "train.warmup.marginal_weight": 20, "train.lr_schedule": "cosine"},
]


def _sweep(tmp_path, name, extra_list=(), progress=False, **options):
    sweep = {"base": BASE, "list": [*LIST, *extra_list], "seeds": [0, 1]}
    return run_sweep(sweep, tmp_path / name, executor="vectorized", progress=progress, **options)


def _summaries(sweep):
    return {row["trial"]: row for row in sweep.results.to_dict("records") if row["status"] == "ok"}


def test_invalid_and_diverging_trials_fail_alone(tmp_path):
    clean = _sweep(tmp_path, "clean")
    assert len(clean.results) == 6 and (clean.results["status"] == "ok").all()
    mixed = _sweep(
        tmp_path,
        "mixed",
        extra_list=[
            {"objective.marginal": "mmd"},  # invalid for a discrete latent: failed before any program
            {"objective.marginal_weight": 1e37},  # the loss overflows float32 at the first step
        ],
    )
    statuses = dict(zip(mixed.results["trial"], mixed.results["status"]))
    errors = dict(zip(mixed.results["trial"], mixed.results["error"]))
    assert sorted(statuses.values()) == ["failed"] * 4 + ["ok"] * 6
    for trial in statuses:
        if "marginal=mmd" in trial:
            assert "needs a continuous latent" in errors[trial]
        if "1e+37" in trial:
            assert errors[trial].startswith("step 1: the loss term is inf")
    # The others' numbers do not depend on the failing trials' presence.
    clean_rows, mixed_rows = _summaries(clean), _summaries(mixed)
    for trial, row in clean_rows.items():
        for key in ("test_loss", "mi", "nll", "probe_accuracy", "coverage_tv"):
            assert mixed_rows[trial][key] == pytest.approx(row[key], rel=1e-4, abs=1e-6), (trial, key)
    # Every finished trial's run folder is a complete run folder, as a single run's, recording the
    # training terms its own objective weighs (the group computed the JSD for one setting only).
    for trial in clean_rows:
        run = clean.run_dir(trial)
        assert {p.name for p in run.iterdir()} >= {"config.yaml", "splits.npz", "metrics.jsonl", "checkpoint.npz", "summary.json"}
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [10, 20, 30]
        assert ("train_jsd" in records[0]) == ("jsd_weight=0.1" in trial)
    assert not (tmp_path / "clean" / "groups").exists()


def test_chunks_of_a_group_give_the_same_numbers(tmp_path, capsys):
    # In this process, one program per group; against one program per trial, two worker processes at a time.
    whole = _summaries(_sweep(tmp_path, "whole", workers=1, progress=None))
    # Its output is not a terminal: one line per finished trial.
    assert sum("trials finished" in line for line in capsys.readouterr().err.splitlines()) == 6
    chunked = _summaries(_sweep(tmp_path, "chunked", trials_per_program=1, workers=2))
    assert whole.keys() == chunked.keys()
    for trial, row in whole.items():
        for key in ("test_loss", "mi", "nll", "probe_accuracy"):
            assert chunked[trial][key] == pytest.approx(row[key], rel=1e-4, abs=1e-6), (trial, key)
        # Time is the trial's share of its program's, labelled with the trials that shared it.
        assert row["trials_sharing_time"] > 1 and chunked[trial]["trials_sharing_time"] == 1
        assert row["seconds_per_step"] == pytest.approx(row["train_seconds"] / row["steps"], rel=1e-2, abs=1e-4)
    assert "divided among its trials" in (tmp_path / "whole" / "results.md").read_text()
    assert "divided among its trials" not in (tmp_path / "chunked" / "results.md").read_text()
    # A sweep given as a mapping has no file: none is recorded, and its table is not named after one.
    assert json.loads((tmp_path / "whole" / "sweep.json").read_text())["spec"] is None
    assert open_sweep(tmp_path / "whole").spec.path is None
    assert (tmp_path / "whole" / "results.md").read_text().startswith("# Sweep results\n")


def test_a_group_shares_its_time_by_the_steps_each_trial_trained():
    trials = [loop_group.TrialProgress(config({}), None, 240) for _ in range(3)]
    for trial, steps in zip(trials, (30, 30, 15)):
        trial.last_step = steps
    np.testing.assert_allclose(loop_group._time_shares(trials, 15.0), [6.0, 6.0, 3.0])


def test_an_interrupted_vectorised_sweep_resumes_exactly(tmp_path, monkeypatch, request):
    whole = _summaries(_sweep(tmp_path, "whole"))

    # Ask the loop to stop after its second chunk, as Ctrl-C would.
    request.getfixturevalue("stop_after_second_chunk")
    with pytest.raises(RunInterrupted):
        _sweep(tmp_path, "stopped", workers=1)  # in this process, where the patches act
    interrupted = open_sweep(tmp_path / "stopped")
    assert set(interrupted.results["status"]) - {"pending"} == {"interrupted"}  # pending: queued, never started
    assert list((tmp_path / "stopped" / "groups").glob("*/checkpoint.npz"))
    monkeypatch.undo()

    resumed = _summaries(_sweep(tmp_path, "stopped"))
    assert resumed.keys() == whole.keys()
    for trial, row in whole.items():
        for key in ("test_loss", "mi", "nll", "probe_accuracy", "coverage_tv"):
            assert resumed[trial][key] == row[key], (trial, key)
