r"""Behaviour episodes from K hidden strategies, with every strategy's exact likelihood.

An episode has T steps. At step t the agent sees a context :math:`x_t \in \mathbb R^c` (standard
normal) and picks one of A actions with

.. math:: p(a_t \mid x_t, s) = \mathrm{softmax}\big(x_t W_0 + b_0 + \sigma\,(x_t W_s + b_s)\big),

a strategy-independent part :math:`(W_0, b_0)` shared by all strategies plus a strategy-specific part
:math:`(W_s, b_s)` scaled by the *separation* :math:`\sigma` (0: the strategies are identical). The
strategy :math:`s` is drawn from ``mix`` and is the episode's label. ``similar_pairs`` pairs of
strategies are made deliberately alike: strategy ``2j+1``'s specific part is strategy ``2j``'s plus
Gaussian noise of scale ``pair_distance``.

With ``context_shift`` :math:`\mu > 0` the contexts are informative about the strategy too: strategy
:math:`s` has a mean vector :math:`m_s \in \mathbb R^c` (standard normal), and every context of an
episode of strategy :math:`s` is drawn from :math:`N(\mu\, m_s, I)`. Then :math:`p(s \mid x) \propto
\mathrm{mix}_s \prod_t N(x_t; \mu\, m_s, I)` (:meth:`StrategyGenerator.label_log_prior`), and the
posterior over strategies is :math:`p(s \mid x, y) \propto p(s \mid x)\, p(y \mid x, s)`. With
:math:`\mu = 0` (the default) the contexts are standard normal and carry no information about the
strategy.

Because every likelihood :math:`p(y \mid x, s)` (and :math:`p(x \mid s)`) is exact, so are the posterior over strategies, the
Bayes-optimal accuracy of predicting the strategy (the ceiling for any probe of a latent) and the
strategy mix of generated episodes.

With the defaults (4 strategies, 5 actions, 12 steps, 3-d contexts, separation 1.5, one similar pair
at distance 0.3) the Bayes ceiling is about 0.92 (chance: 0.25); nearly all of the Bayes classifier's
errors confuse the two members of the similar pair.
"""

from typing import Literal

import numpy as np
from pydantic import Field

from infovae.core.arguments import check_count, check_weight
from infovae.data.base import Dataset
from infovae.data.registry import DataKind, DataSection, register_data
from infovae.errors import DataError

__all__ = ["StrategiesData", "StrategyGenerator", "make_strategies"]


class StrategyGenerator:
    """The generative process of the ``strategies`` data, with parameters drawn from ``seed``.

    :param num_strategies: K, the number of hidden strategies.
    :param num_actions: A, the actions available at each step (at least 2).
    :param horizon: T, the steps per episode.
    :param context_dim: c, the size of each step's context.
    :param separation: weight of the strategy-specific part of the logits (0: strategies identical).
    :param similar_pairs: how many pairs ``(2j, 2j+1)`` of strategies are made deliberately alike.
    :param pair_distance: scale of the noise that sets a similar pair's members apart.
    :param mix: the strategies' probabilities ``[K]`` (default uniform).
    :param context_shift: how far each strategy's contexts are shifted from 0, along the strategy's own
        mean vector (0: contexts independent of the strategy).
    :param seed: seed of the parameters (the same seed gives the same strategies).
    :raises ValueError: naming the knob that is out of range.
    """

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
        context_shift=0.0,
        seed=0,
    ):
        self.num_strategies = check_count("num_strategies", num_strategies, 1)
        self.num_actions = check_count("num_actions", num_actions, 2)
        self.horizon = check_count("horizon", horizon, 1)
        self.context_dim = check_count("context_dim", context_dim, 1)
        self.separation = check_weight("separation", separation)
        self.context_shift = check_weight("context_shift", context_shift)
        similar_pairs = check_count("similar_pairs", similar_pairs, 0)
        pair_distance = check_weight("pair_distance", pair_distance)
        if 2 * similar_pairs > num_strategies:
            raise DataError(f"similar_pairs={similar_pairs} needs at least {2 * similar_pairs} strategies, got {num_strategies}")
        mix = np.full(num_strategies, 1.0 / num_strategies) if mix is None else np.asarray(mix, dtype=float)
        valid = mix.shape == (num_strategies,) and np.isfinite(mix).all() and (mix >= 0).all()
        if not (valid and np.isclose(mix.sum(), 1)):
            raise DataError(f"mix must be {num_strategies} non-negative weights summing to one, got {mix}")
        self._mix = mix / mix.sum()

        rng = np.random.default_rng(seed)
        self.shared_weight = rng.standard_normal((context_dim, num_actions))
        self.shared_bias = rng.standard_normal(num_actions)
        weight = rng.standard_normal((num_strategies, context_dim, num_actions))
        bias = rng.standard_normal((num_strategies, num_actions))
        first = 2 * np.arange(similar_pairs)  # pair j is strategies (2j, 2j+1)
        noise = rng.standard_normal((similar_pairs, context_dim, num_actions))
        weight[first + 1] = weight[first] + pair_distance * noise
        bias[first + 1] = bias[first] + pair_distance * rng.standard_normal((similar_pairs, num_actions))
        self.specific_weight, self.specific_bias = weight, bias
        # Drawn last, so that the other parameters do not depend on whether contexts are shifted.
        self.context_means = rng.standard_normal((num_strategies, context_dim))

    @property
    def strategy_mix(self):
        """The true probabilities of the strategies, ``[K]`` (a copy)."""
        return self._mix.copy()

    def _contexts(self, x):
        x = np.asarray(x, dtype=float)
        width = self.horizon * self.context_dim
        if x.ndim != 2 or x.shape[1] != width:
            raise DataError(f"x must have shape [n, {width}] (horizon * context_dim), got {x.shape}")
        return x.reshape(len(x), self.horizon, self.context_dim)

    def _actions(self, y, n):
        y = np.asarray(y)
        if y.shape != (n, self.horizon):
            raise DataError(f"y must have shape [{n}, {self.horizon}] (one action per step), got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer) and (y != np.round(y)).any():
            raise DataError("y must hold integer actions")
        if (y < 0).any() or (y >= self.num_actions).any():
            raise DataError(f"y must hold actions in 0..{self.num_actions - 1}")
        return y.astype(np.int64)

    def action_log_probs(self, x):
        """``log p(a_t = a | x_t, s)`` for every example, strategy, step and action: ``[n, K, T, A]``.

        Also available as :meth:`label_log_prob_tables`, the name the diagnostics look for."""
        from scipy.special import log_softmax  # here, not at the top: scipy.special takes a second to import

        ctx = self._contexts(x)
        shared = ctx @ self.shared_weight + self.shared_bias  # [n, T, A]
        specific = np.einsum("ntc,kca->nkta", ctx, self.specific_weight) + self.specific_bias[:, None, :]
        return log_softmax(shared[:, None] + self.separation * specific, axis=-1)

    def sample_actions(self, x, strategies, rng=None):
        """Actions ``[n, T]`` (int64) for contexts ``x [n, T*c]`` under the given ``strategies [n]``.

        :param rng: a :class:`numpy.random.Generator` or anything :func:`numpy.random.default_rng` takes.
        """
        rng = np.random.default_rng(rng)
        strategies = np.asarray(strategies)
        log_probs = self.action_log_probs(x)
        if strategies.shape != (len(log_probs),) or (strategies < 0).any() or (strategies >= self.num_strategies).any():
            raise DataError(f"strategies must be {len(log_probs)} integers in 0..{self.num_strategies - 1}")
        cdf = np.cumsum(np.exp(log_probs[np.arange(len(log_probs)), strategies]), axis=-1)  # [n, T, A]
        # Inverse-CDF sampling; the clip guards against a last cumulative sum a rounding error below u.
        u = rng.random(cdf.shape[:-1] + (1,))
        return np.minimum((u > cdf).sum(-1), self.num_actions - 1).astype(np.int64)

    def sample(self, n, rng=None):
        """``n`` episodes: contexts ``x [n, T*c]`` (float32), actions ``y [n, T]`` and strategies ``[n]`` (int64).

        :param rng: a :class:`numpy.random.Generator` or anything :func:`numpy.random.default_rng` takes
            (the same seed gives the same episodes).
        """
        rng = np.random.default_rng(rng)
        labels = rng.choice(self.num_strategies, size=n, p=self._mix).astype(np.int64)
        noise = rng.standard_normal((n, self.horizon * self.context_dim))
        x = (noise + self._context_offsets()[labels]).astype(np.float32)
        return x, self.sample_actions(x, labels, rng), labels

    def _context_offsets(self):
        # Each strategy's mean of the flat contexts [K, T*c]: its shifted mean vector at every step.
        return np.tile(self.context_shift * self.context_means, self.horizon)

    def label_log_prior(self, x):
        """``log p(s | x)`` of each episode's contexts, normalised over the strategies: ``[n, K]``.

        ``log mix_s`` for every episode when ``context_shift`` is 0."""
        from scipy.special import log_softmax

        ctx = self._contexts(x)
        offsets = self._context_offsets().reshape(self.num_strategies, self.horizon, self.context_dim)
        # log N(x; mu_s, I) up to a constant shared by the strategies.
        log_density = -0.5 * ((ctx[:, None] - offsets) ** 2).sum(axis=(2, 3))  # [n, K]
        with np.errstate(divide="ignore"):  # a strategy of zero probability gets log 0 = -inf
            return log_softmax(log_density + np.log(self._mix), axis=-1)

    def log_likelihood(self, x, y):
        """Exact ``log p(y | x, s)`` of each episode under each strategy: ``[n, K]``."""
        log_probs = self.action_log_probs(x)  # [n, K, T, A]
        y = self._actions(y, len(log_probs))
        return np.take_along_axis(log_probs, y[:, None, :, None], axis=-1)[..., 0].sum(-1)

    def _log_joint(self, x, y):
        # log p(s | x) + log p(y | x, s); a strategy with zero probability gets -inf, which softmax and
        # logsumexp handle.
        return self.log_likelihood(x, y) + self.label_log_prior(x)

    def log_marginal_likelihood(self, x, y):
        """``log p(y | x) = log sum_s p(s | x) p(y | x, s)`` of each episode, ``[n]``: the best any model can score."""
        from scipy.special import logsumexp

        return logsumexp(self._log_joint(x, y), axis=-1)

    def posterior(self, x, y):
        """``p(s | x, y)`` with ``p(s | x)`` as prior (the strategy mix when ``context_shift`` is 0): ``[n, K]``."""
        from scipy.special import softmax

        return softmax(self._log_joint(x, y), axis=-1)

    def bayes_accuracy(self, x, y, labels):
        """Accuracy of the Bayes-optimal strategy classifier (``argmax`` posterior) on labelled episodes."""
        return float(np.mean(self.posterior(x, y).argmax(-1) == np.asarray(labels)))

    def expected_bayes_accuracy(self, x, y):
        """The Bayes classifier's expected accuracy, ``mean max_s p(s|x,y)``: the ceiling for any probe of
        the strategy. Unbiased for episodes drawn from the generator, and of lower variance than
        :meth:`bayes_accuracy` because it does not use the labels' draws."""
        return float(np.mean(self.posterior(x, y).max(-1)))

    def coverage_tv(self, x, y_generated):
        """Total variation between the true strategy mix and the strategy mix of generated episodes.

        Each generated episode counts by its posterior over strategies (whose prior is the true
        ``p(s | x)`` of its contexts), and the generated data's mix is the mean posterior. The soft assignment is
        deliberate: an episode that two similar strategies
        explain equally well is split between them rather than forced to one, so that for episodes drawn
        from the true process the estimate is unbiased (the mean posterior estimates the mix) and near 0,
        where hard ``argmax`` assignments would be biased by the Bayes classifier's errors.

        :param x: contexts ``[n, T*c]`` the episodes were generated for.
        :param y_generated: generated actions ``[n, T]``.
        """
        generated_mix = self.posterior(x, y_generated).mean(0)
        return float(0.5 * np.abs(generated_mix - self._mix).sum())

    # The generator protocol of infovae.data.registry: labels are strategies, target factors are steps.
    label_log_prob_tables = action_log_probs

    @property
    def label_mix(self):
        return self.strategy_mix

    def action_distributions(self, x):
        """Each strategy's action distribution at each step, averaged over the contexts ``x``: ``[K, T, A]``."""
        return np.exp(self.action_log_probs(x)).mean(0)

    label_factor_distributions = action_distributions

    def strategy_divergences(self, x):
        """``KL(p(a|x_t, s) || p(a|x_t, s'))`` per step, averaged over steps and contexts ``x``: ``[K, K]``.

        Shows how alike the strategies are (a similar pair's entries are small); times ``T`` it is the
        expected log-likelihood ratio of a whole episode.
        """
        log_probs = self.action_log_probs(x)  # [n, K, T, A]
        kl = (np.exp(log_probs)[:, :, None] * (log_probs[:, :, None] - log_probs[:, None])).sum(-1)  # [n, K, K, T]
        return kl.mean(axis=(0, 3))


def make_strategies(num_examples=20000, seed=0, **knobs):
    """The ``strategies`` data set and its generator, both determined by ``seed``.

    ``knobs`` are those of :class:`StrategyGenerator` (``num_strategies``, ``num_actions``, ``horizon``,
    ``context_dim``, ``separation``, ``similar_pairs``, ``pair_distance``, ``mix``, ``context_shift``); ``num_examples``
    episodes are sampled. The default of 20000 (as in the run config) is what an MLP decoder reading the
    flat contexts needs: trained on 70% of 6000 episodes it overfits before its latent separates the
    strategies.

    :returns: ``(Dataset, StrategyGenerator)``: ``x [N, horizon*context_dim]`` float32 contexts,
        ``y [N, horizon]`` int64 actions, ``labels [N]`` the strategies.
    """
    generator = StrategyGenerator(seed=seed, **knobs)
    # A stream of its own, so that the episodes do not reuse the draws that made the parameters.
    x, y, labels = generator.sample(check_count("num_examples", num_examples, 1), rng=(seed, 1))
    data = Dataset(
        x=x,
        y=y,
        labels=labels,
        likelihood="categorical",
        num_classes=generator.num_actions,
        name="strategies",
        info={
            "horizon": generator.horizon,
            "context_dim": generator.context_dim,
            "num_actions": generator.num_actions,
            "num_strategies": generator.num_strategies,
            "label_name": "strategy",
        },
    )
    return data, generator


class StrategiesData(DataSection):
    """Behaviour episodes from K hidden strategies, with every strategy's exact likelihood (infovae.data.strategies)."""

    kind: Literal["strategies"] = "strategies"
    num_examples: int = Field(20000, ge=20, le=10_000_000, description="Episodes generated.")
    num_strategies: int = Field(4, ge=1, le=1000, description="K, the number of hidden strategies.")
    num_actions: int = Field(5, ge=2, le=1000, description="Actions available at each step.")
    horizon: int = Field(12, ge=1, le=10_000, description="Steps per episode.")
    context_dim: int = Field(3, ge=1, le=10_000, description="Size of each step's context vector.")
    separation: float = Field(
        1.5, ge=0, allow_inf_nan=False, description="Weight of the strategy-specific part of behaviour (0: strategies identical)."
    )
    similar_pairs: int = Field(1, ge=0, description="Pairs of strategies made deliberately similar.")
    pair_distance: float = Field(0.3, ge=0, allow_inf_nan=False, description="How far apart the members of a similar pair are.")
    context_shift: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="How far each strategy's contexts are shifted along its own mean vector (0: contexts carry no "
        "information about the strategy).",
    )


def _load(section, likelihood):
    knobs = section.model_dump(exclude={"kind", "val_fraction", "test_fraction"})
    return make_strategies(**knobs)


register_data(DataKind("strategies", StrategiesData, _load, likelihood="categorical"))
