r"""Behaviour episodes from K hidden strategies, with every strategy's exact likelihood.

An episode has T steps. At step t the agent sees a context :math:`x_t \in \mathbb R^c` (standard
normal) and picks one of A actions with

.. math:: p(a_t \mid x_t, s) = \mathrm{softmax}\big(x_t W_0 + b_0 + \sigma\,(x_t W_s + b_s)\big),

a strategy-independent part :math:`(W_0, b_0)` shared by all strategies plus a strategy-specific part
:math:`(W_s, b_s)` scaled by the *separation* :math:`\sigma` (0: the strategies are identical). The
strategy :math:`s` is drawn from ``mix`` and is the episode's label. ``similar_pairs`` pairs of
strategies are made deliberately alike: strategy ``2j+1``'s specific part is strategy ``2j``'s plus
noise of size ``pair_distance``.

Because every likelihood :math:`p(y \mid x, s)` is exact, so are the posterior over strategies, the
Bayes-optimal accuracy of predicting the strategy (the ceiling for any probe of a latent) and the
strategy mix of generated episodes.
"""

import numpy as np
from scipy.special import log_softmax, logsumexp, softmax

from infovae.data.base import Dataset

__all__ = ["StrategyGenerator", "make_strategies"]


class StrategyGenerator:
    """The generative process of the ``strategies`` data, with parameters drawn from ``seed``."""

    def __init__(
        self,
        num_strategies=4,
        num_actions=5,
        horizon=12,
        context_dim=3,
        separation=1.5,
        similar_pairs=1,
        pair_distance=0.3,
        mix=None,
        seed=0,
    ):
        if similar_pairs * 2 > num_strategies:
            raise ValueError(f"similar_pairs={similar_pairs} needs at least {2 * similar_pairs} strategies, got {num_strategies}")
        if mix is None:
            mix = np.full(num_strategies, 1.0 / num_strategies)
        mix = np.asarray(mix, dtype=float)
        if mix.shape != (num_strategies,) or (mix < 0).any() or not np.isclose(mix.sum(), 1.0):
            raise ValueError(f"mix must be {num_strategies} non-negative weights summing to one, got {mix}")
        self.num_strategies, self.num_actions, self.horizon, self.context_dim = num_strategies, num_actions, horizon, context_dim
        self.separation, self.mix = float(separation), mix
        rng = np.random.default_rng(seed)
        self.shared_weight = rng.standard_normal((context_dim, num_actions))
        self.shared_bias = rng.standard_normal(num_actions)
        weight = rng.standard_normal((num_strategies, context_dim, num_actions))
        bias = rng.standard_normal((num_strategies, num_actions))
        for j in range(similar_pairs):
            weight[2 * j + 1] = weight[2 * j] + pair_distance * rng.standard_normal((context_dim, num_actions))
            bias[2 * j + 1] = bias[2 * j] + pair_distance * rng.standard_normal(num_actions)
        self.specific_weight, self.specific_bias = weight, bias

    @property
    def strategy_mix(self):
        return self.mix.copy()

    def _contexts(self, x):
        return np.asarray(x, dtype=float).reshape(len(x), self.horizon, self.context_dim)

    def action_log_probs(self, x):
        """``log p(a_t = a | x_t, s)`` for every example, strategy, step and action: ``[n, K, T, A]``."""
        ctx = self._contexts(x)
        shared = ctx @ self.shared_weight + self.shared_bias  # [n, T, A]
        specific = np.einsum("ntc,kca->nkta", ctx, self.specific_weight) + self.specific_bias[None, :, None, :]
        return log_softmax(shared[:, None] + self.separation * specific, axis=-1)

    def sample(self, n, seed):
        """``n`` episodes: contexts ``x [n, T*c]`` (float32), actions ``y [n, T]`` and strategies ``[n]``."""
        rng = np.random.default_rng(seed)
        labels = rng.choice(self.num_strategies, size=n, p=self.mix)
        x = rng.standard_normal((n, self.horizon * self.context_dim)).astype(np.float32)
        probs = np.exp(self.action_log_probs(x)[np.arange(n), labels])  # [n, T, A]
        u = rng.random((n, self.horizon, 1))
        y = np.minimum((u > np.cumsum(probs, axis=-1)).sum(-1), self.num_actions - 1)
        return x, y.astype(np.int64), labels.astype(np.int64)

    def log_likelihood(self, x, y):
        """Exact ``log p(y | x, s)`` of each episode under each strategy: ``[n, K]``."""
        log_probs = self.action_log_probs(x)  # [n, K, T, A]
        y = np.asarray(y, dtype=np.int64)
        taken = np.take_along_axis(log_probs, y[:, None, :, None], axis=-1)[..., 0]  # [n, K, T]
        return taken.sum(-1)

    def posterior(self, x, y):
        """``p(s | x, y)`` with the strategy mix as prior: ``[n, K]``."""
        with np.errstate(divide="ignore"):
            return softmax(self.log_likelihood(x, y) + np.log(self.mix), axis=-1)

    def bayes_accuracy(self, x, y, labels):
        """Accuracy of the Bayes-optimal strategy classifier (``argmax`` posterior) on labelled episodes."""
        return float(np.mean(self.posterior(x, y).argmax(-1) == np.asarray(labels)))

    def expected_bayes_accuracy(self, x, y):
        """The Bayes classifier's expected accuracy, ``mean max_s p(s|x,y)``: the ceiling for any probe,
        estimated without the labels' noise."""
        return float(np.mean(self.posterior(x, y).max(-1)))

    def coverage_tv(self, x, y_generated):
        """Total variation between the true strategy mix and the strategy mix of generated episodes.

        Each generated episode counts by its posterior over strategies (a soft assignment, so that an
        episode that two similar strategies explain equally well is split between them rather than
        forced to one), and the mix of the generated data is the mean posterior.
        """
        generated_mix = self.posterior(x, y_generated).mean(0)
        return float(0.5 * np.abs(generated_mix - self.mix).sum())

    def action_distributions(self, x):
        """Each strategy's action distribution at each step, averaged over the contexts ``x``: ``[K, T, A]``."""
        return np.exp(self.action_log_probs(x)).mean(0)

    def log_marginal_likelihood(self, x, y):
        """``log p(y | x) = log sum_s mix_s p(y | x, s)``: the best any model of the data can score."""
        with np.errstate(divide="ignore"):
            return logsumexp(self.log_likelihood(x, y) + np.log(self.mix), axis=-1)


def make_strategies(
    num_examples=20000,
    num_strategies=4,
    num_actions=5,
    horizon=12,
    context_dim=3,
    separation=1.5,
    similar_pairs=1,
    pair_distance=0.3,
    seed=0,
):
    """The ``strategies`` data set and its generator, both determined by ``seed``."""
    generator = StrategyGenerator(
        num_strategies=num_strategies,
        num_actions=num_actions,
        horizon=horizon,
        context_dim=context_dim,
        separation=separation,
        similar_pairs=similar_pairs,
        pair_distance=pair_distance,
        seed=seed,
    )
    x, y, labels = generator.sample(num_examples, seed=(seed, 1))
    data = Dataset(
        x=x,
        y=y,
        labels=labels,
        likelihood="categorical",
        num_classes=num_actions,
        name="strategies",
        info={"horizon": horizon, "context_dim": context_dim, "num_actions": num_actions, "label_name": "strategy"},
    )
    return data, generator
