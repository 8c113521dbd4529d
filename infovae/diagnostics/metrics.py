"""What happened to the latent, as numbers: pure functions on numpy arrays.

Latent distributions are given by their parameters, ``CategoricalLatent([n, K])`` (discrete) or
``GaussianLatent([n, d], [n, d])`` (Gaussian), as the backends return them.

SciPy's special functions are imported by the functions that use them, not here: the NumPyro backend's
runs read a few of these functions and would otherwise import ``scipy.special`` (0.1 – 0.2 s) for nothing.
"""

import numpy as np

from infovae.core.latents import CategoricalLatent
from infovae.errors import UserInputError

__all__ = [
    "CONTEXT_PROBE_FEATURES",
    "active_units",
    "adjusted_mutual_information",
    "context_probe_accuracy",
    "discrete_recon_z_gain",
    "check_prior_rows",
    "elbo_surgery",
    "expected_bayes_accuracy",
    "is_discrete",
    "label_count",
    "label_posterior_coverage_tv",
    "latent_codes",
    "latent_features",
    "latent_perplexity",
    "normalised_mutual_information",
    "probe_accuracy",
    "sample_latents",
]

# A dimension counts as used when its posterior mean varies across examples by more than this
# (Burda, Grosse & Salakhutdinov 2016).
ACTIVE_UNIT_THRESHOLD = 0.01
# Conditions x wider than this are not probed (images, say): the on-device probe solves a Newton system of
# (features x classes)^2, and a linear probe of raw pixels says little about what z adds.
CONTEXT_PROBE_FEATURES = 64


def is_discrete(params):
    return isinstance(params, CategoricalLatent)


def sample_latents(params, rng, num_samples=None):
    """Draws ``z ~ q`` per example: integers ``[*S, n]`` (discrete) or vectors ``[*S, n, d]``."""
    shape = () if num_samples is None else (num_samples,)
    if is_discrete(params):
        probs = params.probs
        cdf = np.cumsum(probs, axis=-1)
        u = rng.random(shape + (probs.shape[0], 1))
        # The last value catches draws above a cdf that rounds to just under one.
        return np.minimum((u > cdf).sum(-1), probs.shape[-1] - 1)
    eps = rng.standard_normal(shape + params.loc.shape)
    return params.loc + params.scale * eps


def latent_features(z, num_values=None):
    """Classifier features of latent draws: one-hot for a discrete latent, the vector otherwise."""
    if num_values is not None:
        return np.eye(num_values)[z]
    return z


def probe_accuracy(z_fit, labels_fit, z_eval, labels_eval, num_values=None):
    """Accuracy on ``z_eval`` of a logistic-regression probe trained on ``z_fit`` to predict the label.

    The probe sees *sampled* latents, so it measures the label information that survives the
    posterior's noise, not that of the encoder's deterministic output.
    """
    # scikit-learn is imported where it is used: it takes seconds, and the NumPyro backend never needs it.
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(latent_features(z_fit, num_values))
    probe = LogisticRegression(max_iter=2000)
    if len(np.unique(labels_fit)) < 2:
        # One class in the fitting set: the probe can only predict it.
        return float(np.mean(labels_eval == labels_fit[0]))
    probe.fit(scaler.transform(latent_features(z_fit, num_values)), labels_fit)
    return float(probe.score(scaler.transform(latent_features(z_eval, num_values)), labels_eval))


def context_probe_accuracy(x_fit, labels_fit, x_eval, labels_eval, z_fit=None, z_eval=None, num_values=None):
    """Accuracy of a logistic-regression label probe from the condition ``x`` alone, or from ``x`` and
    latent draws ``z`` side by side (features concatenated, then standardised).

    The probe from ``(x, z)`` less the probe from ``x`` is the label information that z carries *beyond*
    x, as far as a linear probe reads it: where the condition reveals the label, a latent can carry the
    label (a high :func:`probe_accuracy`) and still add nothing. It is biased below 0: where z is
    independent of the label given x, the probe from ``(x, z)`` fits the weights of z's features too, from
    the same finite examples and under the same L2 penalty, and those weights fitted to noise cost it a
    little held-out accuracy (measured: -0.002 ± 0.001 with 8 noise dimensions and 2000 examples on
    ``strategies`` at ``context_shift`` 0.3; more with more dimensions or fewer examples). So a small
    negative difference says z adds nothing, not that it hurts; read it with its interval over seeds.
    (For the ``strategies`` data the log-odds of the label given x are linear in x, so the probe from x
    alone is the Bayes classifier's form.)

    :param x_fit: ``[n, c]`` conditions the probe is fitted on; ``x_eval``: ``[m, c]``.
    :param z_fit: ``None``, or latent draws for the same examples (integers ``[n]`` of a discrete latent
        with ``num_values`` values, or vectors ``[n, d]``); ``z_eval`` likewise.
    """
    if (z_fit is None) != (z_eval is None):
        raise ValueError("give latent draws for both the fitting and the evaluation examples, or for neither")
    if z_fit is not None:
        x_fit = np.concatenate([x_fit, latent_features(z_fit, num_values)], axis=1)
        x_eval = np.concatenate([x_eval, latent_features(z_eval, num_values)], axis=1)
    return probe_accuracy(x_fit, labels_fit, x_eval, labels_eval)


def discrete_recon_z_gain(q_probs, p_probs, log_lik):
    """How much the decoder uses a discrete z: ``mean_i [E_{q(z|x_i,y_i)} - E_{p(z|x_i)}] log p(y_i | x_i, z)``,
    exact (the sum over the K values). 0 where the decoder ignores z (``log_lik`` the same for every value)
    or where the posterior is the prior; positive where z drawn from q explains y better than z drawn
    from the prior.

    :param q_probs: ``[n, K]``; ``p_probs``: ``[n, K]``; ``log_lik``: ``[K, n]``, ``log p(y_i | x_i, z = k)``.
    """
    return float(np.mean(np.sum((q_probs - p_probs) * log_lik.T, axis=-1)))


def _label_posterior(label_log_prob_tables, label_mix, y, label_log_prior, name):
    """``p(l | x_n, y_n) = softmax_l(sum_f T[n, l, f, y_nf] + log p(l | x_n))`` of each example, ``[n, L]``
    (a label of zero mix gets 0), with ``y`` checked: ``[n, F]`` integer classes of the tables."""
    from scipy.special import softmax

    n, _, num_factors, num_classes = label_log_prob_tables.shape
    y = np.asarray(y)
    if y.shape != (n, num_factors) or (not np.issubdtype(y.dtype, np.integer) and (y != np.round(y)).any()):
        raise UserInputError(f"{name} must hold {n} x {num_factors} integer classes, got shape {y.shape} of {y.dtype}")
    y = y.astype(np.int64)
    if (y < 0).any() or (y >= num_classes).any():
        raise UserInputError(f"{name} must hold classes in 0..{num_classes - 1}")
    picked = np.take_along_axis(label_log_prob_tables, y[:, None, :, None], axis=-1)[..., 0]
    if label_log_prior is None:
        with np.errstate(divide="ignore"):  # a label of zero mix gets log 0 = -inf, which softmax handles
            label_log_prior = np.log(label_mix)
    return softmax(picked.sum(-1) + label_log_prior, axis=-1)


def label_posterior_coverage_tv(label_log_prob_tables, label_mix, y_generated, label_log_prior=None):
    """Total variation between the true label mix and the label mix of generated data, from the
    generator's tables (computed once per held-out set): ``generator.coverage_tv(x, y_generated)``
    without recomputing the tables of ``x``. Each generated example counts by its posterior over labels,
    ``p(l | x_n, y_n) = softmax_l(sum_f T[n, l, f, y_nf] + log p(l | x_n))``, and the result is
    ``0.5 sum_l |mean_n p(l | x_n, y_n) - mix_l|``.

    :param label_log_prob_tables: ``T [n, L, F, C]``, ``log p(y_f = c | x_n, label = l)`` (the
        generator's ``label_log_prob_tables(x)``).
    :param label_mix: ``[L]``, the true label probabilities.
    :param y_generated: int ``[n, F]`` in ``0..C-1``, generated for the same x (anything else is a
        :class:`~infovae.errors.UserInputError`).
    :param label_log_prior: ``[n, L]``, ``log p(l | x_n)`` (the generator's ``label_log_prior(x)``, where
        it has one); ``None``: ``log mix_l`` for every example.
    """
    posterior = _label_posterior(label_log_prob_tables, label_mix, y_generated, label_log_prior, "y_generated")
    return float(0.5 * np.abs(posterior.mean(0) - label_mix).sum())


def expected_bayes_accuracy(label_log_prob_tables, label_mix, y, label_log_prior=None):
    """The Bayes classifier's expected accuracy on examples ``(x_n, y_n)``, ``mean_n max_l p(l | x_n, y_n)``
    (the ceiling of any probe of the label), from the generator's tables of the x (computed once per
    held-out set): ``generator.expected_bayes_accuracy(x, y)`` without computing them again. The
    posterior and the parameters are :func:`label_posterior_coverage_tv`'s, ``y`` the examples' own
    targets."""
    return float(np.mean(_label_posterior(label_log_prob_tables, label_mix, y, label_log_prior, "y").max(-1)))


def label_count(*labels):
    """How many labels the arrays of label ids ``labels`` hold between them (``None``: none): the number of
    distinct ids, which need not be ``0..K-1`` (an npz file's may be 3 and 8). What counts the labels
    (the k-means clusters of :func:`latent_codes`) reads this; what indexes an array by label id needs
    the largest id + 1 (``Dataset.num_labels``)."""
    present = [np.asarray(ids).ravel() for ids in labels if ids is not None]
    return int(np.unique(np.concatenate(present)).size) if present else 0


def latent_codes(params, num_labels, seed=0):
    """One discrete code per example: the most probable latent value (discrete), or a k-means
    cluster of the posterior means with as many clusters as labels (Gaussian; ``num_labels``:
    :func:`label_count`)."""
    from sklearn.cluster import KMeans

    if is_discrete(params):
        return params.probs.argmax(-1)
    return KMeans(n_clusters=max(num_labels, 2), n_init=4, random_state=seed).fit_predict(params.loc)


def normalised_mutual_information(labels, codes):
    """``I(l; c) / ((H(l) + H(c)) / 2)``: not corrected for chance, so codes that carry nothing about the
    labels score above 0, the more so the more codes and the fewer examples."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(labels, codes))


def adjusted_mutual_information(labels, codes):
    """``(I - E[I]) / ((H(l) + H(c)) / 2 - E[I])``, the mutual information corrected for chance (Vinh,
    Epps & Bailey 2010): about 0 for codes that carry nothing about the labels, 1 for a one-to-one match."""
    from sklearn.metrics import adjusted_mutual_info_score

    return float(adjusted_mutual_info_score(labels, codes))


def latent_perplexity(q):
    """``exp H(mean_i q_i)``: how many latent values the aggregate posterior effectively uses."""
    mean = q.probs.mean(0)
    return float(np.exp(-np.sum(mean * np.log(np.where(mean > 0, mean, 1.0)))))


def active_units(q):
    """Gaussian latent dimensions whose posterior mean varies across examples (variance > 0.01)."""
    return int((q.loc.var(0) > ACTIVE_UNIT_THRESHOLD).sum())


def _kl_rows(q, p):
    return np.sum(q * (np.log(np.where(q > 0, q, 1.0)) - np.log(np.where(q > 0, p, 1.0))), axis=-1)


def _gaussian_log_density(z, loc, scale):
    """``[i, j] = log N(z_i; loc_j, diag scale_j^2)`` for all pairs, in row chunks to bound memory."""
    out = np.empty((len(z), len(loc)))
    for start in range(0, len(z), 256):
        zi = z[start : start + 256, None, :]
        out[start : start + 256] = (
            -0.5 * (((zi - loc) / scale) ** 2).sum(-1) - np.log(scale).sum(-1) - 0.5 * loc.shape[-1] * np.log(2 * np.pi)
        )
    return out


def check_prior_rows(num_posteriors, num_priors):
    """The ELBO surgery's priors: one per posterior, or one shared by all (another number would be
    averaged as a mixture of other components, silently)."""
    if num_priors not in (1, num_posteriors):
        raise UserInputError(
            f"elbo_surgery: {num_posteriors} posteriors need one prior or {num_posteriors} priors, one per "
            f"example; got {num_priors}"
        )


def elbo_surgery(q, p, rng):
    """Split ``mean_i KL(q(z|x_i,y_i) || p(z))`` into ``mi + marginal_kl`` (Hoffman & Johnson 2016).

    ``p(z) = mean_i p(z|x_i)`` is the aggregate prior and ``q(z) = mean_i q(z|x_i,y_i)`` the aggregate
    posterior, both over the n examples given; ``mi`` is the mutual information between example and
    latent under q (at most ``log n``), ``marginal_kl = KL(q(z) || p(z))`` of these n-component
    mixtures. Exact for a discrete latent; for a Gaussian one a Monte-Carlo estimate from one draw per
    example, with the mixtures' densities computed exactly. ``marginal_kl`` is not the population's
    mismatch: it grows as the posteriors narrow even where their population mixture is the prior
    (:func:`infovae.diagnostics.two_sample.marginal_fit` measures that).

    :param q: the posteriors, one per example (``[n, K]`` probabilities or ``[n, d]`` locations and scales).
    :param p: the priors, one per example, or one shared by all (``[1, K]``, ``[1, d]``).
    :returns: ``{"mean_kl", "mi", "marginal_kl"}``, with ``mean_kl == mi + marginal_kl``.
    """
    check_prior_rows(len(q.probs if is_discrete(q) else q.loc), len(p.probs if is_discrete(p) else p.loc))
    if is_discrete(q):
        qs, ps = q.probs, p.probs
        q_mean, p_mean = qs.mean(0), ps.mean(0)
        mi = float(_kl_rows(qs, q_mean).mean())
        marginal_kl = float(_kl_rows(q_mean, p_mean))
    else:
        from scipy.special import logsumexp

        z = sample_latents(q, rng)
        log_q_cross = _gaussian_log_density(z, q.loc, q.scale)
        # A shared prior as n identical components: its mixture is itself, whatever n.
        log_p_cross = _gaussian_log_density(z, *np.broadcast_arrays(p.loc, p.scale, q.loc)[:2])
        log_q_own = np.diagonal(log_q_cross)
        log_q_agg = logsumexp(log_q_cross, axis=1) - np.log(len(z))
        log_p_agg = logsumexp(log_p_cross, axis=1) - np.log(len(z))
        mi = float(np.mean(log_q_own - log_q_agg))
        marginal_kl = float(np.mean(log_q_agg - log_p_agg))
    return {"mean_kl": mi + marginal_kl, "mi": mi, "marginal_kl": marginal_kl}
