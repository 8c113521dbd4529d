"""One evaluation of a trained model on held-out data, on the host (NumPy and scikit-learn): the
objective's terms and every diagnostic of the latent, named as in
:mod:`infovae.diagnostics.quantities`. The Pyro backend evaluates with it; the NumPyro backend
computes the same quantities on the device (:mod:`infovae.diagnostics.jax_metrics`).
"""

from dataclasses import dataclass

import numpy as np

from infovae.data.base import Dataset, evaluation_subset
from infovae.diagnostics import metrics
from infovae.diagnostics.two_sample import marginal_fit

# The two-sample test's halves draw from the stream (seed, 3): apart from the split's (seed), a
# generator's (seed, 1) and the evaluation subset's (seed, 2).
_MATCHING_STREAM = 3

__all__ = [
    "HeldOutSet",
    "evaluate",
    "evaluated_examples",
    "held_out_set",
    "log_marginal_likelihood",
    "matching_halves",
    "recon_z_gain",
    "reports_marginal",
    "values_log_likelihood",
]


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
    from scipy.special import logsumexp  # here, not at the top: the NumPyro backend's runs need no scipy.special

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


@dataclass(frozen=True)
class HeldOutSet:
    """What every evaluation on one held-out split reads that depends on the data alone, computed once
    (:func:`held_out_set`) and kept by the backend between evaluations.

    :ivar held: the examples evaluated on; ``fit``: those the probes are fitted on.
    :ivar probe_x_accuracy: the label probe's accuracy from the condition x alone (the backend's probe:
        :func:`held_out_set`'s ``context_probe``), ``None`` without labels or with no condition (or one
        too wide to probe).
    :ivar bayes_accuracy: the data generator's expected Bayes-optimal label accuracy on ``held``, from
        ``label_tables`` (:func:`~infovae.diagnostics.metrics.expected_bayes_accuracy`), ``None`` without
        a generator.
    :ivar label_tables: the generator's ``label_log_prob_tables`` of ``held``'s conditions, and
        ``label_log_prior`` its ``label_log_prior`` of them where it has one (the coverage's
        :func:`~infovae.diagnostics.metrics.label_posterior_coverage_tv` reads both); ``None`` without
        a generator. The tables are ``[n, labels, factors, classes]`` floats, kept as long as the set:
        3.8 MB at the default config's 2000 examples, 4 strategies, 12 steps and 5 actions, and
        proportionally more for more examples (``train.eval_examples``) or a larger generator.
    :ivar matching_halves: the positions in ``held`` whose posterior draws, and those whose prior draws,
        the aggregate's two-sample test compares (:func:`matching_halves`).
    """

    held: Dataset
    fit: Dataset
    probe_x_accuracy: float | None
    bayes_accuracy: float | None
    label_tables: np.ndarray | None
    label_log_prior: np.ndarray | None
    matching_halves: tuple[np.ndarray, np.ndarray]


def matching_halves(num_examples, seed):
    """Two disjoint halves of ``num_examples`` positions, drawn at random from ``seed`` (the data's):
    the two-sample test of the aggregate posterior against the aggregate prior (``marginal_mmd``) takes
    its posterior draws from the first and its prior draws from the second. Drawn for the same examples,
    a prior ``p(z | x)`` that depends on x would pair each prior draw with its example's posterior draw:
    the two samples would not be independent, which biases the statistic below zero and takes most of
    the test's power (``tests/diagnostics/test_evaluate_matching.py`` measures both). A random split,
    not the first and last rows, since held-out rows may be in any order (sorted by label, say)."""
    order = np.random.default_rng((seed, _MATCHING_STREAM)).permutation(num_examples)
    half = num_examples // 2
    return np.sort(order[:half]), np.sort(order[half:])


def _host_context_probe(fit, held):
    return metrics.context_probe_accuracy(fit.x, fit.labels, held.x, held.labels)


def evaluated_examples(data, config) -> Dataset:
    """The examples of ``data`` that an evaluation of a run of ``config`` scores (or fits its probes on):
    at most ``train.eval_examples`` of them, drawn at random (stratified by label) from ``data.seed``
    (:func:`~infovae.data.base.evaluation_subset`). Reports read chance from the same examples."""
    return evaluation_subset(data, config.train.eval_examples, config.data.seed)


def held_out_set(held_out, fit, generator, config, context_probe=_host_context_probe) -> HeldOutSet:
    """The :class:`HeldOutSet` of ``held_out``: at most ``train.eval_examples`` of its examples, and as
    many of ``fit``'s for the probes, both drawn at random (stratified by label) from the data's seed
    (:func:`~infovae.data.base.evaluation_subset`).

    :param fit: the examples the probes are trained on (the training split).
    :param generator: the data's own generator, or ``None``.
    :param config: the run config.
    :param context_probe: ``context_probe(fit, held)``, the label probe's accuracy from the condition x
        alone, fitted on the subset ``fit`` and scored on ``held`` (datasets with labels): by default
        scikit-learn's (:func:`~infovae.diagnostics.metrics.context_probe_accuracy`); a backend whose
        probe from x and z is another passes its own, so that the two probes compare like with like.
    """
    held, fit = evaluated_examples(held_out, config), evaluated_examples(fit, config)
    halves = matching_halves(len(held), config.data.seed)
    probe_x = None
    if held.labels is not None and fit.labels is not None and 0 < held.x.shape[1] <= metrics.CONTEXT_PROBE_FEATURES:
        probe_x = context_probe(fit, held)
    if generator is None:
        return HeldOutSet(held, fit, probe_x, None, None, None, halves)
    log_prior = generator.label_log_prior(held.x) if hasattr(generator, "label_log_prior") else None
    tables = generator.label_log_prob_tables(held.x)
    # From the tables, which the coverage keeps anyway: the generator's expected_bayes_accuracy would
    # compute them again (25 - 60 ms at the default config's 2000 examples, by the host's speed).
    bayes = metrics.expected_bayes_accuracy(tables, generator.label_mix, held.y, log_prior)
    return HeldOutSet(held, fit, probe_x, bayes, tables, log_prior, halves)


def evaluate(model, data, generator, config, seed):
    """Every quantity on a held-out set.

    :param model: one trained model: ``loss_terms``, ``posterior``, ``prior``, ``log_likelihood`` and
        ``generate`` as a backend has them.
    :param data: the :class:`HeldOutSet` evaluated on (:func:`held_out_set`).
    :param generator: the data's own generator, when known: adds the coverage of data generated from
        the prior.
    :param config: the run config.
    :param seed: fixes every draw.
    :returns: a flat dict of floats (``None`` where a quantity does not apply).
    """
    train = config.train
    rng = np.random.default_rng(seed)
    held, fit = data.held, data.fit
    x, y = held.x, held.y
    out = model.loss_terms(x, y, seed)
    if not reports_marginal(config.objective):
        del out["marginal"]
    q, p = model.posterior(x, y), model.prior(x)
    surgery = metrics.elbo_surgery(q, p, rng)
    out.update(mi=surgery["mi"], marginal_kl=surgery["marginal_kl"])
    first, second = data.matching_halves
    matching = marginal_fit(metrics.sample_latents(q, rng)[first], metrics.sample_latents(p, rng)[second], rng)
    out.update(marginal_mmd=matching["statistic"], marginal_mmd_p=matching["p_value"])
    discrete = metrics.is_discrete(q)
    # The decoder on every latent value, once for both (a discrete latent's are exact sums over them).
    log_lik = values_log_likelihood(model, x, y, q) if discrete else None
    out["nll"] = float(-np.mean(log_marginal_likelihood(model, x, y, q, p, train.importance_samples, rng, log_lik)))
    out["recon_z_gain"] = recon_z_gain(model, x, y, q, p, train.importance_samples, rng, log_lik)
    out["latent_perplexity"] = metrics.latent_perplexity(q) if discrete else None
    out["active_units"] = None if discrete else metrics.active_units(q)
    out["probe_accuracy"] = out["nmi"] = out["ami"] = out["probe_xz_accuracy"] = None
    out["probe_x_accuracy"] = data.probe_x_accuracy
    if held.labels is not None:
        num_values = q.probs.shape[-1] if discrete else None
        q_fit = model.posterior(fit.x, fit.y)
        z_fit, z_held = metrics.sample_latents(q_fit, rng), metrics.sample_latents(q, rng)
        out["probe_accuracy"] = metrics.probe_accuracy(z_fit, fit.labels, z_held, held.labels, num_values)
        if data.probe_x_accuracy is not None:
            out["probe_xz_accuracy"] = metrics.context_probe_accuracy(
                fit.x, fit.labels, x, held.labels, z_fit, z_held, num_values
            )
        codes = metrics.latent_codes(q, metrics.label_count(fit.labels, held.labels), seed)
        out["nmi"] = metrics.normalised_mutual_information(held.labels, codes)
        out["ami"] = metrics.adjusted_mutual_information(held.labels, codes)
    out["coverage_tv"], out["bayes_accuracy"] = None, data.bayes_accuracy
    if generator is not None:
        _, y_generated = model.generate(x, seed)
        out["coverage_tv"] = metrics.label_posterior_coverage_tv(
            data.label_tables, generator.label_mix, y_generated, data.label_log_prior
        )
    return out
