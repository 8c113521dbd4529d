"""marginal_fit against ground truths: a population aggregate that is exactly N(0, I), made of posteriors
of any width, is a match (where the KL of the ELBO surgery reports ever more nats as they narrow); a
shifted or widened aggregate is a mismatch; the statistic is the MMD it claims to be."""

import numpy as np
import pytest

from infovae.core.latents import GaussianLatent
from infovae.diagnostics import marginal_fit
from infovae.diagnostics.metrics import elbo_surgery
from infovae.diagnostics.two_sample import fourier_features, mmd_statistics
from infovae.errors import UserInputError

N, D = 1000, 8


def aggregate_normal(rng, scale):
    """Posteriors N(mu_i, scale^2 I) with mu_i ~ N(0, (1 - scale^2) I): their population mixture is N(0, I)."""
    loc = np.sqrt(1 - scale**2) * rng.standard_normal((N, D))
    return GaussianLatent(loc, np.full((N, D), scale))


def rejections(rng, make_posterior_draws, repeats):
    p = [marginal_fit(make_posterior_draws(), rng.standard_normal((N, D)), rng)["p_value"] for _ in range(repeats)]
    return np.mean(np.array(p) < 0.05)


def test_an_aggregate_that_is_the_prior_is_a_match_however_narrow_the_posteriors():
    rng = np.random.default_rng(0)
    rates = {}
    for scale in (0.3, 0.1, 0.03):

        def draws():
            q = aggregate_normal(rng, scale)
            return q.loc + q.scale * rng.standard_normal((N, D))

        rates[scale] = rejections(rng, draws, 60)
        # The ELBO surgery's marginal KL over the same examples calls it far from the prior (2.5 nats
        # at scale 0.1): the KL of the 1000-component mixture, which posterior width drives.
        surgery = elbo_surgery(aggregate_normal(rng, scale), GaussianLatent(np.zeros((N, D)), np.ones((N, D))), rng)
        assert surgery["marginal_kl"] > {0.3: 0.3, 0.1: 2.0, 0.03: 6.0}[scale]
    # 180 tests at the nominal 5% (the permutation test is exact here): a pooled rate above 9% would be
    # 2.5 standard errors out. These give 10%, 3% and 10% of 60; 400 tests at scale 0.03 give 4.3%.
    assert np.mean(list(rates.values())) <= 0.09 and max(rates.values()) <= 0.15


def test_a_shifted_or_widened_aggregate_is_a_mismatch():
    rng = np.random.default_rng(1)
    shift, widen = np.zeros(D), np.ones(D)
    shift[0], widen[0] = 0.5, np.sqrt(2.0)
    assert rejections(rng, lambda: rng.standard_normal((N, D)) + shift, 20) == 1.0
    assert rejections(rng, lambda: rng.standard_normal((N, D)) * widen, 40) >= 0.9


def test_codes_from_one_distribution_match_and_from_two_differ():
    rng = np.random.default_rng(2)
    uniform, skewed = np.full(4, 0.25), np.array([0.35, 0.25, 0.2, 0.2])
    p_same = [marginal_fit(rng.choice(4, N, p=uniform), rng.choice(4, N, p=uniform), rng)["p_value"] for _ in range(120)]
    assert np.mean(np.array(p_same) < 0.05) <= 0.08
    p_differ = [marginal_fit(rng.choice(4, N, p=skewed), rng.choice(4, N, p=uniform), rng)["p_value"] for _ in range(30)]
    assert np.mean(np.array(p_differ) < 0.05) >= 0.9


def test_the_statistic_is_the_unbiased_squared_mmd():
    rng = np.random.default_rng(3)
    # Codes: the kernel [a = b], summed over pairs of distinct draws, from the counts.
    a, b = rng.integers(0, 5, 40), rng.integers(0, 5, 25)
    c, d = np.bincount(a, minlength=5), np.bincount(b, minlength=5)
    expected = (c @ c - 40) / (40 * 39) + (d @ d - 25) / (25 * 24) - 2 * (c @ d) / (40 * 25)
    assert marginal_fit(a, b, rng)["statistic"] == pytest.approx(expected, rel=1e-12)
    # Features: every pair of draws, the kernel as the features' dot product.
    z = rng.standard_normal((12, 3)) * [1.0, 2.0, 0.5]
    phi = fourier_features(z, rng.standard_normal((3, 64)), rng.uniform(0, 2 * np.pi, 64))
    kernel = phi @ phi.T
    first = np.r_[np.ones(7), np.zeros(5)].astype(bool)
    k11, k22, k12 = kernel[first][:, first], kernel[~first][:, ~first], kernel[first][:, ~first]
    brute = (k11.sum() - np.trace(k11)) / 42 + (k22.sum() - np.trace(k22)) / 20 - 2 * k12.mean()
    assert mmd_statistics(phi, first[None].astype(float))[0] == pytest.approx(brute, rel=1e-10)
    # The features' kernel approximates the Gaussian kernel of width the draws' total variance.
    many = fourier_features(z, rng.standard_normal((3, 200000)), rng.uniform(0, 2 * np.pi, 200000))
    width2 = z.var(0).sum()
    gaussian = np.exp(-((z[:, None] - z[None]) ** 2).sum(-1) / (2 * width2))
    np.testing.assert_allclose(many @ many.T, gaussian, atol=0.01)


def test_p_values_resolve_the_permutations_and_are_reproducible():
    rng = np.random.default_rng(4)
    far = marginal_fit(rng.standard_normal((200, 2)) + 3.0, rng.standard_normal((200, 2)), rng=0)
    assert far["p_value"] == pytest.approx(1 / 201) and far["statistic"] > 0.1
    z, w = rng.standard_normal((50, 2)), rng.standard_normal((60, 2))
    assert marginal_fit(z, w, rng=5) == marginal_fit(z, w, rng=5)
    assert marginal_fit(z, w, rng=5, permutations=50)["p_value"] >= 1 / 51


@pytest.mark.parametrize(
    "posterior, prior, message",
    [
        (np.zeros((10, 2)), np.zeros((10, 3)), "dimension 2, prior draws 3"),
        (np.zeros(10, int), np.zeros((10, 2)), "of one kind"),
        (np.zeros((10, 2)), np.full((10, 2), np.nan), "finite"),
        (np.zeros(1, int), np.zeros(10, int), "at least 2"),
        (-np.ones(10, int), np.zeros(10, int), "non-negative"),
        (np.zeros(10), np.zeros(10), "2-D"),
    ],
)
def test_bad_draws_are_refused_by_name(posterior, prior, message):
    with pytest.raises(UserInputError, match=message):
        marginal_fit(posterior, prior)
