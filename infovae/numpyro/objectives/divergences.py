"""Divergences between distributions and between samples, as pure functions on JAX arrays.

The twin of :mod:`infovae.objectives.divergences`: the same functions, signatures and math. All are
differentiable and jit-compatible (array shapes are static; the median-heuristic bandwidth is held
constant for gradients).
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp, xlogy

from infovae.core.arguments import DEFAULT_KERNEL_SCALES, KERNELS, check_kernel

__all__ = [
    "DEFAULT_KERNEL_SCALES",
    "KERNELS",
    "aggregate_categorical_kl",
    "bias_corrected_categorical_kl",
    "categorical_kl",
    "jensen_shannon",
    "kernel_frequencies",
    "mmd",
    "moment_matched_kl",
    "monte_carlo_jensen_shannon",
    "random_feature_mmd",
]


def categorical_kl(q_probs, p_probs):
    r"""KL divergence between categorical distributions, :math:`\sum_c q_c \log(q_c / p_c)`.

    :param q_probs: probabilities ``[..., C]`` (rows sum to one).
    :param p_probs: probabilities ``[..., C]``, broadcastable against ``q_probs``.
    :returns: the divergence, shape ``[...]``. ``0 log 0 = 0``; ``q_c > 0 = p_c`` gives ``inf``.
    """
    return (_plogp(q_probs) - xlogy(q_probs, p_probs)).sum(-1)


def aggregate_categorical_kl(q_probs, p_probs):
    r"""KL between the aggregates of per-example categoricals, :math:`\mathrm{KL}(\bar q \,\|\, \bar p)` with
    :math:`\bar q = \frac1B \sum_i q_i`, :math:`\bar p = \frac1B \sum_i p_i`: the ``"kl"`` marginal.

    :param q_probs: posterior probabilities ``[B, K]``.
    :param p_probs: prior probabilities ``[B, K]``.
    :returns: scalar.
    """
    return categorical_kl(q_probs.mean(0), p_probs.mean(0))


def bias_corrected_categorical_kl(q_probs, p_probs):
    r"""The minibatch marginal KL less its first-order bias: the ``"kl_corrected"`` marginal.

    :math:`\mathrm{KL}(\bar q \,\|\, \bar p)` of minibatch means is biased upward as an estimate of the
    KL between the aggregates over all the data (the KL is convex). A second-order expansion gives the
    bias :math:`\frac{1}{2B} \sum_k \big( s^{qq}_k / \bar q_k + \bar q_k s^{pp}_k / \bar p_k^2
    - 2 s^{qp}_k / \bar p_k \big)`, with :math:`s` the per-example sample (co)variances of the
    probabilities (zero on the prior side for a fixed prior); this function returns the KL less that
    estimate. For a confident encoder (one-hot :math:`q_i`) and a fixed prior the bias is about
    :math:`(K-1)/(2B)`, which a large marginal weight makes worth more than using the latent at all.
    The result can be slightly negative.

    :param q_probs: posterior probabilities ``[B, K]``, ``B >= 2``.
    :param p_probs: prior probabilities ``[B, K]``.
    :returns: scalar.
    """
    B = q_probs.shape[0]
    if B < 2:
        raise ValueError(f"bias_corrected_categorical_kl needs at least 2 examples, got {B}")
    q_bar, p_bar = q_probs.mean(0), p_probs.mean(0)
    dq, dp = q_probs - q_bar, p_probs - p_bar
    s_qq, s_pp, s_qp = (dq * dq).sum(0) / (B - 1), (dp * dp).sum(0) / (B - 1), (dq * dp).sum(0) / (B - 1)
    tiny = jnp.finfo(q_probs.dtype).tiny
    p_safe = jnp.maximum(p_bar, tiny)
    bias = (s_qq / jnp.maximum(q_bar, tiny) + q_bar * s_pp / p_safe**2 - 2.0 * s_qp / p_safe).sum() / (2 * B)
    return categorical_kl(q_bar, p_bar) - bias


def _aggregate_gaussian(loc, scale):
    """Mean ``[d]`` and covariance ``[d, d]`` of the equal-weight mixture of diagonal Gaussians."""
    mean = loc.mean(0)
    centred = loc - mean
    # mean_i(diag(s_i^2) + m_i m_i^T) - m m^T, written with centred locations so that no large
    # terms cancel.
    cov = jnp.diag((scale**2).mean(0)) + centred.T @ centred / loc.shape[0]
    return mean, cov


def moment_matched_kl(loc, scale, prior_loc=None, prior_scale=None):
    r"""KL between the moment-matched Gaussians of two aggregates of diagonal Gaussians.

    The aggregate posterior :math:`q(z) = \frac1B\sum_i \mathcal N(m_i, \mathrm{diag}\,s_i^2)` is
    replaced by the Gaussian with its mean :math:`\bar m` and full covariance
    :math:`\frac1B\sum_i(\mathrm{diag}\,s_i^2 + m_i m_i^\top) - \bar m\bar m^\top`; likewise the
    aggregate prior (the standard normal when ``prior_loc`` and ``prior_scale`` are ``None``). The
    result is the analytic KL between the two Gaussians,
    :math:`\frac12(\mathrm{tr}\,\Sigma_p^{-1}\Sigma_q + (\mu_p-\mu_q)^\top\Sigma_p^{-1}(\mu_p-\mu_q) - d
    + \log|\Sigma_p| - \log|\Sigma_q|)`. It matches first and second moments only.

    :param loc: posterior means ``[B, d]``.
    :param scale: posterior standard deviations ``[B, d]``.
    :param prior_loc: prior means ``[B, d]`` (a conditional prior), or ``None``.
    :param prior_scale: prior standard deviations ``[B, d]``, or ``None``.
    :returns: 0-d array.
    """
    if (prior_loc is None) != (prior_scale is None):
        raise ValueError("moment_matched_kl: give both prior_loc and prior_scale, or neither")
    if loc.ndim != 2 or loc.shape != scale.shape:
        raise ValueError(f"moment_matched_kl: loc and scale must both be [B, d], got {tuple(loc.shape)} and {tuple(scale.shape)}")
    d = loc.shape[-1]
    mean_q, cov_q = _aggregate_gaussian(loc, scale)
    if prior_loc is None:
        mean_p, cov_p = jnp.zeros_like(mean_q), jnp.eye(d, dtype=loc.dtype)
    else:
        loc_p, scale_p = jnp.broadcast_arrays(prior_loc, prior_scale)
        mean_p, cov_p = _aggregate_gaussian(jnp.broadcast_to(loc_p, loc.shape), jnp.broadcast_to(scale_p, loc.shape))
    chol_q = jnp.linalg.cholesky(cov_q)
    chol_p = jnp.linalg.cholesky(cov_p)
    # tr(S_p^-1 S_q) = |L_p^-1 L_q|_F^2 and the Mahalanobis term through one triangular solve each.
    whitened = jax.scipy.linalg.solve_triangular(chol_p, chol_q, lower=True)
    diff = jax.scipy.linalg.solve_triangular(chol_p, (mean_p - mean_q)[:, None], lower=True)
    logdet_p = 2.0 * jnp.log(jnp.diagonal(chol_p)).sum()
    logdet_q = 2.0 * jnp.log(jnp.diagonal(chol_q)).sum()
    return 0.5 * ((whitened**2).sum() + (diff**2).sum() - d + logdet_p - logdet_q)


def _squared_distances(a, b):
    """Pairwise squared Euclidean distances ``[n, m]`` through one matrix product."""
    sq = (a * a).sum(-1)[:, None] + (b * b).sum(-1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(sq, 0.0)


def _kernel(sq_dist, kernel, widths):
    """Multi-scale kernel summed over ``widths`` (each already multiplied by the scale)."""
    total = 0.0
    for w in widths:
        total = total + (w / (w + sq_dist) if kernel == "imq" else jnp.exp(-sq_dist / w))
    return total


def _median_squared_distance(d_xx, d_yy, d_xy):
    n, m = d_xx.shape[0], d_yy.shape[0]
    iu_x, iu_y = jnp.triu_indices(n, k=1), jnp.triu_indices(m, k=1)
    pooled = jnp.concatenate([d_xx[iu_x], d_yy[iu_y], d_xy.reshape(-1)])
    median = jax.lax.stop_gradient(jnp.median(pooled))
    # All points identical: any width gives the same (zero) discrepancy; avoid 0/0. The floor stays a
    # normal number once multiplied by any kernel scale above the float's epsilon: subnormal widths are
    # flushed to 0 where denormals are flushed (XLA on CPUs, torch while the Pyro backend trains).
    info = jnp.finfo(median.dtype)
    return jnp.maximum(median, info.tiny / info.eps)


def mmd(x, y, kernel="imq", scales=DEFAULT_KERNEL_SCALES, bandwidth=None, num_features=None, rng_key=None):
    r"""Unbiased estimate (U-statistic) of the squared maximum mean discrepancy between samples.

    .. math::

        \frac{1}{n(n-1)}\sum_{i\ne j} k(x_i,x_j) + \frac{1}{m(m-1)}\sum_{i\ne j} k(y_i,y_j)
        - \frac{2}{nm}\sum_{i,j} k(x_i,y_j)

    It can be slightly negative when the two samples come from one distribution. Kernels on
    ``d``-dimensional points, summed over ``scales``: ``"imq"``
    :math:`\sum_s C_s / (C_s + |a-b|^2)`, :math:`C_s = 2 d s`; ``"rbf"``
    :math:`\sum_s \exp(-|a-b|^2 / (2 d s))`. ``bandwidth`` replaces the base width ``2 d``:
    ``"median"`` uses the median squared distance between distinct points of the pooled sample (held
    constant for gradients), a positive number is used as given.

    With ``num_features`` it is computed on random Fourier features drawn with ``rng_key``
    (:func:`kernel_frequencies`, :func:`random_feature_mmd`), in linear time; JAX has no global
    random stream, hence the key where the torch twin has none.

    :param x: sample ``[n, d]`` with ``n >= 2``.
    :param y: sample ``[m, d]`` with ``m >= 2``.
    :returns: 0-d array.
    """
    scales = check_kernel(kernel, scales, bandwidth)
    if x.ndim != 2 or y.ndim != 2 or x.shape[-1] != y.shape[-1]:
        raise ValueError(f"mmd: x and y must be [n, d] and [m, d] with the same d, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"mmd needs at least 2 draws on each side for the U-statistic, got n={n}, m={m}")
    if num_features is not None:
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive integer or None, got {num_features!r}")
        if rng_key is None:
            raise ValueError("mmd with num_features needs an rng_key to draw the random features")
        base = _base_width(x[:MEDIAN_POINTS], y[:MEDIAN_POINTS], bandwidth)
        frequencies = kernel_frequencies(kernel, [base * s for s in scales], x.shape[-1], num_features, rng_key, x.dtype)
        return random_feature_mmd(x, y, frequencies)
    d_xx, d_yy, d_xy = _squared_distances(x, x), _squared_distances(y, y), _squared_distances(x, y)
    base = _median_squared_distance(d_xx, d_yy, d_xy) if bandwidth == "median" else _base_width(x, y, bandwidth)
    widths = [base * s for s in scales]
    k_xx, k_yy, k_xy = _kernel(d_xx, kernel, widths), _kernel(d_yy, kernel, widths), _kernel(d_xy, kernel, widths)
    # The U-statistic leaves out the i == j terms, whatever their rounded distance.
    sum_xx = k_xx.sum() - jnp.trace(k_xx)
    sum_yy = k_yy.sum() - jnp.trace(k_yy)
    return sum_xx / float(n * (n - 1)) + sum_yy / float(m * (m - 1)) - 2.0 * k_xy.mean()


# Points of each sample that the median heuristic looks at when the statistic itself is not quadratic.
MEDIAN_POINTS = 512


def _base_width(x, y, bandwidth):
    if bandwidth is None:
        return 2.0 * x.shape[-1]
    if bandwidth == "median":
        return _median_squared_distance(_squared_distances(x, x), _squared_distances(y, y), _squared_distances(x, y))
    return float(bandwidth)


def kernel_frequencies(kernel, widths, dim, num_features, rng_key, dtype=None):
    """Random Fourier frequencies ``[S, dim, D]`` for the kernel at each width (see the Pyro twin)."""
    dtype = dtype or jnp.result_type(float)
    widths = jnp.asarray(widths, dtype=dtype).reshape(-1, 1, 1)
    normal_key, rate_key = jax.random.split(rng_key)
    eps = jax.random.normal(normal_key, (widths.shape[0], dim, num_features), dtype)
    if kernel == "imq":
        rate = jax.random.exponential(rate_key, (widths.shape[0], 1, num_features), dtype)
        return eps * jnp.sqrt(2.0 * rate / widths)
    return eps * jnp.sqrt(2.0 / widths)


def random_feature_mmd(x, y, frequencies):
    """The MMD U-statistic under the random-feature kernel (see the Pyro twin). Scalar."""
    S, _, D = frequencies.shape
    n, m = x.shape[0], y.shape[0]

    def features(a):
        proj = jnp.einsum("nd,sdk->nsk", a, frequencies)
        return jnp.concatenate([jnp.cos(proj), jnp.sin(proj)], axis=-1).reshape(a.shape[0], -1) / D**0.5

    phi_x, phi_y = features(x), features(y)
    sum_x, sum_y = phi_x.sum(0), phi_y.sum(0)
    xx = (sum_x @ sum_x - (phi_x * phi_x).sum()) / float(n * (n - 1))
    yy = (sum_y @ sum_y - (phi_y * phi_y).sum()) / float(m * (m - 1))
    return xx + yy - 2.0 * (sum_x @ sum_y) / float(n * m)


def _plogp(probs):
    """``p log p`` with ``0 log 0 = 0`` and a finite gradient at ``p = 0`` (see the Pyro twin)."""
    return probs * jnp.log(jnp.maximum(probs, jnp.finfo(probs.dtype).tiny))


def _entropy(probs):
    return -_plogp(probs).sum(-1)


def jensen_shannon(probs, weights, log_probs=None):
    r"""Generalised Jensen–Shannon divergence of K categorical distributions.

    :math:`\mathrm{JSD}_\pi(p_1..p_K) = H(\sum_k \pi_k p_k) - \sum_k \pi_k H(p_k)`, in nats, bounded by
    :math:`H(\pi) \le \log K`.

    :param probs: ``[K, ..., C]``: the K distributions over C classes, with any batch dims between.
    :param weights: mixture weights ``[K]``, or ``[K, ...]`` broadcastable against ``probs[..., 0]``
        (per-example weights); they must sum to one over K.
    :param log_probs: ``log(probs)``, when already known (see the Pyro twin).
    :returns: array ``[...]``.
    """
    if probs.ndim < 2:
        raise ValueError(f"jensen_shannon: probs must be [K, ..., C], got shape {tuple(probs.shape)}")
    if probs.shape[0] < 2:
        raise ValueError(f"jensen_shannon needs at least 2 distributions along dim 0, got {probs.shape[0]}")
    if weights.shape[0] != probs.shape[0]:
        raise ValueError(f"jensen_shannon: weights has {weights.shape[0]} entries along dim 0 but probs has {probs.shape[0]}")
    w = weights.reshape(weights.shape + (1,) * (probs.ndim - 1 - weights.ndim))
    mixture = (w[..., None] * probs).sum(0)
    entropies = _entropy(probs) if log_probs is None else -(probs * log_probs).sum(-1)
    return _entropy(mixture) - (w * entropies).sum(0)


def monte_carlo_jensen_shannon(cross_log_probs, weights):
    r"""Monte-Carlo Jensen–Shannon divergence from one draw of each of K distributions.

    With :math:`y_k \sim p_k` and ``cross_log_probs[k, j] =`` :math:`\log p_j(y_k)`,

    .. math:: \mathrm{JSD}_\pi \approx \sum_k \pi_k \Big(\log p_k(y_k) - \log\sum_j \pi_j p_j(y_k)\Big),

    an unbiased estimate of :math:`\sum_k \pi_k \mathrm{KL}(p_k \,\|\, \sum_j\pi_j p_j)`.

    :param cross_log_probs: ``[K, K, ...]``.
    :param weights: ``[K]`` or ``[K, ...]`` as in :func:`jensen_shannon`.
    :returns: array ``[...]``.
    """
    K = cross_log_probs.shape[0]
    if K < 2:
        raise ValueError(f"monte_carlo_jensen_shannon needs at least 2 distributions, got {K}")
    if cross_log_probs.shape[1] != K:
        raise ValueError(f"cross_log_probs must be [K, K, ...], got {tuple(cross_log_probs.shape)}")
    w = weights.reshape(weights.shape + (1,) * (cross_log_probs.ndim - 1 - weights.ndim))
    own = jnp.moveaxis(jnp.diagonal(cross_log_probs, axis1=0, axis2=1), -1, 0)
    log_mixture = logsumexp(jnp.log(w)[None] + cross_log_probs, axis=1)
    return (w * (own - log_mixture)).sum(0)
