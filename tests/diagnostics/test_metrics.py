"""The latent diagnostics against independent computations."""

import math

import numpy as np
import pytest

from infovae.core.latents import CategoricalLatent, GaussianLatent
from infovae.data.strategies import StrategyGenerator
from infovae.diagnostics import metrics
from infovae.diagnostics.evaluate import log_marginal_likelihood
from infovae.errors import UserInputError


def kl(q, p):
    return float(np.sum(q * np.log(q / p)))


def test_discrete_elbo_surgery_is_exact():
    rng = np.random.default_rng(0)
    q = rng.dirichlet(np.ones(4), size=30)
    p = rng.dirichlet(np.ones(4), size=30)
    out = metrics.elbo_surgery(CategoricalLatent(q), CategoricalLatent(p), rng)
    p_agg, q_agg = p.mean(0), q.mean(0)
    assert out["mean_kl"] == pytest.approx(np.mean([kl(qi, p_agg) for qi in q]), rel=1e-12)
    assert out["marginal_kl"] == pytest.approx(kl(q_agg, p_agg), rel=1e-12)
    assert out["mi"] == pytest.approx(np.mean([kl(qi, q_agg) for qi in q]), rel=1e-12)
    assert 0 <= out["mi"] <= math.log(30)


def test_discrete_mi_is_zero_when_every_posterior_is_the_same_and_log_k_when_one_hot():
    rng = np.random.default_rng(1)
    same = np.tile([0.1, 0.2, 0.7], (12, 1))
    assert metrics.elbo_surgery(CategoricalLatent(same), CategoricalLatent(same), rng)["mi"] == pytest.approx(0.0, abs=1e-14)
    one_hot = np.eye(3)[np.arange(12) % 3]
    out = metrics.elbo_surgery(CategoricalLatent(one_hot), CategoricalLatent(np.full((12, 3), 1 / 3)), rng)
    assert out["mi"] == pytest.approx(math.log(3), rel=1e-12)
    assert out["marginal_kl"] == pytest.approx(0.0, abs=1e-14)


def test_gaussian_elbo_surgery():
    rng = np.random.default_rng(2)
    n, d = 400, 2
    prior = GaussianLatent(np.zeros((n, d)), np.ones((n, d)))
    # Identical posteriors: no information about the example, and the marginal KL is the full KL.
    loc, scale = np.array([0.5, -1.0]), np.array([0.6, 0.8])
    same = GaussianLatent(np.tile(loc, (n, 1)), np.tile(scale, (n, 1)))
    estimates = [metrics.elbo_surgery(same, prior, rng) for _ in range(20)]
    assert all(e["mi"] == pytest.approx(0.0, abs=1e-12) for e in estimates)
    exact_kl = 0.5 * np.sum(scale**2 + loc**2 - 1 - 2 * np.log(scale))
    assert np.mean([e["marginal_kl"] for e in estimates]) == pytest.approx(exact_kl, rel=0.05)
    # Well-separated posteriors: mi approaches its ceiling log n.
    spread = GaussianLatent(rng.normal(0, 100.0, (n, d)), np.full((n, d), 0.01))
    out = metrics.elbo_surgery(spread, prior, rng)
    assert out["mi"] == pytest.approx(math.log(n), abs=1e-6)
    assert out["mean_kl"] == pytest.approx(out["mi"] + out["marginal_kl"], rel=1e-12)


@pytest.mark.parametrize("latent", ["discrete", "gaussian"])
def test_elbo_surgery_takes_one_shared_prior_as_that_prior_for_every_example(latent):
    """A prior passed once ([1, ...]) is the same distribution as it repeated per example: the same split
    up to rounding (before, a shared Gaussian prior moved marginal_kl by log n); another count is refused."""
    rng = np.random.default_rng(5)
    n = 200
    if latent == "discrete":
        q, shared = CategoricalLatent(rng.dirichlet(np.ones(4), size=n)), np.array([[0.1, 0.2, 0.3, 0.4]])
        one, repeated, three = (CategoricalLatent(np.tile(shared, (k, 1))) for k in (1, n, 3))
    else:
        q = GaussianLatent(rng.normal(0, 0.8, (n, 3)), np.full((n, 3), 0.6))
        one, repeated, three = (GaussianLatent(np.zeros((k, 3)), np.ones((k, 3))) for k in (1, n, 3))
    expected = metrics.elbo_surgery(q, repeated, np.random.default_rng(1))
    assert metrics.elbo_surgery(q, one, np.random.default_rng(1)) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(UserInputError, match="200 posteriors need one prior or 200 priors, one per example; got 3"):
        metrics.elbo_surgery(q, three, np.random.default_rng(1))


def test_sample_latents():
    rng = np.random.default_rng(3)
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.25, 0.75]])
    z = metrics.sample_latents(CategoricalLatent(probs), rng, num_samples=20000)
    assert z.shape == (20000, 2)
    assert (z[:, 0] == 0).all()
    assert np.mean(z[:, 1] == 2) == pytest.approx(0.75, abs=0.02)
    g = metrics.sample_latents(GaussianLatent(np.ones((3, 2)), np.full((3, 2), 2.0)), rng, num_samples=20000)
    assert g.shape == (20000, 3, 2)
    assert g.mean() == pytest.approx(1.0, abs=0.03) and g.std() == pytest.approx(2.0, abs=0.03)


def test_probe_accuracy_reads_what_the_latent_carries():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 600)
    informative = (labels + 3 * rng.integers(0, 2, 600)) % 6  # two latent values per label
    assert metrics.probe_accuracy(informative[:300], labels[:300], informative[300:], labels[300:], num_values=6) == 1.0
    noise = rng.integers(0, 6, 600)
    chance = metrics.probe_accuracy(noise[:300], labels[:300], noise[300:], labels[300:], num_values=6)
    assert chance < 0.5
    vectors = labels[:, None] * 3.0 + rng.normal(size=(600, 2)) * 0.1
    assert metrics.probe_accuracy(vectors[:300], labels[:300], vectors[300:], labels[300:]) == 1.0


def test_latent_usage():
    assert metrics.latent_perplexity(CategoricalLatent(np.full((5, 4), 0.25))) == pytest.approx(4.0)
    assert metrics.latent_perplexity(CategoricalLatent(np.tile([0.0, 1.0, 0.0], (5, 1)))) == pytest.approx(1.0)
    loc = np.stack([np.linspace(-1, 1, 50), np.full(50, 0.3), np.linspace(0, 0.1, 50)], -1)
    assert metrics.active_units(GaussianLatent(loc, np.ones_like(loc))) == 1


def test_nmi_codes():
    probs = np.eye(3)[[0, 1, 2, 0, 1, 2]] * 0.9 + 0.1 / 3
    codes = metrics.latent_codes(CategoricalLatent(probs), 3)
    assert list(codes) == [0, 1, 2, 0, 1, 2]
    assert metrics.normalised_mutual_information(np.array([2, 0, 1, 2, 0, 1]), codes) == pytest.approx(1.0)


class LinearGaussian:
    """p(z) = N(0, 1), p(y|z) = N(z, 1): log p(y) = log N(y; 0, 2), posterior N(y/2, 1/2)."""

    def log_likelihood(self, x, y, z):
        return -0.5 * (y[:, 0] - z[..., 0]) ** 2 - 0.5 * np.log(2 * np.pi)


class Table:
    """p(y|z=k) = table[k, y] for a discrete latent."""

    def __init__(self, table):
        self.table = table

    def log_likelihood(self, x, y, z):
        return np.log(self.table[z, y[:, 0]])


def test_log_marginal_likelihood_is_exact_for_a_discrete_latent():
    rng = np.random.default_rng(5)
    table = rng.dirichlet(np.ones(4), size=3)
    prior = rng.dirichlet(np.ones(3), size=6)
    y = rng.integers(0, 4, (6, 1))
    q = CategoricalLatent(rng.dirichlet(np.ones(3), size=6))
    got = log_marginal_likelihood(Table(table), None, y, q, CategoricalLatent(prior), 1, rng)
    expected = np.log(np.einsum("nk,kn->n", prior, table[:, y[:, 0]]))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_importance_weighted_likelihood_is_exact_with_the_true_posterior_and_a_bound_otherwise():
    rng = np.random.default_rng(6)
    y = rng.normal(size=(5, 1)) * 1.5
    prior = GaussianLatent(np.zeros((5, 1)), np.ones((5, 1)))
    exact = -0.5 * y[:, 0] ** 2 / 2 - 0.5 * np.log(2 * np.pi * 2)
    true_q = GaussianLatent(y / 2, np.full((5, 1), math.sqrt(0.5)))
    got = log_marginal_likelihood(LinearGaussian(), None, y, true_q, prior, 8, rng)
    np.testing.assert_allclose(got, exact, rtol=1e-10)
    poor_q = GaussianLatent(np.zeros((5, 1)), np.full((5, 1), 2.0))
    few = np.mean([log_marginal_likelihood(LinearGaussian(), None, y, poor_q, prior, 2, rng).sum() for _ in range(200)])
    many = np.mean([log_marginal_likelihood(LinearGaussian(), None, y, poor_q, prior, 256, rng).sum() for _ in range(20)])
    assert few < many < exact.sum() + 1e-3


def _context_and_labels(rng, n, shift):
    """Labels of 4 values, and 6-d conditions shifted along each label's own direction by ``shift``."""
    labels = rng.integers(0, 4, n)
    means = np.random.default_rng(0).normal(size=(4, 6))
    return labels, rng.normal(size=(n, 6)) + shift * means[labels]


@pytest.mark.parametrize("shift", [0.0, 0.5, 3.0])
def test_a_latent_independent_of_the_label_given_x_adds_nothing_to_the_probe_from_x(shift):
    rng = np.random.default_rng(5)
    labels, x = _context_and_labels(rng, 4000, shift)
    fit, held = slice(0, 2000), slice(2000, None)
    alone = metrics.context_probe_accuracy(x[fit], labels[fit], x[held], labels[held])
    # z a noisy function of x (here of the label's best guess from x) plus noise: given x it says nothing new.
    z = np.argmax(x @ np.random.default_rng(0).normal(size=(4, 6)).T, axis=1) ^ rng.integers(0, 2, len(x))
    with_z = metrics.context_probe_accuracy(x[fit], labels[fit], x[held], labels[held], z[fit], z[held], num_values=8)
    # Two probes on 2000 examples: their difference's noise sd is below 0.01 here (they mostly agree).
    assert abs(with_z - alone) < 0.025
    gaussian = rng.normal(size=(len(x), 3))
    assert (
        abs(metrics.context_probe_accuracy(x[fit], labels[fit], x[held], labels[held], gaussian[fit], gaussian[held]) - alone)
        < 0.025
    )


def test_a_latent_that_carries_the_label_beyond_x_raises_the_probe_from_x():
    rng = np.random.default_rng(6)
    labels, x = _context_and_labels(rng, 4000, 0.5)  # x reveals the label only in part
    z = np.where(rng.random(len(x)) < 0.8, labels, rng.integers(0, 4, len(x)))
    fit, held = slice(0, 2000), slice(2000, None)
    alone = metrics.context_probe_accuracy(x[fit], labels[fit], x[held], labels[held])
    with_z = metrics.context_probe_accuracy(x[fit], labels[fit], x[held], labels[held], z[fit], z[held], num_values=4)
    assert with_z - alone > 0.2
    with pytest.raises(ValueError, match="both"):
        metrics.context_probe_accuracy(x[fit], labels[fit], x[held], labels[held], z[fit], None)


def test_a_latent_of_pure_noise_costs_the_probe_from_x_and_z_a_little_accuracy_on_average():
    """The bias context_probe_accuracy's docstring states: z's weights fitted to noise from finite
    examples lower the held-out accuracy of the probe from (x, z), so the difference is below 0 on
    average where z adds nothing (20 noise dimensions at 200 examples make it large enough to see)."""
    rng = np.random.default_rng(11)
    differences = []
    for _ in range(15):
        labels, x = _context_and_labels(rng, 400, 0.5)
        fit, held = slice(0, 200), slice(200, None)
        alone = metrics.context_probe_accuracy(x[fit], labels[fit], x[held], labels[held])
        z = rng.normal(size=(len(x), 20))
        differences.append(metrics.context_probe_accuracy(x[fit], labels[fit], x[held], labels[held], z[fit], z[held]) - alone)
    mean, se = np.mean(differences), np.std(differences, ddof=1) / np.sqrt(len(differences))
    assert mean + 3 * se < 0


def test_the_number_of_labels_counts_distinct_ids_not_the_largest_id():
    assert metrics.label_count(np.array([3, 8, 8]), None, np.array([3])) == 2
    assert metrics.label_count(np.array([0, 1, 2]), np.array([2, 1])) == 3
    assert metrics.label_count(None, None) == 0


def test_recon_z_gain_is_zero_for_a_decoder_that_ignores_z_and_positive_for_one_that_reads_it():
    rng = np.random.default_rng(7)
    q, p = rng.dirichlet(np.ones(5), size=40), rng.dirichlet(np.ones(5), size=40)
    ignores = np.tile(rng.normal(size=(1, 40)), (5, 1))  # log p(y_i | x_i, z = k) the same for every k
    assert metrics.discrete_recon_z_gain(q, p, ignores) == pytest.approx(0.0, abs=1e-12)
    reads = np.log(np.full((5, 40), 0.05))
    values = rng.integers(0, 5, 40)
    reads[values, np.arange(40)] = np.log(0.8)  # y_i is explained by z = values_i
    assert metrics.discrete_recon_z_gain(q, q, reads) == pytest.approx(0.0, abs=1e-12)  # posterior = prior
    # Against a direct sum: q on the explaining value, p uniform.
    sharp, uniform = np.eye(5)[values], np.full((40, 5), 0.2)
    expected = np.mean(np.log(0.8) - (0.2 * np.log(0.8) + 0.8 * np.log(0.05)))
    assert metrics.discrete_recon_z_gain(sharp, uniform, reads) == pytest.approx(expected, rel=1e-12)
    assert expected > 1.0


def test_recon_z_gain_of_a_gaussian_latent_from_draws():
    from infovae.diagnostics.evaluate import recon_z_gain

    x, y = np.zeros((300, 1)), np.random.default_rng(8).normal(size=(300, 1))
    posterior = GaussianLatent(y, np.full((300, 1), 0.1))
    prior = GaussianLatent(np.zeros((300, 1)), np.ones((300, 1)))

    class Ignores:
        def log_likelihood(self, x, y, z):
            return np.broadcast_to(-0.5 * y[:, 0] ** 2, z.shape[:-1])

    # A decoder that ignores z: the gain is exactly 0 whatever the draws.
    assert recon_z_gain(Ignores(), x, y, posterior, prior, 8, np.random.default_rng(0)) == 0.0
    # log p(y | z) = log N(y; z, 1): E_q = -(0.01 + 0) / 2 + c, E_p = -(1 + y^2) / 2 + c.
    gain = recon_z_gain(LinearGaussian(), x, y, posterior, prior, 400, np.random.default_rng(0))
    assert gain == pytest.approx(np.mean((1 + y[:, 0] ** 2) / 2) - 0.01 / 2, abs=0.05)


@pytest.mark.parametrize("mix", [None, [0.5, 0.3, 0.2, 0.0]])
@pytest.mark.parametrize("context_shift", [0.0, 0.6])
def test_coverage_from_the_tables_is_the_generators_own_to_the_bit(mix, context_shift):
    generator = StrategyGenerator(mix=mix, context_shift=context_shift, seed=3)
    x, _, _ = generator.sample(400, rng=0)
    # Generated by a model that over-uses strategy 1.
    y_generated = generator.sample_actions(x, np.where(np.arange(400) % 3 == 0, 1, np.arange(400) % 4), rng=1)
    expected = generator.coverage_tv(x, y_generated)
    tables, log_prior = generator.label_log_prob_tables(x), generator.label_log_prior(x)
    assert metrics.label_posterior_coverage_tv(tables, generator.label_mix, y_generated, log_prior) == expected > 0.05
    if context_shift == 0:  # the contexts say nothing: the mix is the same prior
        got = metrics.label_posterior_coverage_tv(tables, generator.label_mix, y_generated)
        assert got == pytest.approx(expected, rel=1e-12)


def test_coverage_of_labels_that_the_generated_data_tell_apart_exactly():
    # Label 0 always emits class 0, label 1 always class 1: a generated example's posterior is one-hot.
    with np.errstate(divide="ignore"):
        tables = np.log(np.array([[[1.0, 0.0]], [[0.0, 1.0]]]))[None].repeat(4, axis=0)  # [n=4, L=2, F=1, C=2]
    mix = np.array([0.5, 0.5])
    assert metrics.label_posterior_coverage_tv(tables, mix, np.array([[0], [0], [0], [0]])) == 0.5
    assert metrics.label_posterior_coverage_tv(tables, mix, np.array([[0], [1], [0], [1]])) == 0.0
    assert metrics.label_posterior_coverage_tv(tables, mix, np.array([[0], [0], [0], [1]])) == 0.25


@pytest.mark.parametrize("y_generated", [[[0], [2]], [[0], [-1]], [[0.5], [1.0]], [[0, 1], [1, 0]]])
def test_coverage_refuses_generated_classes_the_tables_do_not_have(y_generated):
    tables = np.log(np.full((2, 2, 1, 2), 0.5))  # [n=2, L=2, F=1, C=2]
    with pytest.raises(UserInputError, match="y_generated"):
        metrics.label_posterior_coverage_tv(tables, np.array([0.5, 0.5]), np.array(y_generated))
    assert metrics.label_posterior_coverage_tv(tables, np.array([0.5, 0.5]), np.array([[0], [1.0]])) == 0.0


@pytest.mark.parametrize("mix", [None, [0.5, 0.3, 0.2, 0.0]])
@pytest.mark.parametrize("context_shift", [0.0, 0.6])
def test_bayes_accuracy_from_the_tables_is_the_generators_own_to_the_bit(mix, context_shift):
    generator = StrategyGenerator(mix=mix, context_shift=context_shift, seed=3)
    x, y, _ = generator.sample(400, rng=0)
    expected = generator.expected_bayes_accuracy(x, y)
    tables, log_prior = generator.label_log_prob_tables(x), generator.label_log_prior(x)
    assert metrics.expected_bayes_accuracy(tables, generator.label_mix, y, log_prior) == expected > 0.4
    if context_shift == 0:  # the contexts say nothing: the mix is the same prior
        assert metrics.expected_bayes_accuracy(tables, generator.label_mix, y) == pytest.approx(expected, rel=1e-12)
    # Other targets than the examples' own: another number, so the tables' rows are read by y.
    assert metrics.expected_bayes_accuracy(tables, generator.label_mix, y[::-1], log_prior) != expected


def test_bayes_accuracy_of_labels_told_apart_or_not_at_all():
    with np.errstate(divide="ignore"):
        apart = np.log(np.array([[[1.0, 0.0]], [[0.0, 1.0]]]))[None].repeat(4, axis=0)  # [n=4, L=2, F=1, C=2]
    alike = np.log(np.full((4, 2, 1, 2), 0.5))
    y = np.array([[0], [1], [1], [0]])
    assert metrics.expected_bayes_accuracy(apart, np.array([0.5, 0.5]), y) == 1.0
    assert metrics.expected_bayes_accuracy(alike, np.array([0.7, 0.3]), y) == pytest.approx(0.7, abs=1e-15)
    with pytest.raises(UserInputError, match="y must hold classes"):
        metrics.expected_bayes_accuracy(alike, np.array([0.7, 0.3]), np.array([[0], [2], [0], [0]]))
