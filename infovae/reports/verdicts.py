"""What a run's numbers say, in sentences that claim no more than the numbers do: pure functions of a
run's records (``metrics.jsonl``: validation), summary (``summary.json``: test) and config.

Each function returns a sentence (markdown) or ``None`` where it has nothing to say.
"""

import math

import numpy as np

from infovae.diagnostics.quantities import QUANTITIES

__all__ = [
    "COLLAPSE_MI",
    "DECAY_THRESHOLD",
    "LAST_EVALUATIONS",
    "OVERFIT_WINDOW",
    "PERPLEXITY_COLLAPSE",
    "binomial_se",
    "chance_verdict",
    "collapse_warning",
    "monitor_verdict",
    "overfitting_warning",
    "probe_decay_verdict",
    "selection_sentence",
]

# A monitored quantity whose best value is among the last this many evaluations is still improving.
LAST_EVALUATIONS = 2
# The probe has decayed when it ends at least this far below its best and beyond the noise
# (accuracy points).
DECAY_THRESHOLD = 0.05
# Latent collapse: information below this many nats, or a perplexity this close to one.
COLLAPSE_MI = 0.01
PERPLEXITY_COLLAPSE = 1.1
# Overfitting: over this many last evaluations, validation reconstruction fell while training rose.
OVERFIT_WINDOW = 3
# Two standard errors: "within noise".
NOISE_SE = 2.0


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


def chance_verdict(accuracy, num_labels, num_examples, ceiling=None, split="test"):
    """Whether a probe accuracy measured on ``num_examples`` is within noise (two binomial standard
    errors) of chance, ``1 / num_labels``."""
    if accuracy is None or not num_labels or not num_examples:
        return None
    chance = 1.0 / num_labels
    se = binomial_se(chance, num_examples)
    noise = f"chance is {chance:.3f} ± {NOISE_SE * se:.3f} (two binomial standard errors at n = {num_examples})"
    bound = f"; the Bayes ceiling is {ceiling:.3f}" if ceiling is not None else ""
    if accuracy <= chance + NOISE_SE * se:
        return (
            f"The {split} probe accuracy {accuracy:.3f} is **at chance**: {noise}{bound}. "
            "z carries no label information that this probe can detect."
        )
    return f"The {split} probe accuracy {accuracy:.3f} is above chance: {noise}{bound}."


def probe_decay_verdict(records, num_examples=None):
    """Did the validation probe fall from its best by more than :data:`DECAY_THRESHOLD` and more than
    the noise of two accuracies on ``num_examples`` examples?"""
    acc = _values(records, "probe_accuracy")
    if not acc:
        return None
    (peak_step, peak), (last_step, last) = max(acc, key=lambda a: a[1]), acc[-1]
    drop = peak - last
    noise = NOISE_SE * math.sqrt(2) * binomial_se(0.5 * (peak + last), num_examples) if num_examples else 0.0
    limit = max(DECAY_THRESHOLD, noise)
    noise_note = (
        f"; the noise of the difference is ±{noise:.3f} at n = {num_examples} validation examples" if num_examples else ""
    )
    if drop > limit:
        verdict = f"**the probe decayed** by {drop:.3f} from its best"
    elif drop > DECAY_THRESHOLD:
        verdict = f"it ended {drop:.3f} below its best, **within noise**: no decay is shown"
    else:
        verdict = f"the probe did **not** decay (within {DECAY_THRESHOLD:.2f} of its best)"
    return (
        f"Validation probe accuracy (sampled z) peaked at {peak:.3f} (step {peak_step}) and ended at {last:.3f} "
        f"(step {last_step}): {verdict}{noise_note}."
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
