"""What a run's numbers say, in sentences that claim no more than the numbers do: pure functions of a
run's records (``metrics.jsonl``: validation), summary (``summary.json``: test) and config, or of a
sweep's accuracies over seeds.

Each function returns a sentence (markdown) or ``None`` where it has nothing to say;
:func:`probe_vs_chance` returns its numbers with the phrase. A claim of *no* effect is made only as
equivalence within a stated margin (the interval excludes more); otherwise the answer is "not resolved".
"""

import math

import numpy as np
from scipy.special import betainc

from infovae.diagnostics.decay import decay_test
from infovae.diagnostics.intervals import seed_binomial_interval
from infovae.diagnostics.quantities import QUANTITIES
from infovae.errors import UserInputError

__all__ = [
    "CHANCE_MARGIN",
    "COLLAPSE_MI",
    "COVERAGE_THRESHOLD",
    "DECAY_THRESHOLD",
    "LAST_EVALUATIONS",
    "MIN_SEEDS",
    "OVERFIT_WINDOW",
    "PERPLEXITY_COLLAPSE",
    "SIGNIFICANCE",
    "binomial_se",
    "chance_verdict",
    "collapse_warning",
    "coverage_phrase",
    "decay_phrase",
    "monitor_verdict",
    "overfitting_warning",
    "probe_decay_verdict",
    "probe_vs_chance",
    "selection_sentence",
]

# A monitored quantity whose best value is among the last this many evaluations is still improving.
LAST_EVALUATIONS = 2
# A decay this large or larger matters (accuracy points): "no decay" is claimed only when the decay's
# interval excludes it.
DECAY_THRESHOLD = 0.05
# "At chance" is claimed only when the accuracy's interval ends within this of chance (accuracy points).
CHANCE_MARGIN = 0.02
# Tests (a probe above chance, a curve that decays) are one-sided at this level; intervals are 95%.
SIGNIFICANCE = 0.05
# Below this many seeds the spread over seeds is too poorly known to show that a setting is at chance.
MIN_SEEDS = 3
# The prior covers the labels when the generated mix is within this total variation of the true one.
COVERAGE_THRESHOLD = 0.1
# Latent collapse: information below this many nats, or a perplexity this close to one.
COLLAPSE_MI = 0.01
PERPLEXITY_COLLAPSE = 1.1
# Overfitting: over this many last evaluations, validation reconstruction fell while training rose.
OVERFIT_WINDOW = 3


def binomial_se(p, n):
    """Standard error of an accuracy ``p`` measured on ``n`` examples."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


def _values(records, key):
    return [(r["step"], r[key]) for r in records if r.get(key) is not None]


def monitor_verdict(records, monitor="loss"):
    """Whether the monitored validation quantity is still improving: its best value is among the last
    :data:`LAST_EVALUATIONS` evaluations."""
    series = _values(records, monitor)
    if len(series) < 2:
        return None
    better = QUANTITIES[monitor].better if monitor in QUANTITIES else "lower"
    pick = min if better == "lower" else max
    best_step, best = pick(series, key=lambda s: s[1])
    position = [s for s, _ in series].index(best_step)
    from_end = len(series) - 1 - position
    if from_end < LAST_EVALUATIONS:
        which = "the last evaluation" if from_end == 0 else f"the evaluation {from_end} before the last"
        return (
            f"**Still improving**: the best validation `{monitor}` ({best:.4g}) is at step {best_step}, {which} "
            f"(of {len(series)}); training longer may change the numbers below."
        )
    return (
        f"Validation `{monitor}` was best ({best:.4g}) at step {best_step}, {from_end} evaluations before the last "
        f"({series[-1][1]:.4g} at step {series[-1][0]}): it has stopped improving."
    )


def probe_vs_chance(accuracies, n_examples, chance, margin=CHANCE_MARGIN):
    """Whether probe accuracies, one per seed, each measured on the same ``n_examples`` examples, are
    above ``chance``, at chance, or neither shown.

    *Above chance*: the mean over seeds exceeds what chance gives on ``n_examples`` examples, at
    :data:`SIGNIFICANCE` (one-sided): ``P(Binomial(n, chance) >= n * mean)``. That is the noise of the
    mean under the null hypothesis whatever the number of seeds (a latent that carries nothing gives
    every seed a binomial accuracy about chance, on the examples the seeds share), so a second seed
    cannot turn a clear single seed into "at chance". *At chance*: the 95% interval of the mean
    (:func:`~infovae.diagnostics.intervals.seed_binomial_interval`: the seeds' spread and the examples'
    binomial noise) ends within ``margin`` of chance. *Not resolved* otherwise, with fewer than
    :data:`MIN_SEEDS` seeds named as the reason where the interval is wide.

    :returns: ``None`` without an accuracy, else a dict: ``mean``, ``low``, ``high``, ``p_value``,
        ``seeds``, ``verdict`` (``"above chance"``, ``"at chance"`` or ``"not resolved"``) and ``text``
        (a markdown phrase that says so with its numbers).
    """
    values = [a for a in accuracies if a is not None and np.isfinite(a)]
    if not values or not n_examples:
        return None
    mean, low, high = seed_binomial_interval(values, n_examples)
    successes = mean * n_examples
    # The binomial tail P(X >= k) = I_chance(k, n - k + 1), continuous in k for a mean over seeds.
    p_value = float(betainc(successes, n_examples - successes + 1, chance)) if successes > 0 else 1.0
    seeds = len(values)
    numbers = (
        f"{mean:.3f}, 95% interval {low:.3f}–{high:.3f} over {seeds} seed{'s' if seeds != 1 else ''} and {n_examples} examples"
    )
    if p_value < SIGNIFICANCE:
        verdict, text = "above chance", f"**above chance** ({numbers}; chance {chance:.3f}, p = {p_value:.2g})"
    elif high <= chance + margin:
        verdict, text = "at chance", f"**at chance** ({numbers}: the interval ends within {margin} of chance {chance:.3f})"
    else:
        verdict = "not resolved"
        reason = f"; {seeds} seed{'s are' if seeds != 1 else ' is'} too few to conclude" if seeds < MIN_SEEDS else ""
        text = (
            f"**not resolved** ({numbers}): not shown above chance {chance:.3f} (p = {p_value:.2g}) nor within "
            f"{margin} of it{reason}"
        )
    return {"mean": mean, "low": low, "high": high, "p_value": p_value, "seeds": seeds, "verdict": verdict, "text": text}


def coverage_phrase(low, high, numbers):
    """Whether data generated from the prior covers the labels, from bounds on the coverage TV (an interval
    over seeds, or :func:`~infovae.diagnostics.coverage.coverage_bounds` of one run) against
    :data:`COVERAGE_THRESHOLD`: not resolved where they span it or are not known. ``numbers`` (the
    estimate and its bounds, as text) go in parentheses."""
    if np.isfinite(high) and high < COVERAGE_THRESHOLD:
        return f"the prior covers the strategies ({numbers})"
    if np.isfinite(low) and low > COVERAGE_THRESHOLD:
        return f"the prior **does not cover the strategies evenly** ({numbers})"
    return f"whether the prior covers the strategies is **not resolved** ({numbers})"


def chance_verdict(accuracy, num_labels, num_examples, ceiling=None, split="test"):
    """Whether one run's probe accuracy on ``num_examples`` examples is above chance, ``1 / num_labels``,
    at chance, or neither shown (:func:`probe_vs_chance` with one seed: the binomial noise alone)."""
    if accuracy is None or not num_labels or not num_examples:
        return None
    chance = 1.0 / num_labels
    result = probe_vs_chance([accuracy], num_examples, chance)
    numbers = f"95% interval {result['low']:.3f}–{result['high']:.3f} at n = {num_examples}; chance {chance:.3f}"
    bound = f"; the Bayes ceiling is {ceiling:.3f}" if ceiling is not None else ""
    verdict = {
        "above chance": f"is **above chance** ({numbers}, p = {result['p_value']:.2g}{bound}).",
        "at chance": (
            f"is **at chance** ({numbers}: the interval ends within {CHANCE_MARGIN} of it{bound}). "
            "z carries no label information that this probe can detect."
        ),
        "not resolved": (
            f"is **not resolved** ({numbers}, p = {result['p_value']:.2g}{bound}): not shown above chance, nor within "
            f"{CHANCE_MARGIN} of it."
        ),
    }[result["verdict"]]
    return f"The {split} probe accuracy {accuracy:.3f} {verdict}"


def decay_phrase(result):
    """What a :func:`~infovae.diagnostics.decay.decay_test` result shows, in a phrase: decayed (p below
    :data:`SIGNIFICANCE`), no decay of :data:`DECAY_THRESHOLD` or more (the interval excludes it), or not
    resolved."""
    if result["p_value"] < SIGNIFICANCE:
        return f"**the probe decayed** by {result['decay']:.3f}"
    if result["high"] < DECAY_THRESHOLD:
        return f"**no decay** of {DECAY_THRESHOLD} or more (the interval excludes it)"
    return f"**not resolved**: neither a decay nor its absence (a decay below {DECAY_THRESHOLD}) is shown"


def probe_decay_verdict(records, num_examples=None):
    """Whether the validation probe decayed over the second half of training, from
    :func:`~infovae.diagnostics.decay.decay_test` (the fall of the late part's least-squares line, with
    the curve's own noise), in the words of :func:`decay_phrase`. ``num_examples`` (validation examples
    per evaluation) adds the binomial noise of one evaluation, to set against the noise the curve shows."""
    acc = _values(records, "probe_accuracy")
    if not acc:
        return None
    steps, values = np.array([s for s, _ in acc], dtype=float), np.array([a for _, a in acc], dtype=float)
    try:
        result = decay_test(values, steps)
    except UserInputError as error:  # too few evaluations in the late part, say
        return f"Validation probe accuracy: not tested for decay ({error})."
    decay, low, high, p = result["decay"], result["low"], result["high"], result["p_value"]
    binomial = f"; one evaluation's binomial noise at n = {num_examples} is {binomial_se(values.mean(), num_examples):.3f}"
    return (
        f"Validation probe accuracy (sampled z) over the second half of training (steps {result['start_step']:.0f}–"
        f"{result['end_step']:.0f}, {result['n']} evaluations): {decay_phrase(result)}. "
        f"Its least-squares line falls by {decay:.3f} "
        f"(95% interval {low:.3f} to {high:.3f}; one-sided p = {p:.2g} against no decay, from the curve's own noise: "
        f"sd {result['noise_sd']:.3f}, lag-1 autocorrelation {result['autocorrelation']:.2f}"
        f"{binomial if num_examples else ''})."
    )


def collapse_warning(summary, latent):
    """A warning when the latent carries (almost) nothing: no active units, a perplexity near one, or
    almost no information."""
    summary = summary or {}
    reasons = []
    mi = summary.get("mi")
    if mi is not None and mi < COLLAPSE_MI:
        reasons.append(f"the information in z is {mi:.4f} nats (< {COLLAPSE_MI})")
    if latent == "discrete":
        perplexity = summary.get("latent_perplexity")
        if perplexity is not None and perplexity < PERPLEXITY_COLLAPSE:
            reasons.append(f"the aggregate posterior uses {perplexity:.2f} latent values (perplexity)")
    else:
        active = summary.get("active_units")
        if active is not None and active == 0:
            reasons.append("no latent dimension is active (posterior means do not vary)")
    if not reasons:
        return None
    return "⚠ **Latent collapse** on the test split: " + "; ".join(reasons) + ". The decoder is ignoring z."


def overfitting_warning(records):
    """A warning when, over the last :data:`OVERFIT_WINDOW` evaluations, validation reconstruction fell
    while the training reconstruction (running mean) rose."""
    window = [r for r in records if r.get("recon") is not None and r.get("train_recon") is not None][-OVERFIT_WINDOW:]
    if len(window) < OVERFIT_WINDOW:
        return None
    val = np.array([r["recon"] for r in window])
    train = np.array([r["train_recon"] for r in window])
    if val[-1] < val[0] and train[-1] > train[0]:
        return (
            f"⚠ **Overfitting**: over the last {OVERFIT_WINDOW} evaluations (steps {window[0]['step']}–{window[-1]['step']}) "
            f"the validation reconstruction fell from {val[0]:.4g} to {val[-1]:.4g} nats while the training "
            f"reconstruction rose from {train[0]:.4g} to {train[-1]:.4g}."
        )
    return None


def selection_sentence(summary, train):
    """Which weights the test numbers come from: the last or the best evaluation, and whether early
    stopping ended the run."""
    summary = summary or {}
    steps, selected, stopped = summary.get("steps"), summary.get("selected_step"), summary.get("stopped_early")
    if steps is None:
        return None
    if stopped:
        patience = train.early_stopping.patience if train.early_stopping else "?"
        run = (
            f"**Stopped early** at step {steps} of {train.steps} "
            f"(validation `{train.monitor}` did not improve for {patience} evaluations)"
        )
    else:
        run = f"Trained for all {steps} steps" + (" (early stopping was on and did not trigger)" if train.early_stopping else "")
    if train.select == "best":
        chosen = f"the test numbers use the weights of step {selected}, the best validation `{train.monitor}`"
    else:
        chosen = f"the test numbers use the last weights (step {selected if selected is not None else steps})"
    return f"{run}; {chosen}."
