"""The strategies generator: determinism, exact likelihoods, the Bayes ceiling and coverage."""

import itertools

import numpy as np
import pytest

from infovae.data import StrategyGenerator, make_strategies


def softmax_by_hand(logits):
    e = np.exp(logits - logits.max())
    return e / e.sum()


def step_probs_by_hand(g, context, s):
    """``p(a | x_t, s)`` from the generator's parameters, one step at a time, without its own code."""
    logits = context @ g.shared_weight + g.shared_bias + g.separation * (context @ g.specific_weight[s] + g.specific_bias[s])
    return softmax_by_hand(logits)


def test_deterministic_from_the_seed():
    a, ga = make_strategies(num_examples=50, seed=3)
    b, gb = make_strategies(num_examples=50, seed=3)
    c, _ = make_strategies(num_examples=50, seed=4)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(ga.specific_weight, gb.specific_weight)
    assert not np.array_equal(a.y, c.y)
    assert a.x.dtype == np.float32 and a.y.dtype == np.int64 and a.labels.dtype == np.int64
    assert a.x.shape == (50, 12 * 3) and a.y.shape == (50, 12) and a.y.min() >= 0 and a.y.max() < 5
    assert a.likelihood == "categorical" and a.num_classes == 5 and a.name == "strategies"
    assert a.info["horizon"] == 12 and a.info["context_dim"] == 3 and a.info["num_actions"] == 5


def test_sample_takes_a_seed_or_a_generator():
    g = StrategyGenerator(seed=0)
    by_seed = g.sample(20, 5)
    by_rng = g.sample(20, np.random.default_rng(5))
    for a, b in zip(by_seed, by_rng):
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(5)
    assert not np.array_equal(g.sample(20, rng)[1], g.sample(20, rng)[1])  # a generator's stream moves on


def test_likelihood_matches_a_direct_computation():
    g = StrategyGenerator(num_strategies=3, num_actions=4, horizon=3, context_dim=2, seed=1)
    x, y, _ = g.sample(5, 0)
    ctx = x.reshape(5, 3, 2).astype(float)
    ll = g.log_likelihood(x, y)
    for i, s in itertools.product(range(5), range(3)):
        expected = sum(np.log(step_probs_by_hand(g, ctx[i, t], s)[y[i, t]]) for t in range(3))
        assert ll[i, s] == pytest.approx(expected, rel=1e-12)


def test_sampled_actions_follow_the_action_distributions():
    g = StrategyGenerator(num_strategies=2, num_actions=3, horizon=2, context_dim=1, seed=2)
    x = np.repeat(np.array([[0.3, -1.2]], dtype=np.float32), 20000, axis=0)
    y = g.sample_actions(x, np.ones(20000, dtype=int), rng=0)
    expected = np.exp(g.action_log_probs(x[:1]))[0, 1]  # [T, A]
    for t in range(2):
        frequencies = np.bincount(y[:, t], minlength=3) / 20000
        np.testing.assert_allclose(frequencies, expected[t], atol=4 * np.sqrt(0.25 / 20000))


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
    assert 0.6 < expected < 0.99  # the defaults: clearly below 1, well above chance (0.25)


def test_no_separation_means_chance():
    data, g = make_strategies(num_examples=500, separation=0.0, seed=0)
    np.testing.assert_allclose(g.posterior(data.x, data.y), 0.25, rtol=1e-12)
    assert g.expected_bayes_accuracy(data.x, data.y) == pytest.approx(0.25, abs=1e-12)
    skewed = StrategyGenerator(separation=0.0, mix=[0.1, 0.2, 0.3, 0.4])
    x, y, _ = skewed.sample(200, 0)
    assert skewed.expected_bayes_accuracy(x, y) == pytest.approx(0.4, abs=1e-12)  # the prior's mode


@pytest.mark.parametrize("mix", [None, [0.5, 0.3, 0.2], [0.7, 0.0, 0.3]])
def test_bayes_ceiling_against_brute_force_enumeration(mix):
    """Two steps, two actions: the Bayes classifier's exact accuracy, summed over every action sequence.

    Exact: ``sum_y p(y|x) max_s p(s|x,y) = sum_y max_s p(s) p(y|x,s)``, the right side from the
    parameters by hand, the left side from the library: each sequence's ``expected_bayes_accuracy``
    (its max posterior) weighed by the library's ``p(y|x)``.
    """
    g = StrategyGenerator(num_strategies=3, num_actions=2, horizon=2, context_dim=1, similar_pairs=1, mix=mix, seed=5)
    prior = g.strategy_mix
    sequences = np.array(list(itertools.product(range(2), repeat=2)))
    for context in np.random.default_rng(0).standard_normal((4, 2)):
        steps = [[step_probs_by_hand(g, context[t : t + 1], s) for t in range(2)] for s in range(3)]
        by_hand = sum(max(prior[s] * steps[s][0][a0] * steps[s][1][a1] for s in range(3)) for a0, a1 in sequences)
        x = np.repeat(context[None], len(sequences), axis=0)
        p_y = np.exp(g.log_marginal_likelihood(x, sequences))
        assert p_y.sum() == pytest.approx(1.0, rel=1e-12)
        max_posterior = np.array([g.expected_bayes_accuracy(x[i : i + 1], sequences[i : i + 1]) for i in range(len(x))])
        assert (p_y * max_posterior).sum() == pytest.approx(by_hand, rel=1e-12)
        # Never worse than always guessing the likeliest strategy (equal, up to rounding, where it always wins).
        assert by_hand >= prior.max() * (1 - 1e-12)


def test_coverage_of_generated_episodes():
    data, g = make_strategies(num_examples=4000, seed=6)
    assert g.coverage_tv(data.x, data.y) < 0.03
    x, _, _ = g.sample(4000, 7)
    y_single = g.sample_actions(x, np.full(4000, 3), rng=0)
    posterior_of_3 = g.posterior(x, y_single)[:, 3].mean()
    # All episodes from strategy 3: the generated mix is (near) one-hot, TV ~ 1 - 1/4.
    assert g.coverage_tv(x, y_single) == pytest.approx(posterior_of_3 - 0.25, rel=1e-12)
    assert g.coverage_tv(x, y_single) == pytest.approx(0.75, abs=0.03)
    skewed = StrategyGenerator(seed=6, mix=[0.4, 0.3, 0.2, 0.1])
    x, y, _ = skewed.sample(4000, 8)
    assert skewed.coverage_tv(x, y) < 0.03 and g.coverage_tv(x, y) == pytest.approx(0.2, abs=0.03)


def test_similar_pairs_are_closer_than_other_pairs():
    g = StrategyGenerator(num_strategies=6, similar_pairs=2, pair_distance=0.2, seed=8)
    x, _, _ = g.sample(500, 0)
    kl = g.strategy_divergences(x)
    assert kl.shape == (6, 6) and np.allclose(np.diag(kl), 0) and (kl >= 0).all()
    pairs = {(0, 1), (1, 0), (2, 3), (3, 2)}
    others = [kl[a, b] for a, b in itertools.permutations(range(6), 2) if (a, b) not in pairs]
    assert max(kl[a, b] for a, b in pairs) < min(others)
    # the divergence is the per-step mean KL of the action distributions
    lp = g.action_log_probs(x)
    assert kl[0, 2] == pytest.approx((np.exp(lp[:, 0]) * (lp[:, 0] - lp[:, 2])).sum(-1).mean(), rel=1e-12)


def test_action_distributions():
    data, g = make_strategies(num_examples=100, seed=0)
    dists = g.action_distributions(data.x)
    assert dists.shape == (4, 12, 5)
    np.testing.assert_allclose(dists.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(dists[2, 0], np.mean([step_probs_by_hand(g, c, 2) for c in data.x[:, :3].astype(float)], 0))


@pytest.mark.parametrize(
    "knobs, message",
    [
        (dict(num_strategies=4, similar_pairs=3), "similar_pairs=3 needs at least 6 strategies"),
        (dict(num_strategies=2, mix=[0.5, 0.6]), "mix must be"),
        (dict(num_strategies=2, mix=[0.5, 0.25, 0.25]), "mix must be"),
        (dict(num_actions=1), "num_actions must be an integer >= 2"),
        (dict(horizon=0), "horizon must be an integer >= 1"),
        (dict(separation=-1.0), "separation must be a finite number >= 0"),
        (dict(pair_distance=float("nan")), "pair_distance must be a finite number >= 0"),
    ],
)
def test_bad_knobs(knobs, message):
    with pytest.raises(ValueError, match=message):
        StrategyGenerator(**knobs)


def test_bad_episodes():
    g = StrategyGenerator()
    x, y, _ = g.sample(3, 0)
    with pytest.raises(ValueError, match=r"x must have shape \[n, 36\]"):
        g.log_likelihood(x[:, :-1], y)
    with pytest.raises(ValueError, match=r"y must have shape \[3, 12\]"):
        g.posterior(x, y[:, :-1])
    with pytest.raises(ValueError, match="actions in 0..4"):
        g.posterior(x, y + 5)
    with pytest.raises(ValueError, match="strategies must be 3 integers in 0..3"):
        g.sample_actions(x, [0, 1, 4])


# -- contexts informative about the strategy (context_shift) ------------------------------------------


def test_no_context_shift_gives_the_data_of_before():
    """``context_shift=0`` (the default) draws the same parameters and episodes as the generator did
    before the knob existed: the old sampling written out by hand, on the same streams."""
    data, g = make_strategies(num_examples=300, seed=3)
    same, g0 = make_strategies(num_examples=300, seed=3, context_shift=0.0)
    for a, b in zip((data.x, data.y, data.labels), (same.x, same.y, same.labels)):
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(g.shared_weight, rng.standard_normal((3, 5)))
    rng = np.random.default_rng((3, 1))
    labels = rng.choice(4, size=300, p=np.full(4, 0.25)).astype(np.int64)
    x = rng.standard_normal((300, 36)).astype(np.float32)
    y = g.sample_actions(x, labels, rng)
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.y, y)
    np.testing.assert_allclose(np.exp(g.label_log_prior(data.x)), 0.25, rtol=1e-12)
    # A shift changes the contexts only: the behaviour's parameters and the labels stay the same.
    shifted, gs = make_strategies(num_examples=300, seed=3, context_shift=0.5)
    for name in ("shared_weight", "shared_bias", "specific_weight", "specific_bias", "context_means"):
        np.testing.assert_array_equal(getattr(g, name), getattr(gs, name))
    np.testing.assert_array_equal(shifted.labels, data.labels)
    np.testing.assert_allclose(shifted.x, data.x + 0.5 * np.tile(g.context_means, 12)[data.labels], atol=1e-6)


def test_shifted_contexts_follow_their_strategy_mean():
    g = StrategyGenerator(context_shift=0.7, seed=4)
    x, _, labels = g.sample(20000, 0)
    ctx = x.reshape(-1, 12, 3).astype(float)
    for s in range(4):
        mine = ctx[labels == s]
        np.testing.assert_allclose(mine.mean((0, 1)), 0.7 * g.context_means[s], atol=4 / np.sqrt(12 * len(mine)))
        np.testing.assert_allclose(mine.reshape(-1, 3).std(0), 1.0, atol=0.02)


@pytest.mark.parametrize("mix", [None, [0.5, 0.3, 0.2], [0.7, 0.0, 0.3]])
def test_posterior_with_shifted_contexts_against_brute_force(mix):
    """``p(s | x)``, ``p(s | x, y)`` and ``p(y | x)`` from the parameters by hand: Gaussian densities of
    every context and softmax action probabilities of every step, without the generator's own code."""
    g = StrategyGenerator(num_strategies=3, num_actions=3, horizon=3, context_dim=2, mix=mix, context_shift=0.8, seed=5)
    x, y, _ = g.sample(6, 1)
    ctx = x.reshape(6, 3, 2).astype(float)
    prior = g.strategy_mix
    for i in range(6):
        with np.errstate(divide="ignore"):
            log_px = np.array([
                sum(-0.5 * ((ctx[i, t] - 0.8 * g.context_means[s]) ** 2).sum() - np.log(2 * np.pi) for t in range(3))
                for s in range(3)
            ])  # fmt: skip
        joint_x = prior * np.exp(log_px)  # p(s, x)
        p_s_given_x = joint_x / joint_x.sum()
        lik = np.array([np.prod([step_probs_by_hand(g, ctx[i, t], s)[y[i, t]] for t in range(3)]) for s in range(3)])
        np.testing.assert_allclose(np.exp(g.label_log_prior(x[i : i + 1]))[0], p_s_given_x, rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(
            g.posterior(x[i : i + 1], y[i : i + 1])[0], p_s_given_x * lik / (p_s_given_x * lik).sum(), rtol=1e-10
        )
        assert g.log_marginal_likelihood(x[i : i + 1], y[i : i + 1])[0] == pytest.approx(
            np.log((p_s_given_x * lik).sum()), rel=1e-10
        )
    # p(y | x) is still a distribution over the action sequences, for any contexts
    sequences = np.array(list(itertools.product(range(3), repeat=3)))
    p_y = np.exp(g.log_marginal_likelihood(np.repeat(x[:1], len(sequences), axis=0), sequences))
    assert p_y.sum() == pytest.approx(1.0, rel=1e-10)


def test_bayes_accuracy_rises_with_the_context_shift():
    from_x, from_xy = [], []
    for shift in (0.0, 0.3, 0.6, 1.0):
        data, g = make_strategies(num_examples=4000, seed=0, context_shift=shift)
        from_x.append(np.exp(g.label_log_prior(data.x)).max(-1).mean())
        from_xy.append(g.expected_bayes_accuracy(data.x, data.y))
        accuracy = g.bayes_accuracy(data.x, data.y, data.labels)
        assert abs(accuracy - from_xy[-1]) < 4 * np.sqrt(from_xy[-1] * (1 - from_xy[-1]) / 4000) + 1e-3
        assert g.coverage_tv(data.x, data.y) < 0.03  # true episodes, with p(s | x) as the prior: near 0
    assert from_x[0] == pytest.approx(0.25, abs=1e-12)
    assert all(a < b for a, b in zip(from_x, from_x[1:])) and all(a < b for a, b in zip(from_xy, from_xy[1:]))
    assert all(a < b for a, b in zip(from_x, from_xy))  # y still tells more than x alone


def test_context_shift_in_the_config_section():
    from infovae.data.strategies import StrategiesData

    assert StrategiesData().context_shift == 0.0
    assert StrategiesData(context_shift=0.5).context_shift == 0.5
    with pytest.raises(ValueError):
        StrategiesData(context_shift=-0.1)
    with pytest.raises(ValueError, match="context_shift must be a finite number >= 0"):
        StrategyGenerator(context_shift=float("inf"))
