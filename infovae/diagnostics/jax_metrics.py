r"""The latent diagnostics in JAX: the on-device twins of :mod:`infovae.diagnostics.metrics`.

Every function is pure, takes JAX arrays of static shapes and works under :func:`jax.jit` and
:func:`jax.vmap`, so that an evaluation can compute the diagnostics of many trials at once, on the
device, with a leading trial axis. There is no data-dependent shape, no host callback and no
scikit-learn: counts are sums of one-hot vectors, k-means runs a fixed number of iterations and the
logistic-regression probe at most a fixed number, and a value or class that does not occur simply has
a zero count.
Randomness comes only from explicit :mod:`jax.random` keys. The arithmetic follows the input dtype
(float32 by default, float64 with ``jax_enable_x64``).

Latent distributions come as parameters, as in :mod:`~infovae.diagnostics.metrics`: discrete
``probs [n, K]``, Gaussian ``loc [n, d]`` and ``scale [n, d]``.
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax.scipy.special import entr, gammaln, logsumexp, rel_entr

from infovae.diagnostics.metrics import check_prior_rows
from infovae.diagnostics.two_sample import FEATURES, PERMUTATIONS

__all__ = [
    "active_units",
    "adjusted_mutual_information",
    "discrete_elbo_surgery",
    "discrete_recon_z_gain",
    "fit_probe",
    "fourier_features",
    "gaussian_elbo_surgery",
    "kmeans_codes",
    "label_posterior_coverage_tv",
    "latent_perplexity",
    "marginal_fit",
    "mmd_statistics",
    "normalised_mutual_information",
    "one_hot_features",
    "probe_accuracy",
    "relabellings",
    "sample_categorical",
    "sample_gaussian",
]

# Burda, Grosse & Salakhutdinov (2016); the same as metrics.ACTIVE_UNIT_THRESHOLD.
ACTIVE_UNIT_THRESHOLD = 0.01

# Newton's method with this line search reaches the probe's optimum to the precision of the arithmetic
# (gradient ~1e-8 in float32, ~1e-17 in float64) within 3 to 10 iterations on every problem of the sizes
# it is meant for that was tried (up to 64 features, 16 classes and 4000 examples: one-hot and Gaussian
# latents, separable classes, classes of 1 to 3 examples, pure noise): a few damped steps, then quadratic
# convergence. The fit stops there (fit_probe's tolerance: 3 to 11 iterations on the 216 problems of
# benchmarks/probe_convergence.py at the probes' penalty l2 = 1, a third to a fifth of the time of 16 fixed
# ones); 16 is a cap that leaves a margin (a penalty of 1e-4 can take 14 in float64).
PROBE_ITERATIONS = 16
# Step sizes 8 * 2^-k, k = 0..15 (8 down to 2^-12), are tried at once and the best is taken. That
# decreases the objective at least as much as backtracking from 1 by halving would (its steps are in the
# grid), which keeps damped Newton's convergence guarantee; steps above 1 matter because the logistic
# loss's curvature falls away from the start, so early Newton steps are too short (allowing them halves
# the iterations). The line search is most of the probe's time: a grid of 60 sizes 2^(1/2) apart, down to
# 1e-8, took 74 and 107 ms a fit where this one takes 30 and 56 (2000 examples, 4 classes, 8 one-hot
# features and 44 features). With this grid all 216 problems of benchmarks/probe_convergence.py (up to
# 64 features, 16 classes and 4000 examples; clusters, one-hot codes, noise, a class of 2%) reach the
# objective of 100 iterations to 5e-15 in float64.
_LINE_SEARCH_STEPS = 16
# On recent GPUs float32 products default to TensorFloat-32 (10-bit mantissas), which would stall Newton's
# method and move the k-means centres; the probe and k-means ask for full precision.
_EXACT = jax.lax.Precision.HIGHEST

# scikit-learn's KMeans stops at max_iter=300 or when the centres move by less than 1e-4 of the data's
# variance; on latents of these sizes Lloyd's iterations reach their fixed point in a few tens, and an
# iteration at the fixed point changes nothing, so 100 fixed iterations give the same partition.
KMEANS_ITERATIONS = 100


def _float_dtype(x):
    """The floating dtype of ``x`` (an integer array gets JAX's default float)."""
    return jnp.result_type(x, float)


@partial(jax.jit, static_argnames="num_samples")
def sample_categorical(key, probs, num_samples=None):
    """Draws ``z_i ~ Categorical(probs_i)`` for each example.

    :param probs: ``[n, K]``, each row a distribution (zeros allowed).
    :param num_samples: ``S`` draws per example, or ``None`` for one.
    :returns: int32 ``[n]``, or ``[S, n]`` when ``num_samples`` is given.
    """
    shape = probs.shape[:-1] if num_samples is None else (num_samples, *probs.shape[:-1])
    return jax.random.categorical(key, jnp.log(probs), shape=shape).astype(jnp.int32)


@partial(jax.jit, static_argnames="num_samples")
def sample_gaussian(key, loc, scale, num_samples=None):
    """Draws ``z_i = loc_i + scale_i * eps`` with ``eps ~ N(0, I)``, the reparametrised Gaussian draw.

    :param loc: ``[n, d]``; ``scale``: ``[n, d]`` standard deviations.
    :param num_samples: ``S`` draws per example, or ``None`` for one.
    :returns: ``[n, d]``, or ``[S, n, d]`` when ``num_samples`` is given.
    """
    shape = loc.shape if num_samples is None else (num_samples, *loc.shape)
    return loc + scale * jax.random.normal(key, shape, dtype=_float_dtype(loc))


@jax.jit
def latent_perplexity(probs):
    """``exp H(qbar)`` with ``qbar = mean_i q_i`` and ``H(p) = -sum_k p_k log p_k`` (``0 log 0 = 0``):
    how many of the K latent values the aggregate posterior effectively uses.

    :param probs: ``[n, K]``.
    :returns: a scalar in ``[1, K]``.
    """
    return jnp.exp(entr(probs.mean(0)).sum())


@jax.jit
def active_units(loc, threshold=ACTIVE_UNIT_THRESHOLD):
    """The number of dimensions j with ``Var_i(loc_ij) > threshold`` (variance over examples, ddof=0).

    :param loc: ``[n, d]`` posterior means.
    :returns: an int32 scalar in ``0..d``.
    """
    return (jnp.var(loc, axis=0) > threshold).sum().astype(jnp.int32)


@jax.jit
def discrete_elbo_surgery(q_probs, p_probs):
    """Exact ELBO surgery of a discrete latent over the n examples given (Hoffman & Johnson 2016):
    ``mean_i KL(q_i || pbar) = mi + marginal_kl`` with the aggregates ``qbar = mean_i q_i`` and
    ``pbar = mean_i p_i``, ``mi = mean_i KL(q_i || qbar)`` (at most ``log n``) and
    ``marginal_kl = KL(qbar || pbar)`` (``0 log 0 = 0``; a value that q gives mass and p none makes a KL
    infinite). Population mismatch is :func:`marginal_fit`'s.

    :param q_probs: ``[n, K]`` posteriors; ``p_probs``: ``[n, K]`` priors, or ``[1, K]``: one shared.
    :returns: ``{"mean_kl", "mi", "marginal_kl"}``, scalars.
    """
    check_prior_rows(q_probs.shape[0], p_probs.shape[0])  # shapes are static under jit
    q_mean, p_mean = q_probs.mean(0), p_probs.mean(0)
    mi = rel_entr(q_probs, q_mean).sum(-1).mean()
    marginal_kl = rel_entr(q_mean, p_mean).sum()
    return {"mean_kl": mi + marginal_kl, "mi": mi, "marginal_kl": marginal_kl}


@jax.jit
def discrete_recon_z_gain(q_probs, p_probs, log_lik):
    """How much the decoder uses a discrete z, exact, as metrics.discrete_recon_z_gain:
    ``mean_i sum_k (q_ik - p_ik) log p(y_i | x_i, z = k)``.

    :param q_probs: ``[n, K]``; ``p_probs``: ``[n, K]``; ``log_lik``: ``[K, n]``.
    :returns: a scalar (nats per example).
    """
    return jnp.mean(jnp.sum((q_probs - p_probs) * log_lik.T, axis=-1))


def _pairwise_gaussian_log_density(z, loc, scale):
    """``[i, j] = log N(z_i; loc_j, diag scale_j^2)``, ``[n, m]`` from ``z [n, d]`` and ``[m, d]`` parameters.

    The squared difference is formed directly rather than expanded into matrix products: the expansion
    cancels catastrophically in float32 for latents far from the origin relative to their scales.
    """
    standardised = (z[:, None, :] - loc[None]) / scale[None]
    d = z.shape[-1]
    return -0.5 * (standardised**2).sum(-1) - jnp.log(scale).sum(-1) - 0.5 * d * math.log(2 * math.pi)


@jax.jit
def gaussian_elbo_surgery(key, q_loc, q_scale, p_loc, p_scale):
    """Monte-Carlo ELBO surgery of a diagonal-Gaussian latent over the n examples given, as
    metrics.elbo_surgery.

    One draw ``z_i ~ q_i`` per example; the aggregates ``qbar(z) = mean_j q_j(z)`` and
    ``pbar(z) = mean_j p_j(z)`` are evaluated exactly as mixtures over the n examples, so
    ``mi = mean_i [log q_i(z_i) - log qbar(z_i)]`` (at most ``log n``) and
    ``marginal_kl = mean_i [log qbar(z_i) - log pbar(z_i)]``, the KL between the n-component mixtures,
    which grows as the posteriors narrow even where the population's aggregate matches the prior
    (:func:`marginal_fit` measures that). Time and memory are O(n^2 d).

    :param q_loc: ``[n, d]``; ``q_scale`` likewise; ``p_loc``, ``p_scale``: ``[n, d]``, or ``[1, d]``: one
        prior shared by all.
    :returns: ``{"mean_kl", "mi", "marginal_kl"}``, scalars, with ``mean_kl = mi + marginal_kl``.
    """
    check_prior_rows(q_loc.shape[0], p_loc.shape[0])  # shapes are static under jit
    # A shared prior as n identical components: its mixture is itself, whatever n.
    p_loc, p_scale = jnp.broadcast_to(p_loc, q_loc.shape), jnp.broadcast_to(p_scale, q_loc.shape)
    z = sample_gaussian(key, q_loc, q_scale)
    log_n = math.log(z.shape[0])
    log_q_cross = _pairwise_gaussian_log_density(z, q_loc, q_scale)
    log_q_agg = logsumexp(log_q_cross, axis=1) - log_n
    log_p_agg = logsumexp(_pairwise_gaussian_log_density(z, p_loc, p_scale), axis=1) - log_n
    mi = (jnp.diagonal(log_q_cross) - log_q_agg).mean()
    marginal_kl = (log_q_agg - log_p_agg).mean()
    return {"mean_kl": mi + marginal_kl, "mi": mi, "marginal_kl": marginal_kl}


@partial(jax.jit, static_argnames="num_values")
def one_hot_features(z, num_values):
    """Probe features of a discrete latent, as metrics.latent_features: ``z [...]`` integers in
    ``0..num_values-1`` to one-hot vectors ``[..., num_values]`` of the default float dtype."""
    return jax.nn.one_hot(z, num_values, dtype=_float_dtype(0.0))


def _standardise(features_fit, features_eval):
    """scikit-learn's StandardScaler fitted on ``features_fit`` and applied to both sets:
    ``(x - mean) / std`` per feature (ddof=0), with a feature that is constant on the fitting set only
    centred. Constancy is judged as sklearn's ``_is_constant_feature`` does, with the arithmetic's
    epsilon: a variance within the error bound of its two-pass computation counts as zero."""
    n = features_fit.shape[0]
    mean = features_fit.mean(0)
    var = jnp.mean((features_fit - mean) ** 2, axis=0)
    eps = jnp.finfo(var.dtype).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = jnp.where(constant, 1.0, jnp.sqrt(var))
    return (features_fit - mean) / scale, (features_eval - mean) / scale


def _log_mean_exp(log_p, p, v):
    """``log sum_k p_k exp(v_k)`` per row, where ``sum_k p_k = 1`` and ``sum_k p_k v_k = 0``.

    This is the part of a change of log-sum-exp beyond its first-order term, and the line search
    compares it with a first-order term that is itself tiny near the optimum; written as
    ``log1p(sum_k p_k (exp(v_k) - 1 - v_k))`` it keeps its relative precision for small v, where
    ``logsumexp`` would lose it all to rounding near zero. Rows with a large v take ``logsumexp``,
    which cannot overflow.
    """
    small = jnp.max(jnp.abs(v), axis=-1) < 1.0
    v_small = jnp.where(small[:, None], v, 0.0)
    series = jnp.log1p(jnp.sum(p * (jnp.expm1(v_small) - v_small), axis=-1))
    return jnp.where(small, series, logsumexp(log_p + v, axis=-1))


@partial(jax.jit, static_argnames=("num_classes", "iterations"))
def fit_probe(features, labels, num_classes, l2=1.0, iterations=PROBE_ITERATIONS, tolerance=None):
    r"""Multinomial logistic regression as scikit-learn's ``LogisticRegression(C=1/l2)`` fits it (lbfgs).

    Minimises, over ``W [F, K]`` and an unpenalised intercept ``b [K]``,

    .. math:: \frac1n \sum_i -\log \mathrm{softmax}(x_i W + b)_{y_i} + \frac{\lambda}{2n} \lVert W\rVert^2

    with ``lambda = l2`` and the softmax over the classes present in ``labels`` only (sklearn knows only
    the classes it saw; an absent class gets weights 0 and logit ``-inf``). With exactly two classes
    sklearn fits the binary model ``sigmoid(x w + c)`` with penalty ``l2/2 ||w||^2`` instead; that is
    the two-class softmax with ``W = [-w/2, w/2]``, i.e. with ``lambda = 2 l2``, which is used then.
    With one class the probe predicts it. The features are used as given (no standardisation).

    Solved by at most ``iterations`` damped Newton steps from zero on all ``(F+1) K`` parameters: the
    direction solves ``H d = -g`` with the exact Hessian, and the step size is the best of a fixed grid
    of sizes, all evaluated at once. The fit stops after a step that decreases the objective ``f`` by
    less than ``tolerance * |f|``: by default the dtype's machine epsilon, the resolution of ``f``'s
    value, below which a step only moves the weights by rounding noise (in float32 they would go on
    moving by about 1e-5 at every further step). With ``tolerance=0`` it stops only at a step that
    decreases nothing, which leaves the weights unchanged, so the fit is that of ``iterations`` steps.

    The loss is flat along u, the direction that adds one constant to every present class's intercept,
    so ``u u^T`` is added to the Hessian to make it invertible; the gradient is orthogonal to u, so the
    step is unchanged and the intercepts keep summing to zero, as sklearn's do.

    :param features: ``[n, F]``; ``labels``: int ``[n]`` in ``0..num_classes-1``.
    :param num_classes: K (static).
    :param l2: the penalty, ``1/C`` in sklearn's terms.
    :param iterations: the most Newton steps (static).
    :param tolerance: the relative decrease of the objective below which the fit stops (``None``: the
        dtype's machine epsilon).
    :returns: ``{"weights": [F, K], "bias": [K], "seen": bool [K], "iterations": int}`` (the Newton
        steps taken); ``weights`` and ``bias`` of an absent class are 0 and the caller masks its logits
        with ``seen``.
    """
    dtype = _float_dtype(features)
    n, num_features = features.shape
    targets = jax.nn.one_hot(labels, num_classes, dtype=dtype)  # [n, K]
    seen = targets.sum(0) > 0
    penalty = l2 * jnp.where(seen.sum() == 2, 2.0, 1.0) / n
    x1 = jnp.concatenate([features.astype(dtype), jnp.ones((n, 1), dtype)], axis=1)  # [n, F+1]
    size = (num_features + 1) * num_classes
    # theta [F+1, K] holds W above the intercepts b; the penalty's weight on each of its entries.
    penalised = jnp.zeros((num_features + 1, num_classes), dtype).at[:-1].set(penalty)
    shift = jnp.zeros((num_features + 1, num_classes), dtype).at[-1].set(seen).reshape(size)
    # An absent class's parameters touch neither the loss nor (at 0) the gradient; a unit curvature
    # keeps the Hessian invertible and their steps 0.
    absent = jnp.broadcast_to(~seen, (num_features + 1, num_classes)).reshape(size).astype(dtype)
    fixed_curvature = jnp.diag(penalised.reshape(size) + absent) + shift[:, None] * shift[None, :]
    steps = 2.0 ** (3 - jnp.arange(_LINE_SEARCH_STEPS, dtype=dtype))

    tolerance = jnp.finfo(dtype).eps if tolerance is None else tolerance

    def newton_step(state):
        count, theta, _ = state
        logits = jnp.where(seen, jnp.matmul(x1, theta, precision=_EXACT), -jnp.inf)
        log_p = jax.nn.log_softmax(logits, axis=-1)
        p = jnp.exp(log_p)
        # The labels' log-probabilities through the one-hot targets (never indexing by a label, nor
        # reading the -inf of an absent class).
        objective = -jnp.sum(jnp.where(targets > 0, log_p, 0.0)) / n + 0.5 * jnp.sum(penalised * theta**2)
        grad = jnp.matmul(x1.T, p - targets, precision=_EXACT) / n + penalised * theta
        # Hessian of the mean cross-entropy: (1/n) sum_i x_i x_i^T kron (diag p_i - p_i p_i^T).
        per_class = jnp.einsum("nf,ng,nk->fkg", x1, x1, p, precision=_EXACT) / n
        outer = (x1[:, :, None] * p[:, None, :]).reshape(n, size)
        diagonal = per_class[..., None] * jnp.eye(num_classes, dtype=dtype)[None, :, None, :]  # [F+1, K, F+1, K]
        hessian = diagonal.reshape(size, size) - jnp.matmul(outer.T, outer, precision=_EXACT) / n + fixed_curvature
        direction = jnp.linalg.solve(hessian, -grad.reshape(size)).reshape(grad.shape)
        slope = jnp.sum(grad * direction)
        # f(theta + t d) - f(theta) = t slope + mean_i R_i(t) + penalty t^2 |d_W|^2 / 2 exactly, where
        # R_i is the change of example i's log-sum-exp beyond first order (>= 0).
        dz = jnp.where(seen, jnp.matmul(x1, direction, precision=_EXACT), 0.0)
        centred = dz - jnp.sum(p * dz, axis=-1, keepdims=True)
        remainder = jax.vmap(lambda t: _log_mean_exp(log_p, p, t * centred).mean())(steps)
        curvature = jnp.sum(penalised * direction**2)
        decrease = steps * slope + remainder + 0.5 * steps**2 * curvature
        best = jnp.argmin(jnp.where(jnp.isnan(decrease), jnp.inf, decrease))
        # No decrease (only at the optimum, to rounding) leaves theta where it is.
        step = jnp.where(decrease[best] < 0, steps[best], 0.0)
        converged = decrease[best] >= -tolerance * jnp.abs(objective)
        return count + 1, theta + step * direction, converged

    def unfinished(state):
        count, _, converged = state
        return (count < iterations) & ~converged

    start = (0, jnp.zeros((num_features + 1, num_classes), dtype), jnp.array(False))
    count, theta, _ = jax.lax.while_loop(unfinished, newton_step, start)
    return {"weights": theta[:-1], "bias": theta[-1], "seen": seen, "iterations": count}


@partial(jax.jit, static_argnames=("num_classes", "iterations"))
def probe_accuracy(features_fit, labels_fit, features_eval, labels_eval, num_classes, l2=1.0, iterations=PROBE_ITERATIONS):
    """Accuracy on the eval set of a logistic-regression probe fitted to predict the label, as
    metrics.probe_accuracy: features standardised with the fitting set's mean and std, then
    :func:`fit_probe`; the prediction is ``argmax_k x W_k + b_k`` over the classes seen in fitting
    (ties to the lowest class, as sklearn).

    :param features_fit: ``[n, F]`` (e.g. :func:`one_hot_features` of discrete draws, or Gaussian
        draws); ``labels_fit``: int ``[n]`` in ``0..num_classes-1``.
    :param features_eval: ``[m, F]``; ``labels_eval``: int ``[m]``.
    :param num_classes: the number of possible labels (static).
    :returns: a scalar in ``[0, 1]``.
    """
    dtype = _float_dtype(features_fit)
    fit, evaluation = _standardise(features_fit.astype(dtype), features_eval.astype(dtype))
    probe = fit_probe(fit, labels_fit, num_classes, l2, iterations)
    scores = jnp.matmul(evaluation, probe["weights"], precision=_EXACT) + probe["bias"]
    logits = jnp.where(probe["seen"], scores, -jnp.inf)
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels_eval).astype(dtype)


def _squared_distances(points, centres):
    """``[i, k] = |points_i - centres_k|^2``, formed from differences (which, unlike the expanded square,
    do not cancel for points far from the origin)."""
    return jnp.sum((points[:, None, :] - centres[None]) ** 2, axis=-1)


def _kmeans_plus_plus(key, points, num_clusters):
    """Greedy k-means++ seeding as scikit-learn's: the first centre uniformly at random; each further
    one the best, by the resulting inertia, of ``2 + floor(log k)`` candidates drawn with probability
    proportional to the squared distance to the nearest centre so far (by inverse CDF, as sklearn
    draws them). Returns ``[k, d]`` centres."""
    n = points.shape[0]
    num_candidates = 2 + int(math.log(num_clusters))
    # One draw of every uniform up front: a random op per loop step would only add work.
    uniforms = jax.random.uniform(key, (num_clusters, num_candidates), dtype=points.dtype)
    first = points[jnp.minimum((uniforms[0, 0] * n).astype(jnp.int32), n - 1)]
    centres = jnp.broadcast_to(first, (num_clusters, points.shape[1]))
    nearest = jnp.sum((points - first) ** 2, axis=-1)

    def add_centre(c, state):
        centres, nearest = state
        cumulative = jnp.cumsum(nearest)
        candidates = jnp.minimum(jnp.searchsorted(cumulative, uniforms[c] * cumulative[-1]), n - 1)
        distances = jnp.minimum(nearest, _squared_distances(points, points[candidates]).T)  # [L, n]
        best = jnp.argmin(distances.sum(-1))
        return centres.at[c].set(points[candidates[best]]), distances[best]

    centres, _ = jax.lax.fori_loop(1, num_clusters, add_centre, (centres, nearest))
    return centres


def _lloyd(key, points, num_clusters, iterations):
    """k-means++ seeding and ``iterations`` Lloyd steps; returns ``(codes [n], inertia)``. A cluster
    that empties keeps its centre (sklearn moves it to a far point; with k-means++ seeding on the
    latents this is for, clusters do not empty)."""

    def step(_, centres):
        codes = jnp.argmin(_squared_distances(points, centres), axis=-1)
        members = jax.nn.one_hot(codes, num_clusters, dtype=points.dtype)  # [n, k]
        counts = members.sum(0)
        means = jnp.matmul(members.T, points, precision=_EXACT) / jnp.maximum(counts, 1.0)[:, None]
        return jnp.where(counts[:, None] > 0, means, centres)

    centres = jax.lax.fori_loop(0, iterations, step, _kmeans_plus_plus(key, points, num_clusters))
    distances = _squared_distances(points, centres)
    return jnp.argmin(distances, axis=-1).astype(jnp.int32), distances.min(-1).sum()


@partial(jax.jit, static_argnames=("num_clusters", "num_init", "iterations"))
def kmeans_codes(key, points, num_clusters, num_init=4, iterations=KMEANS_ITERATIONS):
    """k-means cluster of each point, as metrics.latent_codes for a Gaussian latent (sklearn's
    ``KMeans(n_clusters, n_init=4)``): ``num_init`` runs of greedy k-means++ seeding and
    ``iterations`` Lloyd steps, keeping the run of least inertia ``sum_i min_k |x_i - c_k|^2``.

    :param points: ``[n, d]`` (the posterior means); ``num_clusters``: k (static).
    :returns: int32 ``[n]`` in ``0..k-1``.
    """
    points = points.astype(_float_dtype(points))
    codes, inertia = jax.vmap(lambda k: _lloyd(k, points, num_clusters, iterations))(jax.random.split(key, num_init))
    return codes[jnp.argmin(inertia)]


@partial(jax.jit, static_argnames=("num_labels", "num_codes"))
def normalised_mutual_information(labels, codes, num_labels, num_codes):
    """sklearn's ``normalized_mutual_info_score(labels, codes)`` (arithmetic mean):
    ``I(l; c) / ((H(l) + H(c)) / 2)`` from the contingency counts ``N_lc`` (``a_l``, ``b_c`` its margins),
    ``I = sum_lc N_lc/n log(n N_lc / (a_l b_c))``. As sklearn: 1 when both have a single value, 0 when
    exactly one has (or the information is 0).

    :param labels: int ``[n]`` in ``0..num_labels-1``; ``codes``: int ``[n]`` in ``0..num_codes-1``.
    :returns: a scalar in ``[0, 1]``.
    """
    dtype = _float_dtype(0.0)
    counts = jax.nn.one_hot(labels, num_labels, dtype=dtype).T @ jax.nn.one_hot(codes, num_codes, dtype=dtype)
    n = jnp.asarray(labels.shape[0], dtype)
    a, b = counts.sum(1), counts.sum(0)
    # n N_lc and a_l b_c are products of exact integers, equal where the counts are independent, so
    # each rounds to the same number and the log is exactly 0: no rounding makes a zero MI positive.
    ratio = jnp.where(counts > 0, counts * n / (a[:, None] * b[None, :]), 1.0)
    mi = jnp.maximum(jnp.sum(counts / n * jnp.log(ratio)), 0.0)
    mean_entropy = 0.5 * (entr(a / n).sum() + entr(b / n).sum())
    single_label, single_code = (a > 0).sum() == 1, (b > 0).sum() == 1
    both, either = single_label & single_code, single_label | single_code
    nmi = jnp.where(either, 0.0, mi / jnp.where(both, 1.0, mean_entropy))
    return jnp.where(both, 1.0, nmi).astype(dtype)


# The expected mutual information sums over the possible cell counts in blocks of this many at once.
_COUNT_BLOCK = 64


def _expected_mutual_information(a, b, n):
    """``E[I(l; c)]`` under random codes with the margins ``a [L]`` and ``b [C]`` fixed (Vinh, Epps &
    Bailey 2010), as sklearn's ``expected_mutual_information``: each cell's count ``n_lc`` is
    hypergeometric, ``P(n_lc) = a! b! (n-a)! (n-b)! / (n! n_lc! (a-n_lc)! (b-n_lc)! (n-a-b+n_lc)!)``, and
    ``E[I] = sum_lc sum_{n_lc} n_lc/n log(n n_lc / (a_l b_c)) P(n_lc)`` over
    ``max(1, a+b-n) <= n_lc <= min(a, b)``; a value or code that does not occur adds nothing. ``n``
    (static) bounds every count: the sum runs over ``1..n`` in blocks, the factorials from one table."""
    dtype = a.dtype
    log_factorial = gammaln(jnp.arange(n + 1, dtype=dtype) + 1)
    lf = lambda k: log_factorial[jnp.clip(k, 0, n).astype(jnp.int32)]  # noqa: E731  (k integer-valued)
    a, b = a[:, None, None], b[None, :, None]
    fixed = lf(a) + lf(b) + lf(n - a) + lf(n - b) - log_factorial[n]
    log_ab = jnp.log(jnp.maximum(a, 1.0)) + jnp.log(jnp.maximum(b, 1.0))

    def block(i, total):
        counts = (1 + i * _COUNT_BLOCK + jnp.arange(_COUNT_BLOCK)).astype(dtype)  # [B]
        valid = (counts >= a + b - n) & (counts <= jnp.minimum(a, b))
        log_p = fixed - lf(counts) - lf(a - counts) - lf(b - counts) - lf(n - a - b + counts)
        terms = counts / n * (jnp.log(n * counts) - log_ab) * jnp.exp(jnp.where(valid, log_p, -jnp.inf))
        return total + jnp.sum(jnp.where(valid, terms, 0.0))

    return jax.lax.fori_loop(0, -(-n // _COUNT_BLOCK), block, jnp.zeros((), dtype))


@partial(jax.jit, static_argnames=("num_labels", "num_codes"))
def adjusted_mutual_information(labels, codes, num_labels, num_codes):
    """sklearn's ``adjusted_mutual_info_score(labels, codes)`` (arithmetic mean): the mutual information
    corrected for chance, ``(I - E[I]) / ((H(l) + H(c)) / 2 - E[I])``, with ``E[I]`` that of random codes
    of the same counts (:func:`_expected_mutual_information`). About 0 for codes that carry nothing about
    the label however many codes and few examples there are (where :func:`normalised_mutual_information`
    is well above 0), 1 for a one-to-one match. As sklearn: 1 when both have a single value, 0 when
    exactly one has; a denominator within float64's epsilon of 0 is held at that epsilon, with its sign.

    :param labels: int ``[n]`` in ``0..num_labels-1``; ``codes``: int ``[n]`` in ``0..num_codes-1``.
    :returns: a scalar, at most 1 (negative when codes agree with labels less than chance does).
    """
    dtype = _float_dtype(0.0)
    counts = jax.nn.one_hot(labels, num_labels, dtype=dtype).T @ jax.nn.one_hot(codes, num_codes, dtype=dtype)
    n = labels.shape[0]
    a, b = counts.sum(1), counts.sum(0)
    ratio = jnp.where(counts > 0, counts * n / (a[:, None] * b[None, :]), 1.0)
    mi = jnp.maximum(jnp.sum(counts / n * jnp.log(ratio)), 0.0)
    expected = _expected_mutual_information(a, b, n)
    denominator = 0.5 * (entr(a / n).sum() + entr(b / n).sum()) - expected
    eps = float(jnp.finfo(jnp.float64).eps)
    denominator = jnp.where(denominator < 0, jnp.minimum(denominator, -eps), jnp.maximum(denominator, eps))
    single_label, single_code = (a > 0).sum() == 1, (b > 0).sum() == 1
    ami = jnp.where(single_label | single_code, 0.0, (mi - expected) / denominator)
    return jnp.where(single_label & single_code, 1.0, ami).astype(dtype)


@jax.jit
def label_posterior_coverage_tv(label_log_prob_tables, label_mix, y_generated, label_log_prior=None):
    """Total variation between the true label mix and the label mix of generated data, as
    ``StrategyGenerator.coverage_tv``: each generated example counts by its posterior over labels,
    ``p(l | x_n, y_n) = softmax_l(log p(l | x_n) + sum_f T[n, l, f, y_nf])`` (a label of zero mix gets 0),
    and the result is ``0.5 sum_l |mean_n p(l | x_n, y_n) - mix_l|``.

    :param label_log_prob_tables: ``T [n, L, F, C]``, ``log p(y_f = c | x_n, label = l)``.
    :param label_mix: ``[L]``, the true label probabilities.
    :param y_generated: int ``[n, F]`` in ``0..C-1``, generated for the same x.
    :param label_log_prior: ``[n, L]``, ``log p(l | x_n)`` where x is informative about the label
        (the generator's ``label_log_prior(x)``); ``None``: ``log mix_l`` for every example.
    :returns: a scalar in ``[0, 1]``.
    """
    picked = jnp.take_along_axis(label_log_prob_tables, y_generated[:, None, :, None], axis=-1)[..., 0]
    log_prior = jnp.log(label_mix) if label_log_prior is None else label_log_prior
    posterior = jax.nn.softmax(log_prior + picked.sum(-1), axis=-1)  # [n, L]
    return 0.5 * jnp.abs(posterior.mean(0) - label_mix).sum()


@jax.jit
def fourier_features(z, normal, offsets):
    """``sqrt(2/D) cos(z W + c)`` with ``W = normal / h``, ``h^2`` the total variance of the rows of ``z``
    (a constant sample gets ``h = 1``), as two_sample.fourier_features.

    :param z: ``[N, d]`` pooled draws; ``normal``: ``[d, D]`` standard normal draws; ``offsets``: ``[D]``
        uniform draws on ``[0, 2 pi)``.
    :returns: ``[N, D]``.
    """
    total_variance = z.var(axis=0).sum()
    width = jnp.sqrt(jnp.where(total_variance > 0, total_variance, 1.0))
    return jnp.sqrt(2.0 / normal.shape[1]) * jnp.cos(jnp.matmul(z, normal / width, precision=_EXACT) + offsets)


@jax.jit
def mmd_statistics(features, membership):
    """The unbiased squared MMD of each labelling of the pooled sample, as two_sample.mmd_statistics:
    ``|mean_1 - mean_2|^2 - tr Cov_1 / (n - 1) - tr Cov_2 / (m - 1)`` of the centred features.

    :param features: ``[N, D]``; ``membership``: ``[L, N]`` zeros and ones, each row labelling the same
        number ``n`` of draws as the first sample.
    :returns: ``[L]``.
    """
    features = features - features.mean(0)
    membership = membership.astype(features.dtype)
    n = membership[0].sum()
    m = features.shape[0] - n
    norms = jnp.sum(features**2, axis=1)
    first_mean = jnp.matmul(membership, features, precision=_EXACT) / n
    second_mean = (features.sum(0) - n * first_mean) / m
    first_norms = jnp.matmul(membership, norms, precision=_EXACT)
    first_spread = first_norms / n - jnp.sum(first_mean**2, axis=1)
    second_spread = (norms.sum() - first_norms) / m - jnp.sum(second_mean**2, axis=1)
    return jnp.sum((first_mean - second_mean) ** 2, axis=1) - first_spread / (n - 1) - second_spread / (m - 1)


@partial(jax.jit, static_argnames=("num_first", "num_second", "permutations"))
def relabellings(key, num_first, num_second, permutations=PERMUTATIONS):
    """The observed labelling of a pooled sample (``num_first`` ones, then ``num_second`` zeros) and
    ``permutations`` random permutations of it, as two_sample.relabellings.

    :returns: ``[permutations + 1, num_first + num_second]`` zeros and ones of the default float dtype.
    """
    dtype = _float_dtype(0.0)
    observed = jnp.concatenate([jnp.ones(num_first, dtype), jnp.zeros(num_second, dtype)])
    permuted = jax.vmap(lambda k: jax.random.permutation(k, observed))(jax.random.split(key, permutations))
    return jnp.concatenate([observed[None], permuted])


@partial(jax.jit, static_argnames=("num_values", "permutations"))
def marginal_fit(key, posterior_draws, prior_draws, num_values=None, permutations=PERMUTATIONS, membership=None):
    """The two-sample test of the aggregate posterior against the aggregate prior, as
    two_sample.marginal_fit: the unbiased squared MMD with a Gaussian kernel of width the pooled draws'
    total variance (:data:`~infovae.diagnostics.two_sample.FEATURES` random Fourier features) or, for
    integer codes, the kernel ``[a = b]``; its p-value from ``permutations`` random relabellings.

    :param posterior_draws: ``[n, d]`` draws, or ``[n]`` integer codes in ``0..num_values-1``.
    :param prior_draws: ``[m, d]`` or ``[m]``, of the same kind.
    :param num_values: the number of codes (static) for integer draws; ``None`` for continuous ones.
    :param membership: the relabellings to use (:func:`relabellings` of n and m), instead of drawing
        them from ``key``. Any relabellings drawn independently of the draws make a valid test, so an
        evaluation can draw them once and use them for every trial and step: drawing them (sorting) is
        the costly part of the test on a CPU.
    :returns: ``{"statistic", "p_value"}``, scalars.
    """
    feature_key, permutation_key = jax.random.split(key)
    pooled = jnp.concatenate([posterior_draws, prior_draws])
    if num_values is not None:
        features = jax.nn.one_hot(pooled, num_values, dtype=_float_dtype(0.0))
    else:
        dtype = _float_dtype(pooled)
        normal_key, offset_key = jax.random.split(feature_key)
        normal = jax.random.normal(normal_key, (pooled.shape[1], FEATURES), dtype)
        offsets = jax.random.uniform(offset_key, (FEATURES,), dtype, 0.0, 2 * math.pi)
        features = fourier_features(pooled.astype(dtype), normal, offsets)
    if membership is None:
        membership = relabellings(permutation_key, posterior_draws.shape[0], prior_draws.shape[0], permutations)
    statistics = mmd_statistics(features, membership)
    p_value = (1 + jnp.sum(statistics[1:] >= statistics[0])) / statistics.shape[0]
    return {"statistic": statistics[0], "p_value": p_value.astype(features.dtype)}
