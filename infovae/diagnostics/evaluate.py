"""One evaluation of a run on held-out data: the objective's terms and every diagnostic of the latent."""

import numpy as np
from scipy.special import logsumexp

from infovae.diagnostics import metrics

__all__ = ["evaluate", "log_marginal_likelihood"]


def _normal_log_density(z, loc, scale):
    return (-0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)).sum(-1)


def log_marginal_likelihood(backend, x, y, q, p, num_samples, rng):
    """``log p(y|x)`` per example: exact for a discrete latent (the sum over its values), the
    importance-weighted bound with ``num_samples`` draws from q for a Gaussian one."""
    if metrics.is_discrete(q):
        K = q["probs"].shape[-1]
        log_lik = backend.log_likelihood(x, y, np.arange(K)[:, None])  # [K, n]
        with np.errstate(divide="ignore"):
            return logsumexp(log_lik + np.log(p["probs"]).T, axis=0)
    z = metrics.sample_latents(q, rng, num_samples)  # [S, n, d]
    log_w = (
        backend.log_likelihood(x, y, z)
        + _normal_log_density(z, p["loc"], p["scale"])
        - _normal_log_density(z, q["loc"], q["scale"])
    )
    return logsumexp(log_w, axis=0) - np.log(num_samples)


def evaluate(backend, fit, held_out, generator, train, seed):
    """Every metric of the latent on ``held_out`` (at most ``train.eval_examples`` of its examples).

    The probe is trained on latents sampled for ``fit`` (the training split) and scored on latents
    sampled for ``held_out``. ``generator`` (the data's own, when known) adds the coverage of data
    generated from the prior and the Bayes-optimal label accuracy. All randomness comes from ``seed``.

    :returns: a flat dict of floats (``None`` where a metric does not apply).
    """
    rng = np.random.default_rng(seed)
    held = held_out.subset(slice(0, train.eval_examples))
    fit = fit.subset(slice(0, train.eval_examples))
    x, y = held.x, held.y
    out = backend.loss_terms(x, y, seed)
    q, p = backend.posterior(x, y), backend.prior(x)
    out.update(metrics.elbo_surgery(q, p, rng))
    out["nll"] = float(-np.mean(log_marginal_likelihood(backend, x, y, q, p, train.importance_samples, rng)))
    discrete = metrics.is_discrete(q)
    out["latent_perplexity"] = metrics.latent_perplexity(q) if discrete else None
    out["active_units"] = None if discrete else metrics.active_units(q)
    out["probe_accuracy"] = out["nmi"] = None
    if held.labels is not None:
        num_values = q["probs"].shape[-1] if discrete else None
        q_fit = backend.posterior(fit.x, fit.y)
        out["probe_accuracy"] = metrics.probe_accuracy(
            metrics.sample_latents(q_fit, rng), fit.labels, metrics.sample_latents(q, rng), held.labels, num_values
        )
        codes = metrics.latent_codes(q, max(fit.num_labels, held.num_labels), seed)
        out["nmi"] = metrics.normalised_mutual_information(held.labels, codes)
    out["coverage_tv"] = out["bayes_accuracy"] = None
    if generator is not None:
        _, y_generated = backend.generate(x, seed)
        out["coverage_tv"] = float(generator.coverage_tv(x, y_generated))
        out["bayes_accuracy"] = float(generator.expected_bayes_accuracy(x, y))
    return out
