"""decay_test on simulated curves: flat curves (independent and AR(1) noise, several noise levels, 6 to
100 evaluations in the late half) are called decayed at most at the nominal rate and their interval
covers 0 at least at its nominal rate, the estimate is unbiased (it is 0 on average, not positive), and
a planted decay of 3 noise standard deviations is found (``benchmarks/decay_calibration.py`` measures
the whole table)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from infovae.diagnostics import decay_test
from infovae.diagnostics.decay import MIN_LATE_EVALUATIONS
from infovae.errors import UserInputError

# The curves of the calibration benchmark (AR(1) noise simulated independently of the library's own simulator).
_spec = importlib.util.spec_from_file_location(
    "decay_calibration", Path(__file__).parents[2] / "benchmarks" / "decay_calibration.py"
)
calibration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(calibration)
ar1, late_fall = calibration.ar1, calibration.late_fall

CURVES = 1000


def run(curves, steps=None):
    results = [decay_test(curve, steps) for curve in curves]
    return {key: np.array([r[key] for r in results]) for key in ("decay", "low", "high", "p_value")}


@pytest.mark.parametrize(
    "length, phi, sd",
    [(30, 0.0, 0.01), (30, 0.5, 0.02), (60, 0.5, 0.05), (120, 0.0, 0.005), (200, 0.0, 0.02), (200, 0.5, 0.01)],
)
def test_flat_curves_are_called_decayed_at_most_at_the_nominal_rate(length, phi, sd):
    rng = np.random.default_rng(length + int(10 * phi))
    out = run(0.4 + sd * ar1(rng, CURVES, length, phi))
    assert np.mean(out["p_value"] < 0.05) <= 0.07
    # Unbiased: the estimate averages 0 (its standard error here is at most 0.04 sd), where the best
    # evaluation less the last would average about 1.5 sd.
    assert abs(np.mean(out["decay"])) / sd < 0.12
    assert (out["decay"] < 0).mean() > 0.4
    # Conservative where the autocorrelation is poorly known (short curves), never liberal beyond noise.
    assert 0.94 <= np.mean((out["low"] <= 0) & (0 <= out["high"])) <= 0.995


@pytest.mark.parametrize("last_step, phi", [(2200, 0.5), (2200, 0.8), (3000, 0.5), (3000, 0.8)])
def test_short_autocorrelated_flat_curves_are_called_decayed_at_most_at_the_nominal_rate(last_step, phi):
    """The issue's case: evaluations every 200 steps to step 2200 or 3000 leave 6 or 8 in the late half,
    and flat curves with AR(1) noise of coefficient 0.5 or 0.8 were called decayed 6.7-9.3% of the time
    at nominal 5% (their intervals covered 0 87-92% of the time): the autocorrelation estimated from so
    few evaluations is far too low, and the reference built from it too narrow."""
    steps = np.arange(200, last_step + 1, 200.0)
    rng = np.random.default_rng(last_step + int(10 * phi))
    out = run(0.6 + 0.02 * ar1(rng, CURVES, len(steps), phi), steps)
    assert np.mean(out["p_value"] < 0.05) <= 0.05
    assert np.mean((out["low"] <= 0) & (0 <= out["high"])) >= 0.95


def test_the_best_evaluation_less_the_last_is_what_was_biased():
    """The contrast this replaces: on the same flat curves the old statistic is about 1.5 sd on average
    and never negative."""
    rng = np.random.default_rng(3)
    curves = 0.01 * rng.standard_normal((CURVES, 180))
    old = curves.max(1) - curves[:, -1]
    assert (old >= 0).all() and np.mean(old) / 0.01 > 1.5
    assert abs(np.mean(run(curves[:200])["decay"])) / 0.01 < 0.12


@pytest.mark.parametrize("length, phi", [(60, 0.0), (120, 0.0), (200, 0.0), (200, 0.5)])
def test_a_planted_decay_of_three_noise_sd_is_found(length, phi):
    rng = np.random.default_rng(length)
    sd = 0.02
    out = run(0.5 + late_fall(length, 3 * sd) + sd * ar1(rng, CURVES // 2, length, phi))
    assert np.mean(out["p_value"] < 0.05) >= 0.9
    # Unbiased here too: the late part's line falls by exactly the planted amount.
    assert np.mean(out["decay"]) == pytest.approx(3 * sd, abs=0.12 * sd)
    assert np.mean((out["low"] <= 3 * sd) & (3 * sd <= out["high"])) >= 0.92


def test_a_curve_that_rises_and_levels_off_has_not_decayed():
    rng = np.random.default_rng(5)
    length, sd = 80, 0.01
    t = np.arange(length)
    rise = 0.2 + 0.3 * (1 - np.exp(-t / 8))  # most of it in the first quarter, still creeping up later
    out = run(rise + sd * ar1(rng, CURVES // 2, length, 0.5))
    assert np.mean(out["p_value"] < 0.05) <= 0.05
    assert np.mean(out["decay"]) < 0


def test_the_estimate_is_the_fall_of_the_late_part_s_least_squares_line():
    rng = np.random.default_rng(0)
    steps = np.cumsum(rng.integers(50, 150, size=41))  # uneven spacing
    values = 0.3 + 0.01 * rng.standard_normal(41)
    out = decay_test(values, steps)
    late = steps >= steps[-1] - 0.5 * (steps[-1] - steps[0])
    slope = np.polyfit(steps[late], values[late], 1)[0]
    assert out["decay"] == pytest.approx(-slope * (steps[late][-1] - steps[late][0]), rel=1e-12)
    assert out["n"] == late.sum() and out["start_step"] == steps[late][0] and out["end_step"] == steps[-1]
    assert out["low"] < out["decay"] < out["high"] and 0 < out["p_value"] < 1
    residuals = values[late] - np.polyval(np.polyfit(steps[late], values[late], 1), steps[late])
    assert out["noise_sd"] == pytest.approx(np.sqrt(np.sum(residuals**2) / (late.sum() - 2)), rel=1e-12)
    # The steps' units do not matter, nor does the reference's seed beyond its simulation noise.
    again = decay_test(values, steps * 7.0 + 3.0)
    assert again["decay"] == pytest.approx(out["decay"], rel=1e-9) and again["p_value"] == out["p_value"]
    assert decay_test(values, steps, rng=1)["p_value"] == pytest.approx(out["p_value"], abs=0.03)


def test_the_line_s_end_is_the_late_part_s_least_squares_line_at_the_last_step():
    rng = np.random.default_rng(2)
    steps = np.cumsum(rng.integers(50, 150, size=41))  # uneven spacing
    values = 2.0 - 0.001 * steps / 100 + 0.05 * rng.standard_normal(41)
    late = steps >= steps[-1] - 0.5 * (steps[-1] - steps[0])
    expected = np.polyval(np.polyfit(steps[late], values[late], 1), steps[-1])
    assert decay_test(values, steps)["line_end"] == pytest.approx(expected, rel=1e-12)
    assert decay_test(np.full(20, 0.25))["line_end"] == 0.25  # a constant late part: exactly its value


def test_a_noiseless_line_is_its_own_answer():
    falling = decay_test(np.linspace(0.5, 0.3, 20))
    # The late part holds evaluations 10..19 of a fall of 0.2 over 19 intervals.
    assert falling["decay"] == pytest.approx(0.2 * 9 / 19, rel=1e-9)
    assert falling["p_value"] < 0.001 and falling["low"] == pytest.approx(falling["high"], abs=1e-9)
    # A probe stuck at one value (a collapsed latent whose probe predicts one class) did not decay.
    stuck = decay_test(np.full(20, 0.25))
    assert stuck["decay"] == 0.0 and stuck["p_value"] == 1.0


@pytest.mark.parametrize(
    "values, steps, message",
    [
        (np.zeros((2, 20)), None, "one curve"),
        (np.r_[np.zeros(19), np.nan], None, "finite"),
        (np.zeros(2 * MIN_LATE_EVALUATIONS - 3), None, "at least"),
        (np.zeros(20), np.r_[np.arange(19), 5], "increase"),
        (np.zeros(20), np.arange(19), "shape"),
    ],
)
def test_bad_curves_are_refused_by_name(values, steps, message):
    with pytest.raises(UserInputError, match=message):
        decay_test(values, steps)
