"""Intervals for means over seeds: Student's t from the seeds' spread alone, and one for accuracies that
adds the binomial noise of the examples they were measured on."""

import numpy as np
from scipy.special import ndtri, stdtrit

__all__ = ["seed_binomial_interval", "t_interval"]


def _finite(values):
    return np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)


def t_interval(values, level=0.95):
    """``(mean, half-width)`` of the two-sided ``level`` Student-t interval of the mean of ``values``
    (half-width NaN for fewer than two finite values)."""
    values = _finite(values)
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = stdtrit(len(values) - 1, 0.5 + level / 2) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def seed_binomial_interval(accuracies, num_examples, level=0.95):
    """``(mean, low, high)``: the two-sided ``level`` interval of the mean over seeds of accuracies each
    measured on the same ``num_examples`` examples.

    Its variance is the seeds' spread, ``s^2 / S``, plus the binomial noise of the examples,
    ``m (1 - m) / n`` in full: the seeds share the examples, so that noise does not average out over
    seeds (the spread may already hold part of it, which makes the interval conservative). The quantile
    is Student's t with the Welch-Satterthwaite degrees of freedom of that sum, so that two seeds give a
    wide interval unless the binomial part dominates; one seed gives the binomial interval alone (the
    spread over seeds is then unknown: see :func:`infovae.reports.verdicts.probe_vs_chance`).
    """
    values = _finite(accuracies)
    if len(values) == 0 or not num_examples:
        return float("nan"), float("nan"), float("nan")
    seeds, mean = len(values), float(values.mean())
    binomial = mean * (1.0 - mean) / num_examples
    spread = values.var(ddof=1) / seeds if seeds > 1 else 0.0
    variance = spread + binomial
    quantile = ndtri(0.5 + level / 2) if spread == 0 else stdtrit(variance**2 / (spread**2 / (seeds - 1)), 0.5 + level / 2)
    half = float(quantile * np.sqrt(variance))
    return mean, mean - half, mean + half
