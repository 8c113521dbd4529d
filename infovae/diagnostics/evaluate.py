"""One evaluation of a trained model on held-out data, on the host (NumPy and scikit-learn): the
objective's terms and every diagnostic of the latent, named as in
:mod:`infovae.diagnostics.quantities`. The Pyro backend evaluates with it; the NumPyro backend
computes the same quantities on the device (:mod:`infovae.diagnostics.jax_metrics`).
"""

import numpy as np
from scipy.special import logsumexp

from infovae.data.base import evaluation_subset
from infovae.diagnostics import metrics
from infovae.diagnostics.two_sample import marginal_fit

__all__ = ["evaluate", "log_marginal_likelihood", "recon_z_gain", "reports_marginal", "values_log_likelihood"]


def reports_marginal(objective) -> bool:
    """Whether the objective's marginal divergence is a quantity of its own, rather than the
    ``marginal_kl`` that the evaluation records anyway (the discrete ``"kl"``)."""
    return objective.marginal not in (None, "kl")


def _normal_log_density(z, loc, scale):
    return (-0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)).sum(-1)


def values_log_likelihood(model, x, y, q):
    """``log p(y_i | x_i, z = k)`` of each value k of a discrete latent, ``[K, n]``."""
    return model.log_likelihood(x, y, np.arange(q.probs.shape[-1])[:, None])


def log_marginal_likelihood(model, x, y, q, p, num_samples, rng, log_lik=None):
    """``log p(y|x)`` per example: exact for a discrete latent (the sum over its values; pass
    ``log_lik``, :func:`values_log_likelihood`, where it is at hand), the importance-weighted bound with
    ``num_samples`` draws from q for a Gaussian one."""
    if metrics.is_discrete(q):
        log_lik = values_log_likelihood(model, x, y, q) if log_lik is None else log_lik
        with np.errstate(divide="ignore"):
            return logsumexp(log_lik + np.log(p.probs).T, axis=0)
    z = metrics.sample_latents(q, rng, num_samples)  # [S, n, d]
    log_w = model.log_likelihood(x, y, z) + _normal_log_density(z, p.loc, p.scale) - _normal_log_density(z, q.loc, q.scale)
    return logsumexp(log_w, axis=0) - np.log(num_samples)


def recon_z_gain(model, x, y, q, p, num_samples, rng, log_lik=None):
    """How much the decoder uses z: the reconstruction log-likelihood with z drawn from the posterior
    less that with z drawn from the prior, ``mean_i [E_q - E_p] log p(y_i | x_i, z)`` in nats per example:
    exact for a discrete latent (:func:`~infovae.diagnostics.metrics.discrete_recon_z_gain`), from
    ``num_samples`` draws of each for a Gaussian one."""
    if metrics.is_discrete(q):
        log_lik = values_log_likelihood(model, x, y, q) if log_lik is None else log_lik
        return metrics.discrete_recon_z_gain(q.probs, p.probs, log_lik)
    posterior = model.log_likelihood(x, y, metrics.sample_latents(q, rng, num_samples))
    prior = model.log_likelihood(x, y, metrics.sample_latents(p, rng, num_samples))
    return float(np.mean(posterior) - np.mean(prior))


def evaluate(model, fit, held_out, generator, config, seed):
    """Every quantity on ``held_out``: on at most ``train.eval_examples`` of its examples, and with the
    probe fitted on as many of ``fit``'s, both drawn at random (stratified by label) from the data's
    seed (:func:`~infovae.data.base.evaluation_subset`).

    :param model: one trained model: ``loss_terms``, ``posterior``, ``prior``, ``log_likelihood`` and
        ``generate`` as a backend has them.
    :param fit: the examples the probe is trained on (latents sampled for the training split).
    :param generator: the data's own generator, when known: adds the coverage of data generated from
        the prior and the Bayes-optimal label accuracy.
    :param config: the run config.
    :param seed: fixes every draw.
    :returns: a flat dict of floats (``None`` where a quantity does not apply).
    """
    train = config.train
    rng = np.random.default_rng(seed)
    held = evaluation_subset(held_out, train.eval_examples, config.data.seed)
    fit = evaluation_subset(fit, train.eval_examples, config.data.seed)
    x, y = held.x, held.y
    out = model.loss_terms(x, y, seed)
    if not reports_marginal(config.objective):
        del out["marginal"]
    q, p = model.posterior(x, y), model.prior(x)
    surgery = metrics.elbo_surgery(q, p, rng)
    out.update(mi=surgery["mi"], marginal_kl=surgery["marginal_kl"])
    matching = marginal_fit(metrics.sample_latents(q, rng), metrics.sample_latents(p, rng), rng)
    out.update(marginal_mmd=matching["statistic"], marginal_mmd_p=matching["p_value"])
    discrete = metrics.is_discrete(q)
    # The decoder on every latent value, once for both (a discrete latent's are exact sums over them).
    log_lik = values_log_likelihood(model, x, y, q) if discrete else None
    out["nll"] = float(-np.mean(log_marginal_likelihood(model, x, y, q, p, train.importance_samples, rng, log_lik)))
    out["recon_z_gain"] = recon_z_gain(model, x, y, q, p, train.importance_samples, rng, log_lik)
    out["latent_perplexity"] = metrics.latent_perplexity(q) if discrete else None
    out["active_units"] = None if discrete else metrics.active_units(q)
    out["probe_accuracy"] = out["nmi"] = out["ami"] = out["probe_x_accuracy"] = out["probe_xz_accuracy"] = None
    if held.labels is not None:
        num_values = q.probs.shape[-1] if discrete else None
        q_fit = model.posterior(fit.x, fit.y)
        z_fit, z_held = metrics.sample_latents(q_fit, rng), metrics.sample_latents(q, rng)
        out["probe_accuracy"] = metrics.probe_accuracy(z_fit, fit.labels, z_held, held.labels, num_values)
        if 0 < x.shape[1] <= metrics.CONTEXT_PROBE_FEATURES:
            out["probe_x_accuracy"] = metrics.context_probe_accuracy(fit.x, fit.labels, x, held.labels)
            out["probe_xz_accuracy"] = metrics.context_probe_accuracy(
                fit.x, fit.labels, x, held.labels, z_fit, z_held, num_values
            )
        codes = metrics.latent_codes(q, max(fit.num_labels, held.num_labels), seed)
        out["nmi"] = metrics.normalised_mutual_information(held.labels, codes)
        out["ami"] = metrics.adjusted_mutual_information(held.labels, codes)
    out["coverage_tv"] = out["bayes_accuracy"] = None
    if generator is not None:
        _, y_generated = model.generate(x, seed)
        out["coverage_tv"] = float(generator.coverage_tv(x, y_generated))
        out["bayes_accuracy"] = float(generator.expected_bayes_accuracy(x, y))
    return out
