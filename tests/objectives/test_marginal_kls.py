"""The two marginal KLs of a discrete latent, ``kl`` (:func:`aggregate_categorical_kl`) and ``kl_corrected``
(:func:`bias_corrected_categorical_kl`), against independent float64 computations, and the bias that the
correction removes, measured on minibatches drawn from a known population."""

import math

import numpy as np
import pytest
import torch

from infovae.objectives import aggregate_categorical_kl, bias_corrected_categorical_kl

pytestmark = pytest.mark.usefixtures("float64")

RNG = np.random.default_rng(0)
Q, P = RNG.dirichlet(np.ones(5), size=6), RNG.dirichlet(np.ones(5), size=6)


def t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def np_kl(q, p):
    """sum_k q_k log(q_k / p_k), term by term, 0 log 0 = 0."""
    return sum(qk * math.log(qk / pk) for qk, pk in zip(q, p) if qk > 0)


def np_aggregate_kl(q, p):
    q_bar = [sum(row[k] for row in q) / len(q) for k in range(q.shape[1])]
    p_bar = [sum(row[k] for row in p) / len(p) for k in range(p.shape[1])]
    return np_kl(q_bar, p_bar)


def np_corrected_kl(q, p):
    """The aggregate KL less (1/2B) sum_k (s_qq/q_k + q_k s_pp/p_k^2 - 2 s_qp/p_k), the sample
    (co)variances from numpy's own estimator."""
    B = len(q)
    q_bar, p_bar = q.mean(0), p.mean(0)
    bias = 0.0
    for k in range(q.shape[1]):
        (s_qq, s_qp), (_, s_pp) = np.cov(q[:, k], p[:, k], ddof=1)
        bias += s_qq / q_bar[k] + q_bar[k] * s_pp / p_bar[k] ** 2 - 2 * s_qp / p_bar[k]
    return np_aggregate_kl(q, p) - bias / (2 * B)


def test_aggregate_kl_is_the_kl_between_the_batch_means():
    assert aggregate_categorical_kl(t(Q), t(P)).item() == pytest.approx(np_aggregate_kl(Q, P), rel=1e-12)


def test_aggregate_kl_is_zero_for_equal_aggregates_and_ignores_classes_q_never_uses():
    # Different rows, the same means: the aggregates match exactly.
    q = np.array([[0.7, 0.3, 0.0], [0.1, 0.5, 0.4]])
    assert aggregate_categorical_kl(t(q), t(q[::-1].copy())).item() == pytest.approx(0.0, abs=1e-15)
    # q never uses the last class: it adds nothing (0 log 0), wherever p puts mass.
    q = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    p = np.full((2, 3), 1 / 3)
    assert aggregate_categorical_kl(t(q), t(p)).item() == pytest.approx(math.log(1.5), rel=1e-12)


def test_corrected_kl_matches_the_formula_with_a_learned_and_with_a_fixed_prior():
    assert bias_corrected_categorical_kl(t(Q), t(P)).item() == pytest.approx(np_corrected_kl(Q, P), rel=1e-12)
    fixed = np.tile(P[:1], (len(Q), 1))  # every row the same: the prior's variances are zero
    assert bias_corrected_categorical_kl(t(Q), t(fixed)).item() == pytest.approx(np_corrected_kl(Q, fixed), rel=1e-12)


def test_corrected_kl_of_one_hot_posteriors_subtracts_about_k_minus_1_over_2b():
    # One-hot rows, each class twice, a uniform prior: the aggregate KL is 0 and the estimated bias is
    # (1/2B) sum_k s_kk / q_k = (1/2B) * B/(B-1) * (K-1), so the result is exactly -(K-1)/(2(B-1)).
    K, B = 4, 8
    q = np.eye(K)[np.arange(B) % K]
    p = np.full((B, K), 1 / K)
    assert bias_corrected_categorical_kl(t(q), t(p)).item() == pytest.approx(-(K - 1) / (2 * (B - 1)), rel=1e-12)


def test_corrected_kl_needs_two_examples():
    with pytest.raises(ValueError, match="at least 2 examples"):
        bias_corrected_categorical_kl(t(Q[:1]), t(P[:1]))


def test_the_correction_removes_most_of_the_minibatch_kls_upward_bias():
    """Minibatches of B drawn from a population of confident posteriors whose aggregate is exactly the
    fixed uniform prior: the population's marginal KL is 0, the plain minibatch KL averages about
    (K-1)/(2B) (its bias), and the corrected one averages within a tenth of that of 0."""
    K, B, draws = 4, 16, 4000
    rng = np.random.default_rng(1)
    population = np.eye(K)[np.arange(400) % K] * 0.94 + 0.015  # rows sum to 1, aggregate uniform
    prior = t(np.full((B, K), 1 / K))
    plain, corrected = [], []
    for _ in range(draws):
        batch = t(population[rng.integers(len(population), size=B)])
        plain.append(aggregate_categorical_kl(batch, prior).item())
        corrected.append(bias_corrected_categorical_kl(batch, prior).item())
    # The first-order bias of the plain KL: (1/2B) sum_k Var(q_k) / mean(q_k), about (K-1)/(2B) here.
    first_order = (population.var(0) / population.mean(0)).sum() / (2 * B)
    se = np.std(plain) / math.sqrt(draws)
    assert abs(np.mean(plain) - first_order) < 4 * se + 0.1 * first_order
    assert abs(np.mean(corrected)) < 0.1 * np.mean(plain)
