"""The strategies generator: determinism, exact likelihoods, the Bayes ceiling and coverage."""

import itertools

import numpy as np
import pytest
from scipy.special import softmax

from infovae.data import StrategyGenerator, make_strategies


def test_deterministic_from_the_seed():
    a, _ = make_strategies(num_examples=50, seed=3)
    b, _ = make_strategies(num_examples=50, seed=3)
    c, _ = make_strategies(num_examples=50, seed=4)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.y, c.y)
    assert a.x.dtype == np.float32 and a.y.dtype == np.int64 and a.x.shape == (50, 12 * 3) and a.y.shape == (50, 12)


def test_likelihood_matches_a_direct_computation():
    g = StrategyGenerator(num_strategies=3, num_actions=4, horizon=3, context_dim=2, seed=1)
    x, y, _ = g.sample(5, seed=0)
    ctx = x.reshape(5, 3, 2)
    for i, s in itertools.product(range(5), range(3)):
        expected = sum(
            np.log(softmax(ctx[i, t] @ g.shared_weight + g.shared_bias + g.separation * (ctx[i, t] @ g.specific_weight[s] + g.specific_bias[s]))[y[i, t]])
            for t in range(3)
        )
        assert g.log_likelihood(x, y)[i, s] == pytest.approx(expected, rel=1e-12)


def test_labels_agree_with_the_likelihoods():
    data, g = make_strategies(num_examples=3000, seed=2)
    ll = g.log_likelihood(data.x, data.y)
    for s in range(4):
        assert ll[data.labels == s].mean(0).argmax() == s
    post = g.posterior(data.x, data.y)
    np.testing.assert_allclose(post.sum(-1), 1.0, rtol=1e-12)
    accuracy, expected = g.bayes_accuracy(data.x, data.y, data.labels), g.expected_bayes_accuracy(data.x, data.y)
    stderr = np.sqrt(expected * (1 - expected) / len(data))
    assert abs(accuracy - expected) < 4 * stderr
    assert 0.6 < expected < 0.99


def test_no_separation_means_chance():
    data, g = make_strategies(num_examples=500, separation=0.0, seed=0)
    assert g.expected_bayes_accuracy(data.x, data.y) == pytest.approx(0.25, abs=1e-12)


def test_bayes_ceiling_against_brute_force_enumeration():
    """Two steps, two actions: sum the Bayes classifier's accuracy over every action sequence."""
    g = StrategyGenerator(num_strategies=3, num_actions=2, horizon=2, context_dim=1, similar_pairs=0, mix=[0.5, 0.3, 0.2], seed=5)
    x = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    for i in range(4):
        xi = x[i : i + 1]
        step = np.exp(g.action_log_probs(xi))[0]  # [K, T, A]
        total = 0.0
        for a0, a1 in itertools.product(range(2), repeat=2):
            joint = g.mix * step[:, 0, a0] * step[:, 1, a1]  # p(s, y)
            total += joint.max()  # the Bayes classifier is right with probability max_s p(s, y)
        sequences = np.array(list(itertools.product(range(2), repeat=2)))
        post = g.posterior(np.repeat(xi, 4, 0), sequences)
        p_y = np.array([(g.mix * step[:, 0, a0] * step[:, 1, a1]).sum() for a0, a1 in sequences])
        assert (p_y * post.max(-1)).sum() == pytest.approx(total, rel=1e-12)


def test_coverage_of_generated_episodes():
    data, g = make_strategies(num_examples=4000, seed=6)
    assert g.coverage_tv(data.x, data.y) < 0.03
    x, y, _ = g.sample(4000, seed=7)
    only_strategy_3 = StrategyGenerator(seed=6)
    single = np.exp(only_strategy_3.action_log_probs(x)[:, 3])
    y_single = (np.random.default_rng(0).random((4000, 12, 1)) > np.cumsum(single, -1)).sum(-1).clip(max=4)
    # All episodes from one strategy: the generated mix is (near) one-hot, TV ~ 1 - 1/4.
    assert g.coverage_tv(x, y_single) == pytest.approx(0.75, abs=0.03)


def test_similar_pairs_are_closer_than_other_pairs():
    g = StrategyGenerator(num_strategies=4, similar_pairs=1, pair_distance=0.2, seed=8)
    x, _, _ = g.sample(500, seed=0)
    lp = g.action_log_probs(x)  # [n, K, T, A]
    p = np.exp(lp)

    def kl(a, b):
        return float((p[:, a] * (lp[:, a] - lp[:, b])).sum(-1).mean())

    assert kl(0, 1) < min(kl(a, b) for a, b in itertools.permutations(range(4), 2) if {a, b} != {0, 1})


def test_action_distributions():
    data, g = make_strategies(num_examples=100, seed=0)
    dists = g.action_distributions(data.x)
    assert dists.shape == (4, 12, 5)
    np.testing.assert_allclose(dists.sum(-1), 1.0, rtol=1e-12)


def test_bad_knobs():
    with pytest.raises(ValueError, match="similar_pairs=3 needs at least 6 strategies"):
        StrategyGenerator(num_strategies=4, similar_pairs=3)
    with pytest.raises(ValueError, match="mix must be"):
        StrategyGenerator(num_strategies=2, mix=[0.5, 0.6])
