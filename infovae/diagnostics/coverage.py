r"""How far the label mix of generated data is from the true mix, with bounds that hold at a stated level.

Each of ``n`` generated examples ``i`` has a posterior over the labels, ``r_i`` (a row of
``[n, K]``; for the strategies data, :meth:`~infovae.data.strategies.StrategyGenerator.posterior`), and
the generated mix is their mean, :math:`\bar r`. Its total variation from the true mix :math:`\pi` is

.. math:: \widehat{TV} = \tfrac12 \sum_k |\bar r_k - \pi_k| = \max_{s \in \{\pm1\}^K} \tfrac12 \sum_k s_k (\bar r_k - \pi_k).

Noise and bias. :math:`\widehat{TV}` is biased upwards: a label whose share is right contributes
:math:`|\text{noise}|`, about :math:`0.4\,\mathrm{sd}(\bar r_k)`, not 0 (for four labels of which two are right,
200 examples of soft posteriors: about 0.02), so "above a threshold" cannot be read from it, nor from an
interval around it. The two bounds are built so that each errs in its own direction:

- **Upper** (:math:`\widehat{TV} + z\,\widehat{se}`): :math:`\widehat{TV}` is at least the true signs'
  sum :math:`\tfrac12\sum_k s^*_k(\bar r_k-\pi_k)`, an unbiased mean of the examples' scores
  :math:`\tfrac12 \sum_k s^*_k (r_{ik} - \pi_k)`, whose standard error is estimated with the observed
  signs. Its upward bias only makes it conservative.
- **Lower** (cross-fitted): the examples are split in two halves at random; the signs found on one half
  weigh the other half's scores, and the two halves' means are averaged. Signs fitted apart from the
  scores they weigh are at best the true ones, so its expectation is at most the true TV (unbiased where
  the signs are clear); its standard error is the two halves' means', the signs held fixed.

Each bound is one-sided at ``(1 - level) / 2``. On simulated posteriors (tests/diagnostics/test_coverage.py)
a true TV exactly at a threshold is put below it by the upper bound, or above it by the lower one, at
most about 5% of the time each (nominal 2.5%), and a TV of twice the threshold is found above it.
"""

import numpy as np
from scipy.special import ndtri

__all__ = ["coverage_bounds"]


def _signs(centred):
    return np.where(centred.mean(0) >= 0, 1.0, -1.0)


def coverage_bounds(posteriors, mix, level=0.95, seed=0):
    """The total variation between the mean of ``posteriors`` and ``mix``, with the bounds above.

    :param posteriors: ``[n, K]``, each generated example's posterior over the ``K`` labels (or one-hot
        labels); ``n >= 4``.
    :param mix: ``[K]``, the true label mix.
    :param level: the bounds' joint level; each is one-sided at ``(1 - level) / 2``.
    :param seed: the random split of the lower bound.
    :returns: ``{"tv", "low", "high", "examples"}`` (``low`` may be below 0: the data cannot tell the mixes
        apart).
    """
    centred = np.asarray(posteriors, dtype=float) - np.asarray(mix, dtype=float)
    n = centred.shape[0]
    if centred.ndim != 2 or n < 4:
        raise ValueError(f"coverage_bounds needs posteriors [n >= 4, K], got shape {centred.shape}")
    z = float(ndtri(0.5 + level / 2))
    tv = 0.5 * float(np.abs(centred.mean(0)).sum())
    scores = 0.5 * centred @ _signs(centred)
    high = tv + z * float(scores.std(ddof=1)) / np.sqrt(n)
    order = np.random.default_rng(seed).permutation(n)
    first, second = centred[order[: n // 2]], centred[order[n // 2 :]]
    weighed_second, weighed_first = 0.5 * second @ _signs(first), 0.5 * first @ _signs(second)
    estimate = 0.5 * (weighed_second.mean() + weighed_first.mean())
    se = 0.5 * np.sqrt(weighed_second.var(ddof=1) / len(second) + weighed_first.var(ddof=1) / len(first))
    return {"tv": tv, "low": float(estimate - z * se), "high": float(high), "examples": int(n)}
