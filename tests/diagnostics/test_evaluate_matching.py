"""The aggregate posterior's two-sample test (``marginal_mmd``) compares the posterior's draws of one half
of the evaluation examples with the prior's draws of the other half: with a prior p(z|x) that depends on
x, draws of the same examples are paired, and the statistic is then biased and the test nearly blind."""

import numpy as np
import pytest

from infovae.data.registry import load_splits
from infovae.diagnostics import evaluate as evaluate_module
from infovae.diagnostics.evaluate import held_out_set, matching_halves
from infovae.diagnostics.two_sample import marginal_fit
from infovae.training.config import parse_config


def test_the_halves_split_every_position_once_at_random_from_the_seed():
    first, second = matching_halves(201, seed=7)
    assert (len(first), len(second)) == (100, 101)
    np.testing.assert_array_equal(np.sort(np.concatenate([first, second])), np.arange(201))
    again = matching_halves(201, seed=7)
    np.testing.assert_array_equal(first, again[0])
    assert not np.array_equal(first, matching_halves(201, seed=8)[0])
    # Not the first rows: held-out rows may be sorted (by label, say), and halves of a sorted file differ.
    assert 30 < np.sum(first < 100) < 70


def _x_dependent_prior(rng, n, d=4, scale=0.3):
    """Means of p(z|x_i) = q(z|x_i, y_i) = N(mu_i, scale^2): the aggregates match exactly, N(0, I)."""
    return rng.standard_normal((n, d)) * np.sqrt(1 - scale**2), scale


def test_halves_keep_the_statistic_unbiased_and_the_test_calibrated_where_paired_draws_do_not():
    rng = np.random.default_rng(0)
    n, reps = 400, 120
    halves, paired = [], []
    for r in range(reps):
        mu, scale = _x_dependent_prior(rng, n)
        z_q = mu + scale * rng.standard_normal(mu.shape)
        z_p = mu + scale * rng.standard_normal(mu.shape)
        first, second = matching_halves(n, seed=r)
        halves.append(marginal_fit(z_q[first], z_p[second], rng=r))
        paired.append(marginal_fit(z_q, z_p, rng=r))
    for results, unbiased in ((halves, True), (paired, False)):
        statistic = np.array([h["statistic"] for h in results])
        t = statistic.mean() / (statistic.std(ddof=1) / np.sqrt(reps))
        assert (abs(t) < 3) if unbiased else (t < -5)
    p_values = np.array([h["p_value"] for h in halves])
    assert 0.3 < np.mean(p_values < 0.5) < 0.7  # uniform where the aggregates match
    assert np.mean(p_values < 0.05) < 0.12
    assert np.mean(np.array([h["p_value"] for h in paired]) < 0.5) < 0.1  # paired: p-values crowd near 1


CONFIG = {
    "data": {"kind": "strategies", "num_examples": 1200, "horizon": 4, "num_strategies": 3},
    "model": {"latent": "gaussian", "latent_size": 2, "hidden": 8},
    "train": {"steps": 4, "batch_size": 32, "eval_every": 2, "eval_examples": 101},
}


@pytest.mark.parametrize("backend_name", ["pyro", "numpyro"])
def test_both_backends_test_the_posterior_of_one_half_against_the_prior_of_the_other(backend_name, monkeypatch):
    pytest.importorskip(backend_name)
    from infovae.training.loop import build_backend

    config = parse_config({**CONFIG, "backend": backend_name})
    splits = load_splits(config.data, config.likelihood)
    backend = build_backend([config], splits)
    first, second = held_out_set(splits.val, splits.train, None, config).matching_halves
    assert (len(first), len(second)) == (50, 51)
    seen = []
    if backend_name == "pyro":
        monkeypatch.setattr(
            evaluate_module, "marginal_fit", lambda q, p, rng: seen.append((len(q), len(p))) or marginal_fit(q, p, rng)
        )
    record = backend.evaluate(splits.val, splits.train, splits.generator, np.array([0]))
    assert np.isfinite(record["marginal_mmd"][0]) and 0 < record["marginal_mmd_p"][0] <= 1
    if backend_name == "pyro":
        assert seen == [(50, 51)]
    else:  # the device's relabellings label the pooled halves, and the program indexes its draws by them
        arrays, _ = backend._eval_set(splits.val, splits.train, splits.generator)
        assert arrays["relabellings"].shape[1] == 101 and float(arrays["relabellings"][0].sum()) == 50
        np.testing.assert_array_equal(np.asarray(arrays["matching_first"]), first)
        np.testing.assert_array_equal(np.asarray(arrays["matching_second"]), second)
