"""The divergence functions against independent numpy computations, in float64."""

import math

import numpy as np
import pytest
import torch

from infovae.objectives import (
    DEFAULT_KERNEL_SCALES,
    categorical_kl,
    jensen_shannon,
    mmd,
    moment_matched_kl,
    monte_carlo_jensen_shannon,
)

pytestmark = pytest.mark.usefixtures("float64")


def t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def np_kernel(a, b, kernel, base, scales):
    """k(a_i, b_j) by explicit differences, no matrix-product shortcut."""
    sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    if kernel == "imq":
        return sum(base * s / (base * s + sq) for s in scales)
    return sum(np.exp(-sq / (base * s)) for s in scales)


def np_mmd(x, y, kernel="imq", scales=DEFAULT_KERNEL_SCALES, base=None):
    n, m = len(x), len(y)
    base = 2.0 * x.shape[1] if base is None else base
    kxx, kyy, kxy = (np_kernel(a, b, kernel, base, scales) for a, b in ((x, x), (y, y), (x, y)))
    off = lambda k: k.sum() - np.trace(k)  # noqa: E731
    return off(kxx) / (n * (n - 1)) + off(kyy) / (m * (m - 1)) - 2 * kxy.sum() / (n * m)


# -- categorical_kl ---------------------------------------------------------------------------


def test_categorical_kl_matches_hand_computation():
    q, p = np.array([0.2, 0.5, 0.3]), np.array([0.1, 0.6, 0.3])
    expected = 0.2 * math.log(2.0) + 0.5 * math.log(5 / 6)
    assert categorical_kl(t(q), t(p)).item() == pytest.approx(expected, rel=1e-12)


def test_categorical_kl_edge_cases():
    p = t([0.25, 0.25, 0.5])
    assert categorical_kl(p, p).item() == 0.0
    # One-hot q: KL = -log p_c, and the zero entries of q contribute nothing.
    assert categorical_kl(t([0.0, 0.0, 1.0]), p).item() == pytest.approx(math.log(2.0), rel=1e-12)
    # Disjoint supports.
    assert categorical_kl(t([1.0, 0.0]), t([0.0, 1.0])).item() == math.inf


def test_categorical_kl_batches():
    rng = np.random.default_rng(0)
    q, p = rng.dirichlet(np.ones(4), size=5), rng.dirichlet(np.ones(4), size=5)
    expected = (q * np.log(q / p)).sum(-1)
    np.testing.assert_allclose(categorical_kl(t(q), t(p)).numpy(), expected, rtol=1e-12)


# -- moment_matched_kl ------------------------------------------------------------------------


def np_aggregate(loc, scale):
    """mean_i(diag(s_i^2) + m_i m_i^T) - m m^T, literally."""
    mean = loc.mean(0)
    second = np.mean([np.diag(s**2) + np.outer(m, m) for m, s in zip(loc, scale)], axis=0)
    return mean, second - np.outer(mean, mean)


def np_gauss_kl(m0, S0, m1, S1):
    d = len(m0)
    S1inv = np.linalg.inv(S1)
    return 0.5 * (np.trace(S1inv @ S0) + (m1 - m0) @ S1inv @ (m1 - m0) - d + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])


def test_moment_matched_kl_standard_normal_prior():
    rng = np.random.default_rng(1)
    loc, scale = rng.normal(size=(7, 3)), rng.uniform(0.2, 1.5, size=(7, 3))
    m, S = np_aggregate(loc, scale)
    expected = np_gauss_kl(m, S, np.zeros(3), np.eye(3))
    assert moment_matched_kl(t(loc), t(scale)).item() == pytest.approx(expected, rel=1e-10)


def test_moment_matched_kl_conditional_prior():
    rng = np.random.default_rng(2)
    loc, scale = rng.normal(size=(6, 2)), rng.uniform(0.2, 1.5, size=(6, 2))
    ploc, pscale = rng.normal(size=(6, 2)), rng.uniform(0.5, 2.0, size=(6, 2))
    expected = np_gauss_kl(*np_aggregate(loc, scale), *np_aggregate(ploc, pscale))
    got = moment_matched_kl(t(loc), t(scale), t(ploc), t(pscale)).item()
    assert got == pytest.approx(expected, rel=1e-10)


def test_moment_matched_kl_is_zero_when_moments_match():
    # Locations at the corners (+-a, +-a) with variance 1 - a^2: the aggregate has exactly the
    # moments of N(0, I).
    a = 0.6
    loc = t([[a, a], [a, -a], [-a, a], [-a, -a]])
    scale = torch.full((4, 2), math.sqrt(1 - a * a))
    assert abs(moment_matched_kl(loc, scale).item()) < 1e-12


def test_moment_matched_kl_bad_shapes():
    with pytest.raises(ValueError, match="loc and scale"):
        moment_matched_kl(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="both prior_loc and prior_scale"):
        moment_matched_kl(torch.zeros(3, 2), torch.ones(3, 2), prior_loc=torch.zeros(3, 2))


# -- mmd --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_matches_brute_force(kernel):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(9, 4)), rng.normal(1.0, 2.0, size=(6, 4))
    assert mmd(t(x), t(y), kernel=kernel).item() == pytest.approx(np_mmd(x, y, kernel), rel=1e-10)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_bandwidths(kernel):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(8, 2)), rng.normal(0.5, 1.0, size=(5, 2))
    pooled = np.concatenate([x, y])
    sq = ((pooled[:, None] - pooled[None]) ** 2).sum(-1)
    median = np.median(sq[np.triu_indices(len(pooled), k=1)])
    scales = (0.5, 1.0, 3.0)
    got = mmd(t(x), t(y), kernel=kernel, scales=scales, bandwidth="median").item()
    assert got == pytest.approx(np_mmd(x, y, kernel, scales, base=median), rel=1e-10)
    got = mmd(t(x), t(y), kernel=kernel, scales=scales, bandwidth=0.7).item()
    assert got == pytest.approx(np_mmd(x, y, kernel, scales, base=0.7), rel=1e-10)


def test_mmd_identical_and_separated_samples():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, 2))
    # The same points on both sides: the U-statistic is slightly negative, not zero.
    same = mmd(t(x), t(x)).item()
    assert same == pytest.approx(np_mmd(x, x), rel=1e-10)
    assert same < 0
    far = mmd(t(x), t(x + 50.0)).item()
    assert far > 1.0


@pytest.mark.parametrize("flush_denormal", [False, True])
def test_mmd_single_identical_point_with_median_bandwidth_is_finite(flush_denormal):
    """Identical points: zero, also with kernel scales below 1 where subnormals are flushed to 0 (as they
    are while the Pyro backend trains)."""
    x = torch.ones(3, 2)
    torch.set_flush_denormal(flush_denormal)
    try:
        for scales in (None, (0.1, 0.2, 0.5, 1.0)):
            kwargs = {} if scales is None else {"scales": scales}
            assert mmd(x, x, bandwidth="median", **kwargs).item() == pytest.approx(0.0, abs=1e-12)
    finally:
        torch.set_flush_denormal(False)


def test_mmd_errors():
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match="at least 2 draws"):
        mmd(x[:1], x)
    with pytest.raises(ValueError, match="at least 2 draws"):
        mmd(x, x[:1])
    with pytest.raises(ValueError, match="kernel must be one of"):
        mmd(x, x, kernel="laplace")
    with pytest.raises(ValueError, match="kernel scales"):
        mmd(x, x, scales=(1.0, -2.0))
    with pytest.raises(ValueError, match="kernel scales"):
        mmd(x, x, scales=())
    with pytest.raises(ValueError, match="bandwidth"):
        mmd(x, x, bandwidth="mean")
    with pytest.raises(ValueError, match="same d"):
        mmd(x, torch.randn(5, 3))


def test_mmd_gradient_is_finite_at_coincident_points():
    x = torch.zeros(4, 2, requires_grad=True)
    mmd(x, torch.randn(4, 2)).backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.slow
@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_mmd_is_unbiased(shift):
    """The mean of many minibatch estimates matches a large-sample value within its standard error,
    while the biased V-statistic (diagonal kept) is rejected by the same test."""
    gen = torch.Generator().manual_seed(6)
    n, reps, d = 8, 3000, 2
    x = torch.randn(reps, n, d, generator=gen)
    y = torch.randn(reps, n, d, generator=gen) * 1.3 + shift
    estimates = torch.stack([mmd(x[r], y[r]) for r in range(reps)])
    big_x, big_y = torch.randn(3000, d, generator=gen), torch.randn(3000, d, generator=gen) * 1.3 + shift
    reference = mmd(big_x, big_y).item()
    stderr = estimates.std().item() / math.sqrt(reps)
    assert abs(estimates.mean().item() - reference) < 4 * stderr + 2e-3

    # The V-statistic keeps the i == j terms; its bias is what the U-statistic removes.
    v_stat = torch.stack([_v_statistic(x[r], y[r]) for r in range(reps)])
    assert abs(v_stat.mean().item() - reference) > 10 * stderr


def _v_statistic(x, y):
    k = lambda a, b: sum(  # noqa: E731
        2 * a.shape[1] * s / (2 * a.shape[1] * s + ((a[:, None] - b[None]) ** 2).sum(-1)) for s in DEFAULT_KERNEL_SCALES
    )
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


# -- jensen_shannon ---------------------------------------------------------------------------


def np_entropy(p):
    p = np.asarray(p)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def test_jensen_shannon_matches_definition():
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.ones(5), size=(3, 4))  # K=3 distributions, batch 4, C=5
    w = np.array([0.2, 0.3, 0.5])
    mixture = np.einsum("k,kbc->bc", w, probs)
    expected = np_entropy(mixture) - np.einsum("k,kb->b", w, np_entropy(probs))
    np.testing.assert_allclose(jensen_shannon(t(probs), t(w)).numpy(), expected, rtol=1e-12)


def test_jensen_shannon_per_example_weights():
    rng = np.random.default_rng(8)
    probs = rng.dirichlet(np.ones(3), size=(4, 6, 2))  # K=4, batch [6, 2], C=3
    w = rng.dirichlet(np.ones(4), size=6).T  # [K, 6], broadcast over the last batch dim
    mixture = np.einsum("kb,kbfc->bfc", w, probs)
    expected = np_entropy(mixture) - np.einsum("kb,kbf->bf", w, np_entropy(probs))
    np.testing.assert_allclose(jensen_shannon(t(probs), t(w)).numpy(), expected, rtol=1e-12)


def test_jensen_shannon_bounds_and_edge_cases():
    w = t([0.1, 0.6, 0.3])
    h_w = -(w * w.log()).sum().item()
    same = torch.tensor([0.3, 0.7]).expand(3, 2)
    assert jensen_shannon(same, w).item() == pytest.approx(0.0, abs=1e-15)
    # Disjoint one-hots reach the bound H(pi).
    disjoint = torch.eye(3)
    assert jensen_shannon(disjoint, w).item() == pytest.approx(h_w, rel=1e-12)
    rng = np.random.default_rng(9)
    random = t(rng.dirichlet(np.ones(4) * 0.3, size=(3, 50)))
    values = jensen_shannon(random, w)
    assert (values >= -1e-12).all() and (values <= h_w + 1e-12).all() and h_w <= math.log(3)


def test_jensen_shannon_from_log_probabilities():
    rng = np.random.default_rng(11)
    log_probs = t(np.log(rng.dirichlet(np.ones(4), size=(3, 6))))
    w = t([0.2, 0.3, 0.5])
    plain = jensen_shannon(log_probs.exp(), w)
    torch.testing.assert_close(jensen_shannon(log_probs.exp(), w, log_probs=log_probs), plain, rtol=1e-12, atol=0)
    # A class whose probability underflows to 0 (log-probability -800) still counts in p log p from the
    # log-probabilities: -800 * exp(-800) is 0 in float64 either way, so the value is the definition's.
    tiny = torch.log_softmax(t([[0.0, -800.0], [-800.0, 0.0]]), -1)
    value = jensen_shannon(tiny.exp(), t([0.5, 0.5]), log_probs=tiny)
    assert value.item() == pytest.approx(math.log(2), rel=1e-12)
    # Its gradient through the log-probabilities stays finite where exp(log p) underflows.
    logits = t([[0.0, -800.0], [-800.0, 0.0]]).requires_grad_()
    log_p = torch.log_softmax(logits, -1)
    jensen_shannon(log_p.exp(), t([0.5, 0.5]), log_probs=log_p).backward()
    assert torch.isfinite(logits.grad).all()


def test_jensen_shannon_errors():
    with pytest.raises(ValueError, match="at least 2 distributions"):
        jensen_shannon(torch.ones(1, 3) / 3, torch.ones(1))
    with pytest.raises(ValueError, match="weights has 2 entries"):
        jensen_shannon(torch.ones(3, 2) / 2, torch.ones(2) / 2)


def test_monte_carlo_jensen_shannon_is_unbiased_for_categoricals():
    gen = torch.Generator().manual_seed(10)
    probs = t([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    w = t([0.4, 0.6])
    exact = jensen_shannon(probs, w).item()
    draws = torch.stack([torch.multinomial(p, 20000, replacement=True, generator=gen) for p in probs])  # [K, R]
    cross = probs.log()[:, draws].permute(1, 0, 2)  # cross[k, j, r] = log p_j(y_kr)
    estimates = monte_carlo_jensen_shannon(cross, w)
    stderr = estimates.std().item() / math.sqrt(estimates.numel())
    assert abs(estimates.mean().item() - exact) < 4 * stderr


def test_monte_carlo_jensen_shannon_of_identical_distributions_is_zero():
    cross = torch.full((3, 3, 5), -1.7)
    assert torch.allclose(monte_carlo_jensen_shannon(cross, torch.ones(3) / 3), torch.zeros(5), atol=1e-14)


# -- random-feature MMD -----------------------------------------------------------------------


def test_random_feature_mmd_matches_its_kernel_exactly():
    """With fixed frequencies the estimate is the U-statistic of the kernel mean_j cos(w_j (a - b))."""
    from infovae.objectives.divergences import random_feature_mmd

    rng = np.random.default_rng(11)
    x, y, freq = rng.normal(size=(6, 2)), rng.normal(size=(5, 2)), rng.normal(size=(3, 2, 4))
    k = lambda a, b: sum(np.cos((a[:, None] - b[None]) @ freq[s]).mean(-1) for s in range(3))  # noqa: E731
    off = lambda m: m.sum() - np.trace(m)  # noqa: E731
    expected = off(k(x, x)) / 30 + off(k(y, y)) / 20 - 2 * k(x, y).mean()
    assert random_feature_mmd(t(x), t(y), t(freq)).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_random_feature_mmd_is_unbiased_for_the_exact_statistic(kernel):
    gen = torch.Generator().manual_seed(12)
    x, y = torch.randn(200, 3, generator=gen), torch.randn(200, 3, generator=gen) * 1.4 + 0.2
    exact = mmd(x, y, kernel).item()
    torch.manual_seed(13)
    estimates = torch.stack([mmd(x, y, kernel, num_features=16) for _ in range(3000)])
    stderr = estimates.std().item() / math.sqrt(len(estimates))
    assert abs(estimates.mean().item() - exact) < 4 * stderr


def test_random_feature_mmd_arguments():
    with pytest.raises(ValueError, match="num_features must be a positive integer"):
        mmd(torch.randn(4, 2), torch.randn(4, 2), num_features=0)


def test_gradients_stay_finite_when_a_softmax_saturates():
    """Confident decoders reach exact zeros in float32; the JSD and KL must still give finite gradients."""
    logits = torch.tensor([[30.0, -30.0], [-30.0, 30.0]], dtype=torch.float32, requires_grad=True)
    probs = torch.sigmoid(logits)
    assert (probs == 1.0).any() and ((1 - probs) == 0.0).any()
    jsd = jensen_shannon(torch.stack([1 - probs, probs], -1), torch.tensor([0.5, 0.5]))
    kl = categorical_kl(torch.stack([1 - probs[0], probs[0]], -1), torch.tensor([[0.5, 0.5]]))
    (jsd.sum() + kl.sum()).backward()
    assert torch.isfinite(logits.grad).all()
