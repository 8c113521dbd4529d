r"""Did a validation curve decay? An unbiased estimate of its fall over the late part of training, with
an interval and a p-value whose null hypothesis is built from the curve's own noise.

The *decay* of a curve ``v_1..v_T`` evaluated at steps ``s_1..s_T`` is the fall of its least-squares
line over the late part (the evaluations whose step lies in the last :data:`LATE` of the step range):

.. math:: \mathrm{decay} = -\hat b\,(s_{\mathrm{end}} - s_{\mathrm{start}}),
   \qquad \hat b = \frac{\sum_t (s_t - \bar s)\, v_t}{\sum_t (s_t - \bar s)^2}.

Nothing is selected from the data, so the estimate is exactly unbiased for the fall of the mean curve's
least-squares line over those steps, whatever the noise (it is the fall itself where the mean curve is
straight there): it is 0 on average on a flat curve and negative where the curve still rises. An
estimate that picks the best evaluation (or window) and subtracts the last one is biased upward by
about 1.5 noise standard deviations on a flat curve of 180 evaluations and can never be negative; this
one can, and does not favour quieter curves when decays are compared.

Noise: evaluations of one run are autocorrelated (the weights drift slowly between evaluations), so the
interval and the p-value come from a self-normalised t-statistic, ``t = b / se`` with the long-run
variance of the residuals estimated from their partial sums (the Bartlett kernel with bandwidth equal to
the late part's length: Kiefer & Vogelsang 2002), referred to its distribution under AR(1) noise,
simulated. The AR(1) coefficient is the residuals' lag-1 autocorrelation corrected for the line fitted
to them (its expectation under AR(1) noise computed exactly for this design and inverted), and the
reference uses it ``2 + 8 / n`` of its standard errors higher (``n`` evaluations in the late part),
``phi + (2 + 8 / n) sqrt((1 - phi^2) / n)``, at most 0.95 (:func:`reference_autocorrelation`), so that an
uncertain autocorrelation makes the test conservative rather than liberal. On a short curve the estimate
is biased low and very uncertain, so the reference is then nearly always a strongly autocorrelated one:
with one standard error (the earlier rule), 6 to 8 late evaluations with AR(1) noise of coefficient 0.5
to 0.8 were called decayed 6.7-9.3% of the time and covered 87-92%.

Measured calibration (``benchmarks/decay_calibration.py``: flat curves, one-sided at 5%, 6000 curves a
cell, Monte-Carlo standard error 0.3 points): with AR(1) noise of coefficient 0 to 0.8 and 6 to 200
evaluations in the late part, 0.5-5.1% are called decayed and the 95% interval covers the true decay
94.8-99.7% of the time (5% and 95% within that error; conservative below about 30 late evaluations, where
the autocorrelation is poorly known; 2.9-5.1% and 94.8-97.1% from 60 on); with negative autocorrelation
(-0.3), 0.2-5.3%. The price is power
on short curves. Against a fall of 2.5 noise standard deviations over the late part, with independent
noise: 12% at 6 late evaluations, 18% at 8, 23% at 10, 46% at 15, 92% at 30 and all from 60 on; against
3 standard deviations, 16%, 24%, 31%, 55%, 97% and all; with AR(1) noise of coefficient 0.5, which carries
less information per evaluation, 3 standard deviations are found 25-27% of the time at 6 to 15 late
evaluations, 52% at 30, 89% at 60 and 99.5% at 120 (3000 curves a cell). A curve with fewer than :data:`MIN_LATE_EVALUATIONS`
late evaluations is not tested (:class:`~infovae.errors.UserInputError`, which the reports quote).
"""

import math
from functools import lru_cache

import numpy as np

from infovae.errors import UserInputError

__all__ = ["LATE", "MIN_LATE_EVALUATIONS", "REFERENCE_DRAWS", "decay_test", "reference_autocorrelation"]

# The late part: the evaluations in the last half of the step range.
LATE = 0.5
# Fewer evaluations than this in the late part give neither a slope nor an autocorrelation worth testing.
MIN_LATE_EVALUATIONS = 6
# The reference distribution uses the autocorrelation this many of its standard errors above its estimate,
# ``UPPER_SE + UPPER_SE_SHORT / n`` at ``n`` late evaluations: the estimate from a short curve is biased
# low and very uncertain, so a short curve is referred to a strongly autocorrelated reference. Chosen by
# simulation as about the smallest allowance (in steps of 0.25 standard errors) that keeps flat curves of
# AR(1) coefficient 0 to 0.8 at or below the nominal rate with 95% coverage at 6 to 200 late evaluations
# (it needs 3 at 6 to 8 evaluations, 2.5 at 12, 2 from 20 on); ``benchmarks/decay_calibration.py``
# measures the result.
UPPER_SE, UPPER_SE_SHORT = 2.0, 8.0
# Draws of the simulated reference distribution of t (p-values resolve 1 / (REFERENCE_DRAWS + 1)).
REFERENCE_DRAWS = 10000
# The reference is simulated for autocorrelations on this grid (the estimate is rounded to it).
AUTOCORRELATION_GRID = np.round(np.arange(-0.5, 0.9501, 0.025), 4)
_REFERENCE_SEED = 20260521


def _late_part(values, steps, late):
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise UserInputError(f"decay_test takes one curve (1-D values), got shape {values.shape}")
    steps = np.arange(len(values), dtype=float) if steps is None else np.asarray(steps, dtype=float)
    if steps.shape != values.shape:
        raise UserInputError(f"steps has shape {steps.shape} but values has {values.shape}")
    if not (np.isfinite(values).all() and np.isfinite(steps).all()):
        raise UserInputError("decay_test needs finite values and steps (drop the evaluations without a value)")
    if len(steps) > 1 and (np.diff(steps) <= 0).any():
        raise UserInputError("steps must increase (the curve in evaluation order)")
    if not 0 < late <= 1:
        raise UserInputError(f"late must be in (0, 1], got {late}")
    start = steps[-1] - late * (steps[-1] - steps[0]) if len(steps) else 0.0
    keep = steps >= start
    if keep.sum() < MIN_LATE_EVALUATIONS:
        raise UserInputError(
            f"the late part of the curve has {keep.sum()} evaluations; decay_test needs at least {MIN_LATE_EVALUATIONS}"
        )
    return values[keep], steps[keep]


def _line(y, x):
    """The late part's line, per curve (leading axes of ``y``): slope ``b``, the self-normalised standard
    error ``se`` of ``b``, the residuals' lag-1 autocorrelation and their standard deviation."""
    n = x.shape[-1]
    xc = x - x.mean()
    sxx = np.sum(xc**2)
    b = np.sum(y * xc, axis=-1) / sxx
    residuals = y - y.mean(-1, keepdims=True) - b[..., None] * xc
    partial = np.cumsum(residuals, axis=-1)[..., :-1]
    long_run_variance = 2.0 * np.sum(partial**2, axis=-1) / n**2
    squares = np.sum(residuals**2, axis=-1)
    lag1 = np.sum(residuals[..., 1:] * residuals[..., :-1], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        autocorrelation = np.where(squares > 0, lag1 / squares, 0.0)
    return b, np.sqrt(long_run_variance / sxx), autocorrelation, np.sqrt(squares / (n - 2))


def _design(x):
    """The late part's steps up to an affine map (which changes neither t nor the autocorrelation), as a
    hashable key."""
    return tuple(np.round((x - x[0]) / (x[-1] - x[0]), 9))


@lru_cache(maxsize=64)
def _expected_autocorrelation(design):
    """``E[lag-1 sum] / E[sum of squares]`` of the residuals of the line fitted at ``design`` under AR(1)
    noise, for every coefficient of :data:`AUTOCORRELATION_GRID`; exact, from the residual projection
    ``M``: ``E[r' A r] = sigma^2 tr(A M R M)`` with ``R_ij = phi^|i-j|``."""
    x = np.asarray(design)
    n = len(x)
    X = np.stack([np.ones(n), x - x.mean()], axis=1)
    M = np.eye(n) - X @ np.linalg.pinv(X)
    shift = np.eye(n, k=1)
    lags = np.abs(np.arange(n)[:, None] - np.arange(n)[None])
    # tr(A M R M) = sum_ij (M A M)_ij R_ij: summed by lag |i - j|, so that each phi costs O(n).
    by_lag = lambda A: np.bincount(lags.ravel(), weights=(M @ A @ M).ravel(), minlength=n)  # noqa: E731
    lag1, squares = by_lag(shift), by_lag(np.eye(n))
    powers = AUTOCORRELATION_GRID[:, None] ** np.arange(n)
    expected = (powers @ lag1) / (powers @ squares)
    return np.maximum.accumulate(expected)  # increasing in phi; made strictly usable for interpolation


def _ar1_noise(rng, draws, n, phi):
    """``[draws, n]`` stationary AR(1) noise of unit variance and coefficient ``phi``."""
    eps = rng.standard_normal((draws, n))
    out = np.empty((draws, n))
    out[:, 0] = eps[:, 0]
    scale = math.sqrt(1.0 - phi**2)
    for t in range(1, n):
        out[:, t] = phi * out[:, t - 1] + scale * eps[:, t]
    return out


def _simulate_reference(design, phi, rng):
    x = np.asarray(design)
    b, se, _, _ = _line(_ar1_noise(rng, REFERENCE_DRAWS, len(x), phi), x)
    return np.sort(b / se)


@lru_cache(maxsize=512)
def _cached_reference(design, phi):
    return _simulate_reference(design, phi, np.random.default_rng(_REFERENCE_SEED))


def reference_autocorrelation(autocorrelation, n):
    """The AR(1) coefficient of the reference distribution for a late part of ``n`` evaluations whose
    noise's autocorrelation is estimated at ``autocorrelation``: ``UPPER_SE + UPPER_SE_SHORT / n`` of its
    standard errors, ``sqrt((1 - phi^2) / n)``, higher, on :data:`AUTOCORRELATION_GRID` (at most its
    top, 0.95)."""
    upper = autocorrelation + (UPPER_SE + UPPER_SE_SHORT / n) * math.sqrt(max(1.0 - autocorrelation**2, 0.0) / n)
    return float(AUTOCORRELATION_GRID[np.abs(AUTOCORRELATION_GRID - upper).argmin()])


def decay_test(values, steps=None, rng=None, late=LATE):
    """The decay of one validation curve over the late part of training, its 95% interval and a
    one-sided p-value against no decay, with the curve's own (autocorrelated) noise; see the module's
    description for the method, its calibration and its power.

    :param values: the curve, 1-D in evaluation order (e.g. the validation probe accuracy), finite.
    :param steps: the training step of each evaluation (increasing); ``None``: evenly spaced.
    :param rng: a :class:`numpy.random.Generator` (or seed) for the simulated reference distribution;
        ``None``: a fixed one, so that a curve always gets the same p-value.
    :param late: the fraction of the step range, at its end, whose evaluations form the late part.
    :returns: a dict of floats: ``decay`` (the fall of the late part's least-squares line, in the values'
        units; unbiased, negative where the curve rises), ``low`` and ``high`` (its 95% interval),
        ``p_value`` (one-sided: small when the curve decays), ``n`` (evaluations in the late part),
        ``start_step`` and ``end_step`` (its span), ``line_end`` (the line's value at ``end_step``, where
        the curve has got to without the last evaluation's noise), ``noise_sd`` (the residuals' standard
        deviation about the line) and ``autocorrelation`` (the noise's lag-1 autocorrelation, corrected
        for the fit).
    :raises UserInputError: for a curve that is not 1-D and finite, or with fewer than
        :data:`MIN_LATE_EVALUATIONS` evaluations in its late part.
    """
    y, x = _late_part(values, steps, late)
    n = len(y)
    design = _design(x)
    b, se, lag1, noise_sd = (float(v) for v in _line(y, x))
    autocorrelation = float(np.interp(lag1, _expected_autocorrelation(design), AUTOCORRELATION_GRID))
    span = x[-1] - x[0]
    decay = -b * span
    line_end = float(y.mean() + b * (x[-1] - x.mean()))
    out = {
        "decay": decay,
        "n": n,
        "start_step": float(x[0]),
        "end_step": float(x[-1]),
        "line_end": line_end,
        "noise_sd": noise_sd,
    }
    if np.ptp(y) == 0:  # a constant late part (a collapsed probe, say): exactly no decay
        return {**out, "decay": 0.0, "line_end": float(y[-1]), "low": 0.0, "high": 0.0, "p_value": 1.0, "autocorrelation": 0.0}
    phi = reference_autocorrelation(autocorrelation, n)
    if rng is None:
        reference = _cached_reference(design, phi)
    else:
        reference = _simulate_reference(design, phi, np.random.default_rng(rng))
    # (b_hat - b) / se follows the reference: b lies in [b_hat - q97.5 se, b_hat - q2.5 se], and the
    # decay -b * span in the mirror image.
    q_low, q_high = np.quantile(reference, [0.025, 0.975])
    with np.errstate(divide="ignore"):  # residuals exactly 0 (a noiseless line): t is infinite
        t = np.divide(b, se)
    p_value = (1 + np.searchsorted(reference, t, side="right")) / (len(reference) + 1)
    interval = {"low": decay + q_low * se * span, "high": decay + q_high * se * span}
    return {**out, **interval, "p_value": float(p_value), "autocorrelation": autocorrelation}
