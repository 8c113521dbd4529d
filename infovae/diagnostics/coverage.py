r"""How far the label mix of generated data is from the true mix, with bounds that hold at a stated level.

Each of ``n`` generated examples ``i`` has a posterior over the labels, ``r_i`` (a row of
``[n, K]``; for the strategies data, :meth:`~infovae.data.strategies.StrategyGenerator.posterior`), and
the generated mix is their mean, :math:`\bar r`. Its total variation from the true mix :math:`\pi` is

.. math:: \widehat{TV} = \tfrac12 \sum_k |\bar r_k - \pi_k| = \max_{s \in \{\pm1\}^K} \tfrac12 \sum_k s_k (\bar r_k - \pi_k).

Noise and bias. :math:`\widehat{TV}` is biased upwards: a label whose share is right contributes
:math:`|\text{noise}|`, about :math:`0.4\,\mathrm{sd}(\bar r_k)`, not 0 (for four labels of which two are right,
200 examples of soft posteriors: about 0.02), so "above a threshold" cannot be read from it, nor from an
interval around it, unless the interval's lower end is lowered by a bound on that bias
(:func:`tv_noise_bias_bound`, as the sweep report's interval over seeds is). The two bounds of one run are
built so that each errs in its own direction:

- **Upper** (:math:`\widehat{TV} + z\,\widehat{se}`): :math:`\widehat{TV}` is at least the true signs'
  sum :math:`\tfrac12\sum_k s^*_k(\bar r_k-\pi_k)`, an unbiased mean of the examples' scores
  :math:`\tfrac12 \sum_k s^*_k (r_{ik} - \pi_k)`, whose standard error is estimated with the observed
  signs. Its upward bias only makes it conservative.
- **Lower** (cross-fitted): the examples are split in two halves at random; the signs found on one half
  weigh the other half's scores, and the two halves' means are averaged. Signs fitted apart from the
  scores they weigh are at best the true ones, so its expectation is at most the true TV (unbiased where
  the signs are clear). Its standard error is the bootstrap's (``resamples`` resamples of the examples,
  each split and weighed anew): each half's signs depend on the data the other half's scores are weighed
  with, a covariance that a formula holding the signs fixed leaves out (it put a TV at the threshold
  above it 4 – 5% of the time, nominal 2.5%, whatever the number of examples).

Each bound is one-sided at ``(1 - level) / 2``. On simulated posteriors (tests/diagnostics/test_coverage.py:
four, eight and ten labels, some of them at their true share, 200 – 300 examples) a true TV exactly at a
threshold is put below it by the upper bound 0 – 1.5% of the time and above it by the lower one 0.5 – 2%,
and a TV of twice the threshold is found above it at least 98% of the time.
"""

import numpy as np
from scipy.special import ndtri

__all__ = ["coverage_bounds", "tv_noise_bias_bound"]


def _signs(centred):
    """+1 or -1 per label: the side of the true share that the examples' mean is on."""
    return np.where(centred.mean(-2, keepdims=True) >= 0, 1.0, -1.0)


def _cross_fitted(centred, rng):
    """The cross-fitted estimate of each ``[..., n, K]`` sample's TV, split at random."""
    n = centred.shape[-2]
    order = rng.permuted(np.broadcast_to(np.arange(n), centred.shape[:-1]), axis=-1)
    shuffled = np.take_along_axis(centred, order[..., None], axis=-2)
    first, second = shuffled[..., : n // 2, :], shuffled[..., n // 2 :, :]
    weighed_second = 0.5 * (second * _signs(first)).sum(-1)
    weighed_first = 0.5 * (first * _signs(second)).sum(-1)
    return 0.5 * (weighed_second.mean(-1) + weighed_first.mean(-1))


def coverage_bounds(posteriors, mix, level=0.95, seed=0, resamples=200):
    """The total variation between the mean of ``posteriors`` and ``mix``, with the bounds above.

    :param posteriors: ``[n, K]``, each generated example's posterior over the ``K`` labels (or one-hot
        labels); ``n >= 4``.
    :param mix: ``[K]``, the true label mix.
    :param level: the bounds' joint level; each is one-sided at ``(1 - level) / 2``.
    :param seed: the random splits and resamples of the lower bound.
    :param resamples: the bootstrap's resamples for the lower bound's standard error.
    :returns: ``{"tv", "low", "high", "examples"}`` (``low`` may be below 0: the data cannot tell the mixes
        apart).
    """
    centred = np.asarray(posteriors, dtype=float) - np.asarray(mix, dtype=float)
    if centred.ndim != 2 or centred.shape[0] < 4:
        raise ValueError(f"coverage_bounds needs posteriors [n >= 4, K], got shape {centred.shape}")
    n = centred.shape[0]
    z = float(ndtri(0.5 + level / 2))
    tv = 0.5 * float(np.abs(centred.mean(0)).sum())
    scores = 0.5 * (centred * _signs(centred)).sum(-1)
    high = tv + z * float(scores.std(ddof=1)) / np.sqrt(n)
    rng = np.random.default_rng(seed)
    estimate = float(_cross_fitted(centred, rng))
    replicates = _cross_fitted(centred[rng.integers(0, n, (resamples, n))], rng)
    low = estimate - z * float(replicates.std(ddof=1))
    return {"tv": tv, "low": low, "high": float(high), "examples": int(n)}


def tv_noise_bias_bound(num_labels, num_examples):
    r"""A bound on the upward bias of the plain :math:`\widehat{TV}` of ``num_examples`` generated examples
    and ``num_labels`` labels, whatever the mixes: :math:`\tfrac12 \sqrt{(K - 1) / n}`.

    Why it holds: the examples are generated independently given their contexts (fixed: the evaluated
    ones), example i's posterior has expectation :math:`m_{ik}`, and :math:`m_k` is their mean, of which
    :math:`TV = \tfrac12 \sum_k |m_k - \pi_k|` is the distance (the TV of the data generated *for these
    contexts*). The triangle inequality gives :math:`\widehat{TV} \le TV + \tfrac12 \sum_k |\bar r_k - m_k|`;
    each posterior lies in ``[0, 1]``, so :math:`\mathrm{var}(r_{ik}) \le m_{ik}(1 - m_{ik})` and, as
    :math:`m (1 - m)` is concave, :math:`\mathrm{var}(\bar r_k) \le m_k (1 - m_k) / n`; by Cauchy–Schwarz
    :math:`\sum_k E|\bar r_k - m_k| \le \sqrt{K \sum_k m_k (1 - m_k) / n} \le \sqrt{(K - 1) / n}`.
    So a mean of plain TVs over seeds, less this bound, is at most the TV on average: what a conclusion
    that the TV is *above* a threshold may rest on (one-hot posteriors of a uniform mix come nearest to
    it, at about 0.8 of it). Where every seed evaluates the same contexts, that TV is the one of those
    contexts; how far it is from the TV over all contexts the bound does not say.
    """
    if num_labels < 2 or num_examples < 1:
        raise ValueError(f"the bias bound needs at least 2 labels and 1 example, got {num_labels} and {num_examples}")
    return 0.5 * float(np.sqrt((num_labels - 1) / num_examples))
