"""What a run's numbers say, in sentences that claim no more than the numbers do: pure functions of a
run's records (``metrics.jsonl``: validation), summary (``summary.json``: test) and config, or of a
sweep's accuracies over seeds.

Each function returns a sentence (markdown) or ``None`` where it has nothing to say;
:func:`probe_vs_chance` returns its numbers with the phrase. A claim of *no* effect is made only as
equivalence within a stated margin (the interval excludes more); otherwise the answer is "not resolved".
Trends over training (still improving, overfitting, a decaying probe) are read from the late part's
least-squares line with the curve's own autocorrelated noise
(:func:`~infovae.diagnostics.decay.decay_test`), never from a comparison of two noisy evaluations.
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
    "MIN_SEEDS",
    "MONITOR_MARGIN",
    "PERPLEXITY_COLLAPSE",
    "SIGNIFICANCE",
    "binomial_se",
    "chance_accuracy",
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

# "Stopped improving" is claimed only when the interval of the monitored quantity's improvement over the
# second half of training excludes this fraction of its improvement over the whole run (from the first
# evaluation to the end of the second half's least-squares line), or more.
MONITOR_MARGIN = 0.05
# A decay this large or larger matters (accuracy points): "no decay" is claimed only when the decay's
# interval excludes it.
DECAY_THRESHOLD = 0.05
# "At chance" is claimed only when the accuracy's interval lies within this of chance on both sides
# (accuracy points).
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


def binomial_se(p, n):
    """Standard error of an accuracy ``p`` measured on ``n`` examples."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


def _values(records, key):
    return [(r["step"], r[key]) for r in records if r.get(key) is not None]


def _trend(steps, values):
    """:func:`~infovae.diagnostics.decay.decay_test` of ``values`` (in the orientation where a fall is
    what is asked about) at ``steps``, or the reason it cannot be run (a string)."""
    try:
        return decay_test(np.asarray(values, dtype=float), np.asarray(steps, dtype=float))
    except UserInputError as error:  # too few evaluations in the late part, say
        return str(error)


def _span(result):
    return f"steps {result['start_step']:.0f}–{result['end_step']:.0f}, {result['n']} evaluations"


def monitor_verdict(records, monitor="loss"):
    """Whether the monitored validation quantity is still improving, from the trend of the second half
    of training (:func:`~infovae.diagnostics.decay.decay_test`: the improvement of the late part's
    least-squares line, with an interval and a one-sided p-value from the curve's own autocorrelated
    noise).

    *Still improving*: the improvement is shown (p below :data:`SIGNIFICANCE`); a flat, noisy curve is
    called so at most at that rate. *Stopped improving*: the 95% interval excludes an improvement of
    :data:`MONITOR_MARGIN` of the run's improvement (from the first evaluation to the end of the late
    part's line) or more. *Not resolved* otherwise, and *not tested* where the second half holds too
    few evaluations (:data:`~infovae.diagnostics.decay.MIN_LATE_EVALUATIONS`).
    """
    series = _values(records, monitor)
    if len(series) < 2:
        return None
    better = QUANTITIES[monitor].better if monitor in QUANTITIES else "lower"
    sign = 1.0 if better == "lower" else -1.0  # oriented so that a fall of sign * value is an improvement
    steps = np.array([s for s, _ in series], dtype=float)
    values = np.array([v for _, v in series], dtype=float)
    result = _trend(steps, sign * values)
    if isinstance(result, str):
        return f"Whether validation `{monitor}` is still improving is not tested ({result})."
    gain, low, high, p = result["decay"], result["low"], result["high"], result["p_value"]
    run_gain = sign * values[0] - result["line_end"]
    margin = MONITOR_MARGIN * max(run_gain, 0.0)
    numbers = (
        f"over the second half of training ({_span(result)}) the least-squares line of validation `{monitor}` improved "
        f"by {gain:.4g} "
        f"(95% interval {low:.4g} to {high:.4g}; one-sided p = {p:.2g} against no improvement, from the curve's own "
        f"noise: sd {result['noise_sd']:.3g}, lag-1 autocorrelation {result['autocorrelation']:.2f})"
    )
    reference = (
        f"{MONITOR_MARGIN:.0%} of its improvement over the run, {run_gain:.4g} from the first evaluation to the line's end"
    )
    if p < SIGNIFICANCE:
        return f"**Still improving**: {numbers}; training longer may change the numbers below."
    if high < margin:
        excluded = f"an improvement of {margin:.4g} or more ({reference})" if margin > 0 else "any improvement"
        return f"Validation `{monitor}` has **stopped improving**: {numbers}, which excludes {excluded}."
    return (
        f"Whether validation `{monitor}` is still improving is **not resolved**: {numbers}; neither an improvement "
        f"nor its absence (less than {margin:.4g}: {reference}) is shown."
    )


def chance_accuracy(labels):
    """Chance for a probe of ``labels``: what a probe that learned nothing scores at best, the share of
    the most frequent label among the examples it is scored on (``1 / K`` only for ``K`` equally frequent
    labels; label ids need not be ``0..K-1``). ``None`` without labels.

    A probe whose predictions do not depend on the label scores ``sum_k P(predict k) share_k`` on
    average, at most this; always predicting the most frequent label scores exactly this, without noise.
    Pass the labels of the examples the probe was scored on: for a run's evaluations,
    :func:`~infovae.diagnostics.evaluate.evaluated_examples` of the split, as
    :func:`~infovae.diagnostics.evaluate.held_out_set` selects them.
    """
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.size == 0:
        return None
    _, counts = np.unique(labels, return_counts=True)
    return float(counts.max() / labels.size)


def _is_number(value):
    """Whether ``value`` is a real number (a bool is not one)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_accuracy(value):
    """Whether ``value`` is a real number in [0, 1]."""
    return _is_number(value) and 0 <= value <= 1


def probe_vs_chance(accuracies, n_examples, chance, margin=CHANCE_MARGIN):
    """Whether probe accuracies, one per seed, each measured on the same ``n_examples`` examples, are
    above ``chance`` (:func:`chance_accuracy`), at chance, below it, or neither shown.

    *Above chance*: the mean over seeds exceeds what chance gives on ``n_examples`` examples, at
    :data:`SIGNIFICANCE` (one-sided): ``P(Binomial(n, chance) >= n * mean)``. That is the noise of the
    mean under the null hypothesis whatever the number of seeds (a latent that carries nothing gives
    every seed a binomial accuracy about chance, on the examples the seeds share), so a second seed
    cannot turn a clear single seed into "at chance". *At chance*: the 95% interval of the mean
    (:func:`~infovae.diagnostics.intervals.seed_binomial_interval`: the seeds' spread and the examples'
    binomial noise) lies within ``margin`` of chance on both sides. *Below chance*: the interval lies
    below chance, and not within the margin: worse than always predicting the most frequent label,
    which is not "no information" (with equally frequent labels a probe that ignores z cannot score
    below chance on average, so it is systematically wrong; with unequal shares it may also be
    favouring the rarer labels). *Not resolved* otherwise, with fewer than :data:`MIN_SEEDS` seeds named
    as the reason where the interval is wide.

    Values that are not accuracies (``None``, not finite, or outside [0, 1]) are left out.

    :returns: ``None`` without an accuracy, else a dict: ``mean``, ``low``, ``high``, ``p_value``,
        ``seeds``, ``verdict`` (``"above chance"``, ``"at chance"``, ``"below chance"`` or
        ``"not resolved"``) and ``text`` (a markdown phrase that says so with its numbers).
    """
    values = [a for a in accuracies if _is_accuracy(a)]
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
    elif chance - margin <= low and high <= chance + margin:
        verdict = "at chance"
        text = f"**at chance** ({numbers}: the interval lies within ±{margin} of chance {chance:.3f})"
    elif high < chance:
        verdict = "below chance"
        text = (
            f"**below chance** ({numbers}: the interval lies below chance {chance:.3f}, the most frequent label's "
            "share): worse than a probe that learned nothing, which is not 'no information'"
        )
    else:
        verdict = "not resolved"
        reason = f"; {seeds} seed{'s are' if seeds != 1 else ' is'} too few to conclude" if seeds < MIN_SEEDS else ""
        text = (
            f"**not resolved** ({numbers}): not shown above chance {chance:.3f} (p = {p_value:.2g}) nor within "
            f"±{margin} of it{reason}"
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


def chance_verdict(accuracy, chance, num_examples, ceiling=None, split="test"):
    """Whether one run's probe accuracy on ``num_examples`` examples is above ``chance`` (the most
    frequent label's share among them: :func:`chance_accuracy`), at chance, below it, or neither shown
    (:func:`probe_vs_chance` with one seed: the binomial noise alone)."""
    if isinstance(chance, (int, np.integer)) and not isinstance(chance, bool) and chance > 1:
        raise TypeError(
            f"chance_verdict takes chance as an accuracy (the most frequent label's share: chance_accuracy(labels)), "
            f"not a number of labels ({chance})"
        )
    if accuracy is None or chance is None or not num_examples:
        return None
    if not _is_accuracy(accuracy):
        # A summary.json written by hand, or by a run whose evaluation went wrong, may hold NaN,
        # Infinity, a number outside [0, 1] or not a number at all: say so rather than test it.
        if not _is_number(accuracy):
            what = f"{accuracy!r} is not a number"
        elif not np.isfinite(accuracy):
            what = f"{float(accuracy)} is not finite"
        else:
            what = f"{float(accuracy):g} is outside [0, 1], so it is not an accuracy"
        return f"The {split} probe accuracy {what}: no verdict on chance."
    result = probe_vs_chance([accuracy], num_examples, chance)
    numbers = (
        f"95% interval {result['low']:.3f}–{result['high']:.3f} at n = {num_examples}; chance {chance:.3f}, "
        "the most frequent label's share"
    )
    bound = f"; the Bayes ceiling is {ceiling:.3f}" if ceiling is not None else ""
    verdict = {
        "above chance": f"is **above chance** ({numbers}, p = {result['p_value']:.2g}{bound}).",
        "at chance": (
            f"is **at chance** ({numbers}: the interval lies within ±{CHANCE_MARGIN} of it{bound}). "
            "z carries no label information that this probe can detect."
        ),
        "below chance": (
            f"is **below chance** ({numbers}: the interval lies below it{bound}): worse than a probe that learned "
            "nothing, which is not 'no information' (the probe is systematically wrong, or favours the rarer labels)."
        ),
        "not resolved": (
            f"is **not resolved** ({numbers}, p = {result['p_value']:.2g}{bound}): not shown above chance, nor within "
            f"±{CHANCE_MARGIN} of it."
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
    """A warning when, over the second half of training, the validation reconstruction fell while the
    training reconstruction (running mean) rose, each shown beyond its own noise: both trends of
    :func:`~infovae.diagnostics.decay.decay_test` (the late part's least-squares line, with the curve's
    autocorrelated noise) significant at :data:`SIGNIFICANCE`, one-sided. Flat curves draw the warning
    at most at that rate; ``None`` where the curves are too short to test."""
    rows = [r for r in records if r.get("recon") is not None and r.get("train_recon") is not None]
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    val = _trend(steps, [r["recon"] for r in rows])
    train = _trend(steps, [-r["train_recon"] for r in rows])
    if isinstance(val, str) or isinstance(train, str):
        return None
    if val["p_value"] < SIGNIFICANCE and train["p_value"] < SIGNIFICANCE:
        return (
            f"⚠ **Overfitting**: over the second half of training ({_span(val)}) the validation reconstruction's "
            f"least-squares line fell by {val['decay']:.4g} nats (95% interval {val['low']:.4g} to {val['high']:.4g}, "
            f"p = {val['p_value']:.2g}) while the training reconstruction's (running mean) rose by {train['decay']:.4g} "
            f"(95% interval {train['low']:.4g} to {train['high']:.4g}, p = {train['p_value']:.2g})."
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
