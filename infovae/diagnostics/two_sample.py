r"""Does the aggregate posterior match the prior? A two-sample test between draws of each, in NumPy (the
JAX twin is :func:`infovae.diagnostics.jax_metrics.marginal_fit`).

One draw ``z_i ~ q(z | x_i, y_i)`` per example of an i.i.d. sample of the data is a draw from the
population's aggregate posterior ``q(z) = E_{x,y} q(z | x, y)``, and one draw ``z'_j ~ p(z | x_j)`` per
example of another such sample a draw from the aggregate prior ``p(z) = E_x p(z | x)``. Comparing the two samples measures how
far ``q(z)`` is from ``p(z)`` without confusing mismatch with posterior width: posteriors that narrow
while their mixture still matches the prior leave the test where it was, where the KL between the
n-component mixtures over the examples (``marginal_kl`` of the ELBO surgery) grows without bound.

The statistic is the squared maximum mean discrepancy with a characteristic kernel (Gretton et al. 2012),
in its unbiased form

.. math:: \mathrm{MMD}^2 = \frac{\sum_{i\ne j} k(z_i, z_j)}{n(n-1)} + \frac{\sum_{i\ne j} k(z'_i, z'_j)}{m(m-1)}
          - \frac{2 \sum_{i,j} k(z_i, z'_j)}{nm},

0 on average when the distributions match (so it can be negative) and positive when they differ. For
continuous draws the kernel is Gaussian, ``k(a, b) = exp(-|a - b|^2 / (2 h^2))`` with ``h^2`` the pooled
draws' total variance (half their mean squared distance), represented by :data:`FEATURES` random Fourier
features ``sqrt(2/D) cos(a W + c)``, ``W ~ N(0, I / h^2)``, ``c ~ U(0, 2 pi)`` (Rahimi & Recht 2007: a
random kernel of the same expectation); for integer codes it is ``k(a, b) = [a = b]``, so that the
statistic is the squared distance between the two samples' frequency vectors, less its noise. The
p-value is that of a permutation test with :data:`PERMUTATIONS` random relabellings of the pooled draws:
exact under exchangeability, so uniform when the two samples come from one distribution and are
independent. They must come from different examples when the prior depends on x: the draws ``z_i`` and
``z'_i`` of one example are then positively dependent, which biases the statistic below zero and takes
most of the test's power (an evaluation draws them from two disjoint halves of its examples:
:func:`infovae.diagnostics.evaluate.matching_halves`). Measured (``tests/diagnostics/test_two_sample.py``, 1000 draws of
dimension 8): a population aggregate exactly N(0, I) made of posteriors of scale 0.3, 0.1 or 0.03 is
called mismatched at the nominal rate, a mean shift of 0.5 in one dimension is found every time and a
variance of 2 in one dimension about 98% of the time.
"""

import numpy as np

from infovae.errors import UserInputError

__all__ = ["FEATURES", "PERMUTATIONS", "fourier_features", "marginal_fit", "mmd_statistics", "relabellings"]

# Random Fourier features of the Gaussian kernel: enough that the test's power is that of the exact
# kernel to within a few per cent at the sizes it is used for (64 features already lose some).
FEATURES = 128
# Relabellings of the permutation test: p-values resolve 1 / (PERMUTATIONS + 1).
PERMUTATIONS = 200


def fourier_features(z, normal, offsets):
    """``sqrt(2/D) cos(z W + c)`` with ``W = normal / h``, ``h^2`` the total variance of the rows of ``z``
    (the pooled draws; a constant sample gets ``h = 1``).

    :param z: ``[N, d]`` pooled draws; ``normal``: ``[d, D]`` standard normal draws; ``offsets``: ``[D]``
        uniform draws on ``[0, 2 pi)``.
    :returns: ``[N, D]``.
    """
    total_variance = z.var(axis=0).sum()
    width = np.sqrt(total_variance) if total_variance > 0 else 1.0
    return np.sqrt(2.0 / normal.shape[1]) * np.cos(z @ (normal / width) + offsets)


def mmd_statistics(features, membership):
    """The unbiased squared MMD of each labelling of the pooled sample, written as
    ``|mean_1 - mean_2|^2 - tr Cov_1 / (n - 1) - tr Cov_2 / (m - 1)`` of the features (covariances with
    divisor n), which equals the sum over pairs and cancels nothing large in float32.

    :param features: ``[N, D]``, the kernel's features of the pooled draws (``k(a, b) = phi(a) . phi(b)``).
    :param membership: ``[L, N]`` zeros and ones: one row per labelling, 1 for the first sample; every
        row labels the same number of draws ``n`` first (``2 <= n <= N - 2``).
    :returns: ``[L]``.
    """
    features = features - features.mean(0)
    n = membership[0].sum()
    m = features.shape[0] - n
    norms = np.sum(features**2, axis=1)
    first_mean = membership @ features / n
    second_mean = (features.sum(0) - n * first_mean) / m
    first_spread = (membership @ norms) / n - np.sum(first_mean**2, axis=1)
    second_spread = (norms.sum() - membership @ norms) / m - np.sum(second_mean**2, axis=1)
    return np.sum((first_mean - second_mean) ** 2, axis=1) - first_spread / (n - 1) - second_spread / (m - 1)


def relabellings(rng, num_first, num_second, permutations=PERMUTATIONS):
    """The observed labelling of a pooled sample (``num_first`` ones, then ``num_second`` zeros) and
    ``permutations`` random permutations of it: ``[permutations + 1, num_first + num_second]``."""
    observed = np.r_[np.ones(num_first), np.zeros(num_second)]
    return np.vstack([observed, rng.permuted(np.tile(observed, (permutations, 1)), axis=1)])


def _as_draws(name, draws):
    draws = np.asarray(draws)
    if np.issubdtype(draws.dtype, np.integer):
        if draws.ndim != 1 or (draws < 0).any():
            raise UserInputError(f"{name}: integer codes must be 1-D [n] and non-negative, got shape {draws.shape}")
    elif draws.ndim != 2 or not np.isfinite(draws).all():
        raise UserInputError(f"{name}: continuous draws must be 2-D [n, d] and finite, got shape {draws.shape}")
    if len(draws) < 2:
        raise UserInputError(f"{name}: a two-sample test needs at least 2 draws, got {len(draws)}")
    return draws


def marginal_fit(posterior_draws, prior_draws, rng=None, permutations=PERMUTATIONS):
    """A two-sample test of the aggregate posterior against the aggregate prior (see the module).

    :param posterior_draws: one draw of ``q(z | x_i, y_i)`` per example: ``[n, d]`` floats, or ``[n]``
        integer codes of a discrete latent.
    :param prior_draws: one draw of ``p(z | x_j)`` per example, of the same kind (``[m, d]`` or ``[m]``),
        of other examples than the posterior's where the prior depends on x (see the module).
    :param rng: a :class:`numpy.random.Generator` or seed for the random features and relabellings.
    :param permutations: relabellings of the permutation test.
    :returns: ``{"statistic", "p_value"}``: the unbiased squared MMD (0 on average when the aggregates
        match; in the kernel's units, at most 2) and the permutation p-value (small when they differ).
    """
    posterior, prior = _as_draws("posterior_draws", posterior_draws), _as_draws("prior_draws", prior_draws)
    if np.issubdtype(posterior.dtype, np.integer) != np.issubdtype(prior.dtype, np.integer) or posterior.ndim != prior.ndim:
        raise UserInputError("posterior_draws and prior_draws must be of one kind: both [n, d] draws or both [n] codes")
    if posterior.ndim == 2 and posterior.shape[1] != prior.shape[1]:
        raise UserInputError(f"posterior draws have dimension {posterior.shape[1]}, prior draws {prior.shape[1]}")
    rng = np.random.default_rng(rng)
    pooled = np.concatenate([posterior, prior])
    if pooled.ndim == 1:
        features = np.eye(pooled.max() + 1)[pooled]
    else:
        d = pooled.shape[1]
        features = fourier_features(pooled, rng.standard_normal((d, FEATURES)), rng.uniform(0.0, 2 * np.pi, FEATURES))
    statistics = mmd_statistics(features, relabellings(rng, len(posterior), len(prior), permutations))
    p_value = (1 + np.sum(statistics[1:] >= statistics[0])) / (permutations + 1)
    return {"statistic": float(statistics[0]), "p_value": float(p_value)}
