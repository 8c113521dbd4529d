"""Intervals of means over seeds: Student's t, and seeds with the binomial noise of the examples."""

import numpy as np
import pytest
from scipy import stats

from infovae.diagnostics.intervals import seed_binomial_interval, t_interval


def test_t_interval():
    mean, half = t_interval([1.0, 2.0, 3.0, None, float("nan")])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / np.sqrt(3), rel=1e-3)
    assert np.isnan(t_interval([1.0])[1]) and np.isnan(t_interval([])[0])


def test_one_seed_gets_the_binomial_interval():
    mean, low, high = seed_binomial_interval([0.4], 359)
    half = 1.959964 * np.sqrt(0.4 * 0.6 / 359)
    assert mean == 0.4 and (low, high) == pytest.approx((0.4 - half, 0.4 + half), rel=1e-6)
    # Seeds that agree exactly add nothing to it.
    assert seed_binomial_interval([0.4, 0.4, 0.4], 359) == pytest.approx((0.4, 0.4 - half, 0.4 + half), rel=1e-6)


def test_seeds_add_their_spread_with_welch_satterthwaite_degrees_of_freedom():
    values, n = np.array([0.38, 0.49]), 359
    spread, binomial = values.var(ddof=1) / 2, values.mean() * (1 - values.mean()) / n
    df = (spread + binomial) ** 2 / spread**2
    mean, low, high = seed_binomial_interval(values, n)
    assert high - mean == pytest.approx(stats.t.ppf(0.975, df) * np.sqrt(spread + binomial), rel=1e-9)
    # Wider than the binomial interval, narrower than the t-interval of two seeds alone (t = 12.7).
    assert 1.96 * np.sqrt(binomial) < high - mean < t_interval(values)[1]
    # Many seeds: the spread's part shrinks; the binomial part, shared by the seeds, does not.
    many = np.random.default_rng(0).normal(0.4, 0.02, 400)
    _, low, high = seed_binomial_interval(many, 359)
    assert (high - low) / 2 == pytest.approx(1.96 * np.sqrt(0.4 * 0.6 / 359 + 0.02**2 / 400), rel=0.05)
