"""Divergences between distributions and between samples, as pure functions on tensors.

Each function is the math of one term of :class:`~infovae.objectives.InfoVAE_ELBO`; the ELBO only
gathers their inputs from a model/guide trace. The NumPyro twin
(:mod:`infovae.numpyro.objectives.divergences`) has the same functions with the same signatures.

All functions are differentiable in every input except where stated (the median-heuristic bandwidth
is treated as a constant, as is usual).
"""

import torch

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
    return (_plogp(q_probs) - torch.xlogy(q_probs, p_probs)).sum(-1)


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
    tiny = torch.finfo(q_probs.dtype).tiny
    p_safe = p_bar.clamp_min(tiny)
    bias = (s_qq / q_bar.clamp_min(tiny) + q_bar * s_pp / p_safe**2 - 2.0 * s_qp / p_safe).sum() / (2 * B)
    return categorical_kl(q_bar, p_bar) - bias


def _aggregate_gaussian(loc, scale):
    """Mean ``[d]`` and covariance ``[d, d]`` of the equal-weight mixture of diagonal Gaussians."""
    mean = loc.mean(0)
    centred = loc - mean
    # mean_i(diag(s_i^2) + m_i m_i^T) - m m^T, written with centred locations so that no large
    # terms cancel.
    cov = torch.diag_embed((scale**2).mean(0)) + centred.T @ centred / loc.shape[0]
    return mean, cov


def moment_matched_kl(loc, scale, prior_loc=None, prior_scale=None):
    r"""KL between the moment-matched Gaussians of two aggregates of diagonal Gaussians.

    The aggregate posterior :math:`q(z) = \frac1B\sum_i \mathcal N(m_i, \mathrm{diag}\,s_i^2)` is
    replaced by the Gaussian with its mean :math:`\bar m` and full covariance
    :math:`\frac1B\sum_i(\mathrm{diag}\,s_i^2 + m_i m_i^\top) - \bar m\bar m^\top`; likewise the
    aggregate prior (the standard normal when ``prior_loc`` and ``prior_scale`` are ``None``). The
    result is the analytic KL between the two Gaussians. It matches first and second moments only.

    :param loc: posterior means ``[B, d]``.
    :param scale: posterior standard deviations ``[B, d]``.
    :param prior_loc: prior means ``[B, d]`` (a conditional prior), or ``None``.
    :param prior_scale: prior standard deviations ``[B, d]``, or ``None``.
    :returns: scalar tensor.
    """
    if (prior_loc is None) != (prior_scale is None):
        raise ValueError("moment_matched_kl: give both prior_loc and prior_scale, or neither")
    if loc.dim() != 2 or loc.shape != scale.shape:
        raise ValueError(f"moment_matched_kl: loc and scale must both be [B, d], got {tuple(loc.shape)} and {tuple(scale.shape)}")
    d = loc.shape[-1]
    mean_q, cov_q = _aggregate_gaussian(loc, scale)
    if prior_loc is None:
        mean_p = torch.zeros_like(mean_q)
        cov_p = torch.eye(d, dtype=loc.dtype, device=loc.device)
    else:
        loc_p, scale_p = torch.broadcast_tensors(prior_loc, prior_scale)
        mean_p, cov_p = _aggregate_gaussian(loc_p.expand_as(loc), scale_p.expand_as(loc))
    chol_q = torch.linalg.cholesky(cov_q)
    chol_p = torch.linalg.cholesky(cov_p)
    # tr(S_p^-1 S_q) = |L_p^-1 L_q|_F^2 and the Mahalanobis term through one triangular solve each.
    whitened = torch.linalg.solve_triangular(chol_p, chol_q, upper=False)
    diff = torch.linalg.solve_triangular(chol_p, (mean_p - mean_q).unsqueeze(-1), upper=False)
    logdet_p = 2.0 * chol_p.diagonal().log().sum()
    logdet_q = 2.0 * chol_q.diagonal().log().sum()
    return 0.5 * ((whitened**2).sum() + (diff**2).sum() - d + logdet_p - logdet_q)


def _squared_distances(a, b):
    """Pairwise squared Euclidean distances ``[n, m]`` through one matrix product."""
    sq = (a * a).sum(-1).unsqueeze(-1) + (b * b).sum(-1).unsqueeze(-2) - 2.0 * a @ b.T
    return sq.clamp_min(0.0)


def _kernel(sq_dist, kernel, widths):
    """Multi-scale kernel summed over ``widths`` (each already multiplied by the scale)."""
    total = 0.0
    for w in widths:
        if kernel == "imq":
            total = total + w / (w + sq_dist)
        else:
            total = total + torch.exp(-sq_dist / w)
    return total


def mmd(x, y, kernel="imq", scales=DEFAULT_KERNEL_SCALES, bandwidth=None, num_features=None):
    r"""Unbiased estimate (U-statistic) of the squared maximum mean discrepancy between samples.

    .. math::

        \frac{1}{n(n-1)}\sum_{i\ne j} k(x_i,x_j) + \frac{1}{m(m-1)}\sum_{i\ne j} k(y_i,y_j)
        - \frac{2}{nm}\sum_{i,j} k(x_i,y_j)

    The estimate can be slightly negative when the two samples come from one distribution; that is
    what unbiasedness means. Kernels on ``d``-dimensional points, summed over ``scales``:

    - ``"imq"``: :math:`\sum_s C_s / (C_s + |a-b|^2)`, :math:`C_s = 2 d s`;
    - ``"rbf"``: :math:`\sum_s \exp(-|a-b|^2 / (2 d s))`.

    ``bandwidth`` replaces the base width ``2 d``: ``"median"`` uses the median squared distance
    between distinct points of the pooled sample (held constant for gradients; with random features,
    of the first 512 points of each sample), a positive number is used as given.

    The exact statistic costs ``O((n + m)^2)``. With ``num_features`` it is computed on random Fourier
    features instead (:func:`kernel_frequencies`, :func:`random_feature_mmd`), ``O((n + m) D)``: still
    unbiased, over the data and the frequencies drawn (from torch's global random stream), with more
    variance. Use it for large batches, where the exact statistic dominates a training step.

    :param x: sample ``[n, d]`` with ``n >= 2``.
    :param y: sample ``[m, d]`` with ``m >= 2``.
    :param num_features: random features per kernel scale, or ``None`` for the exact statistic.
    :returns: scalar tensor.
    """
    scales = check_kernel(kernel, scales, bandwidth)
    if x.dim() != 2 or y.dim() != 2 or x.shape[-1] != y.shape[-1]:
        raise ValueError(f"mmd: x and y must be [n, d] and [m, d] with the same d, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"mmd needs at least 2 draws on each side for the U-statistic, got n={n}, m={m}")
    if num_features is not None:
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive integer or None, got {num_features!r}")
        base = _base_width(x[:MEDIAN_POINTS], y[:MEDIAN_POINTS], bandwidth)
        frequencies = kernel_frequencies(
            kernel, [base * s for s in scales], x.shape[-1], num_features, dtype=x.dtype, device=x.device
        )
        return random_feature_mmd(x, y, frequencies)
    d_xx = _squared_distances(x, x)
    d_yy = _squared_distances(y, y)
    d_xy = _squared_distances(x, y)
    base = _median_squared_distance(d_xx, d_yy, d_xy) if bandwidth == "median" else _base_width(x, y, bandwidth)
    widths = [base * s for s in scales]
    k_xx = _kernel(d_xx, kernel, widths)
    k_yy = _kernel(d_yy, kernel, widths)
    k_xy = _kernel(d_xy, kernel, widths)
    # The U-statistic leaves out the i == j terms, whatever their rounded distance.
    sum_xx = k_xx.sum() - k_xx.diagonal().sum()
    sum_yy = k_yy.sum() - k_yy.diagonal().sum()
    return sum_xx / float(n * (n - 1)) + sum_yy / float(m * (m - 1)) - 2.0 * k_xy.mean()


# Points of each sample that the median heuristic looks at when the statistic itself is not quadratic.
MEDIAN_POINTS = 512


def _base_width(x, y, bandwidth):
    if bandwidth is None:
        # A number, also while torch.jit.trace reads sizes as tensors: the kernel then divides by a
        # number, as it does eagerly (torch's number / tensor is another operation than tensor / tensor).
        return 2.0 * int(x.shape[-1])
    if bandwidth == "median":
        return _median_squared_distance(_squared_distances(x, x), _squared_distances(y, y), _squared_distances(x, y))
    return float(bandwidth)


def kernel_frequencies(kernel, widths, dim, num_features, generator=None, dtype=None, device=None):
    r"""Random Fourier frequencies ``[S, dim, D]`` for the kernel at each width ``w_s`` (the width
    already multiplied by the scale).

    By Bochner's theorem :math:`\exp(-|\delta|^2/w) = \mathbb E_\omega \cos(\omega^\top\delta)` with
    :math:`\omega \sim \mathcal N(0, (2/w) I)` (RBF); the IMQ kernel is a mixture of those,
    :math:`w/(w+|\delta|^2) = \int_0^\infty e^{-t} \exp(-t|\delta|^2/w)\,dt`, so its frequencies are
    :math:`\omega \sim \mathcal N(0, (2t/w) I)` with :math:`t \sim \mathrm{Exp}(1)`.
    """
    # Stacked: the median width is a tensor, and as_tensor of a list would be a constant in a trace.
    widths = torch.stack([torch.as_tensor(w, dtype=dtype, device=device) for w in widths]).reshape(-1, 1, 1)
    eps = torch.randn((widths.shape[0], dim, num_features), generator=generator, dtype=dtype, device=device)
    if kernel == "imq":
        u = torch.rand((widths.shape[0], 1, num_features), generator=generator, dtype=dtype, device=device)
        rate = -torch.log1p(-u)  # Exp(1), from one uniform draw
        return eps * torch.sqrt(2.0 * rate / widths)
    return eps * torch.sqrt(2.0 / widths)


def random_feature_mmd(x, y, frequencies):
    r"""The MMD U-statistic under the random-feature kernel :math:`\tilde k(a,b) = \sum_s \frac1D
    \sum_j \cos(\omega_{sj}^\top(a-b))`, in ``O((n + m) S D)``; unbiased for the kernel whose
    frequencies were drawn. ``frequencies`` as :func:`kernel_frequencies` returns them."""
    S, _, D = frequencies.shape
    n, m = x.shape[0], y.shape[0]

    def features(a):
        proj = torch.einsum("nd,sdk->nsk", a, frequencies)
        return torch.cat([proj.cos(), proj.sin()], dim=-1).reshape(a.shape[0], -1) / D**0.5

    phi_x, phi_y = features(x), features(y)
    sum_x, sum_y = phi_x.sum(0), phi_y.sum(0)
    # sum_{i != j} k~(x_i, x_j) = |sum_i phi(x_i)|^2 - sum_i |phi(x_i)|^2
    xx = (sum_x @ sum_x - (phi_x * phi_x).sum()) / float(n * (n - 1))
    yy = (sum_y @ sum_y - (phi_y * phi_y).sum()) / float(m * (m - 1))
    return xx + yy - 2.0 * (sum_x @ sum_y) / float(n * m)


def _median_squared_distance(d_xx, d_yy, d_xy):
    # Detached rather than computed under no_grad: torch.jit.trace records a detach, not a grad mode.
    d_xx, d_yy, d_xy = d_xx.detach(), d_yy.detach(), d_xy.detach()
    n, m = d_xx.shape[0], d_yy.shape[0]
    iu_x = torch.triu_indices(n, n, offset=1, device=d_xx.device)
    iu_y = torch.triu_indices(m, m, offset=1, device=d_yy.device)
    pooled = torch.cat([d_xx[iu_x[0], iu_x[1]], d_yy[iu_y[0], iu_y[1]], d_xy.reshape(-1)])
    # The usual median (the mean of the two middle values for an even count), as numpy's.
    k = (pooled.numel() + 1) // 2
    median = pooled.kthvalue(k).values
    if pooled.numel() % 2 == 0:
        median = 0.5 * (median + pooled.kthvalue(k + 1).values)
    # All points identical: any width gives the same (zero) discrepancy; avoid 0/0. The floor stays a
    # normal number once multiplied by any kernel scale above the float's epsilon: subnormal widths are
    # flushed to 0 where denormals are flushed (XLA on CPUs, torch while the Pyro backend trains).
    info = torch.finfo(median.dtype)
    return median.clamp_min(info.tiny / info.eps)


def _plogp(probs):
    """``p log p`` with ``0 log 0 = 0`` and a finite gradient at ``p = 0``: a saturated softmax or
    sigmoid reaches exact zeros, where ``xlogy``'s gradient is infinite and turns into NaN."""
    return probs * torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))


def _entropy(probs):
    return -_plogp(probs).sum(-1)


def jensen_shannon(probs, weights, log_probs=None):
    r"""Generalised Jensen–Shannon divergence of K categorical distributions.

    :math:`\mathrm{JSD}_\pi(p_1..p_K) = H(\sum_k \pi_k p_k) - \sum_k \pi_k H(p_k)`, in nats, bounded by
    :math:`H(\pi) \le \log K`.

    :param probs: ``[K, ..., C]``: the K distributions over C classes, with any batch dims between.
    :param weights: mixture weights ``[K]``, or ``[K, ...]`` broadcastable against ``probs[..., 0]``
        (per-example weights); they must sum to one over K.
    :param log_probs: ``log(probs)``, when already known (a distribution's normalised logits): the
        K entropies then need no logarithm of their own, and are exact where ``probs`` underflows.
    :returns: tensor ``[...]``.
    """
    if probs.dim() < 2:
        raise ValueError(f"jensen_shannon: probs must be [K, ..., C], got shape {tuple(probs.shape)}")
    if probs.shape[0] < 2:
        raise ValueError(f"jensen_shannon needs at least 2 distributions along dim 0, got {probs.shape[0]}")
    if weights.shape[0] != probs.shape[0]:
        raise ValueError(f"jensen_shannon: weights has {weights.shape[0]} entries along dim 0 but probs has {probs.shape[0]}")
    w = weights.reshape(weights.shape + (1,) * (probs.dim() - 1 - weights.dim()))
    mixture = (w.unsqueeze(-1) * probs).sum(0)
    entropies = _entropy(probs) if log_probs is None else -(probs * log_probs).sum(-1)
    return _entropy(mixture) - (w * entropies).sum(0)


def monte_carlo_jensen_shannon(cross_log_probs, weights):
    r"""Monte-Carlo Jensen–Shannon divergence from one draw of each of K distributions.

    With :math:`y_k \sim p_k` and ``cross_log_probs[k, j] =`` :math:`\log p_j(y_k)`,

    .. math:: \mathrm{JSD}_\pi \approx \sum_k \pi_k \Big(\log p_k(y_k) - \log\sum_j \pi_j p_j(y_k)\Big),

    an unbiased estimate of :math:`\sum_k \pi_k \mathrm{KL}(p_k \,\|\, \sum_j\pi_j p_j)`.

    :param cross_log_probs: ``[K, K, ...]``.
    :param weights: ``[K]`` or ``[K, ...]`` as in :func:`jensen_shannon`.
    :returns: tensor ``[...]``.
    """
    K = cross_log_probs.shape[0]
    if K < 2:
        raise ValueError(f"monte_carlo_jensen_shannon needs at least 2 distributions, got {K}")
    if cross_log_probs.shape[1] != K:
        raise ValueError(f"cross_log_probs must be [K, K, ...], got {tuple(cross_log_probs.shape)}")
    w = weights.reshape(weights.shape + (1,) * (cross_log_probs.dim() - 1 - weights.dim()))
    own = torch.diagonal(cross_log_probs, dim1=0, dim2=1).movedim(-1, 0)
    log_mixture = torch.logsumexp(w.log().unsqueeze(0) + cross_log_probs, dim=1)
    return (w * (own - log_mixture)).sum(0)
