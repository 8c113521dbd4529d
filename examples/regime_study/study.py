"""The regime study's numbers: per-trial results written once from finished sweeps and read back, each
validation curve's fall between fixed windows and its decay test, paired comparisons over seeds with
Holm's correction and equivalence within stated margins, and exact tests on counts of seeds whose curve
fell.

Everything here is a pure function of the results folder (``trials.csv.gz``, ``curves.csv.gz``,
``meta.json``), so that :mod:`run` rebuilds the write-up and its figures from committed results,
byte for byte, without training.
"""

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import infovae
from infovae.diagnostics import decay_test, intervals
from infovae.errors import UserInputError
from infovae.reports.plots import RANGES

TRIALS, CURVES, META = "trials.csv.gz", "curves.csv.gz", "meta.json"
# The validation quantities kept per evaluation (every test quantity is kept per trial).
CURVE_KEYS = (
    "probe_accuracy",
    "probe_xz_accuracy",
    "probe_x_accuracy",
    "recon_z_gain",
    "mi",
    "marginal_kl",
    "marginal_mmd",
    "marginal_mmd_p",
    "loss",
    "recon",
    "kl",
    "nll",
    "coverage_tv",
    "latent_perplexity",
    "active_units",
)
# Significant digits written: far below every quantity's noise, and what makes the files small.
DIGITS = 6
# Two-sided tests and 95% intervals; equivalence by two one-sided tests at this level (a 90% interval).
ALPHA = 0.05


def _gzip_csv(frame, path):
    """A CSV, gzipped with no time stamp in its header, so that the same results give the same bytes."""
    text = frame.to_csv(index=False, float_format=f"%.{DIGITS}g", lineterminator="\n")
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(text.encode())


def export_results(arms, out_dir, meta):
    """Write the per-trial results of finished sweeps: ``arms`` maps an arm's name to its sweep folders.
    ``trials.csv.gz``: one row per finished trial (arm, trial, seed, its overrides as JSON and as
    columns, every test quantity); ``curves.csv.gz``: one row per validation evaluation (arm, trial,
    step, :data:`CURVE_KEYS`); ``meta.json``: ``meta`` as given."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trials, curves = [], []
    for arm, sweep_dirs in arms.items():
        for sweep_dir in sweep_dirs:
            sweep = infovae.open_sweep(sweep_dir)
            specs = {t.name: t for t in sweep.spec.trials}
            for row in sweep.results[sweep.results["status"] == "ok"].to_dict("records"):
                trial = specs[row["trial"]]
                summary = json.loads((sweep.run_dir(row["trial"]) / "summary.json").read_text())
                trials.append(
                    {
                        "arm": arm,
                        "trial": row["trial"],
                        "seed": trial.seed,
                        "overrides": json.dumps(trial.overrides, sort_keys=True),
                    }
                    | {key: value for key, value in trial.overrides.items()}
                    | {key: value for key, value in summary.items() if not isinstance(value, (dict, list))}
                )
                for line in (sweep.run_dir(row["trial"]) / "metrics.jsonl").read_text().splitlines():
                    record = json.loads(line)
                    curves.append(
                        {"arm": arm, "trial": row["trial"], "step": record["step"]} | {k: record.get(k) for k in CURVE_KEYS}
                    )
    _gzip_csv(pd.DataFrame.from_records(trials), out_dir / TRIALS)
    _gzip_csv(pd.DataFrame.from_records(curves), out_dir / CURVES)
    (out_dir / META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


@dataclass
class Results:
    """The study's results read back: ``trials`` (one row per trial, with its curves' falls and decay
    added), ``curves`` (one row per validation evaluation) and ``meta``."""

    trials: pd.DataFrame
    curves: pd.DataFrame
    meta: dict

    @classmethod
    def read(cls, folder):
        folder = Path(folder)
        missing = [name for name in (TRIALS, CURVES, META) if not (folder / name).is_file()]
        if missing:
            raise UserInputError(f"{folder} holds no study results (missing {', '.join(missing)})")
        trials = pd.read_csv(folder / TRIALS)
        curves = pd.read_csv(folder / CURVES)
        derived = {
            (arm, trial): curve_tests(group, WINDOWS.get(arm, DEFAULT_WINDOWS))
            for (arm, trial), group in curves.groupby(["arm", "trial"], sort=False)
        }
        extra = pd.DataFrame([derived[key] for key in zip(trials["arm"], trials["trial"])], index=trials.index)
        return cls(pd.concat([trials, extra], axis=1), curves, json.loads((folder / META).read_text()))

    def rows(self, arm, overrides):
        """The trials of ``arm`` whose overrides are exactly ``overrides`` (a setting), by seed."""
        frame = self.trials[self.trials["arm"] == arm]
        keep = [json.loads(text) == overrides for text in frame["overrides"]]
        if not any(keep):
            raise UserInputError(f"the results hold no trial of the {arm} arm with the setting {overrides}")
        return frame[keep].set_index("seed").sort_index()

    def values(self, arm, overrides, metric):
        """``{seed: value}`` of one setting."""
        return self.rows(arm, overrides)[metric].astype(float).to_dict()

    def curve(self, trial, key="probe_accuracy"):
        frame = self.curves[self.curves["trial"] == trial]
        return frame["step"].to_numpy(float), frame[key].to_numpy(float)


@dataclass(frozen=True)
class Windows:
    """The windows of a curve's fall, as fractions of its last step: the evaluations after ``early[0]`` and
    up to ``early[1]`` of the training steps, and those after ``late``."""

    early: tuple
    late: float

    def __str__(self):
        start = f"after {self.early[0]:.0%} and up to" if self.early[0] > 0 else "up to"
        return f"the evaluations {start} {self.early[1]:.0%} of the training steps less its mean over those after {self.late:.0%}"


# Fixed before the runs they measure. The three confirmatory arms: from the pilot's curves (seeds 100-103),
# where the control's probe peaked (after 5% and up to 20% of training) and ended (after 75%). The mechanism
# follow-up: from the confirmatory control's curves, where its probe at beta = 0 fell (from the first
# evaluation until 20% of its 1500 steps) and had levelled off (after 50%).
# The fall count (confirm_fall_count.yaml) keeps the follow-up's windows.
WINDOWS = {arm: Windows(early=(0.0, 0.10), late=0.50) for arm in ("mechanism", "fall_count")}
DEFAULT_WINDOWS = Windows(early=(0.05, 0.20), late=0.75)


def window_means(steps, values, windows=DEFAULT_WINDOWS):
    """``(early, late)``: a curve's means over the early and the late window (:class:`Windows`); NaN where a
    window holds no finite evaluation."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    last = steps.max()
    early = (steps > windows.early[0] * last) & (steps <= windows.early[1] * last) & np.isfinite(values)
    late = (steps > windows.late * last) & np.isfinite(values)
    return tuple(float(values[window].mean()) if window.any() else np.nan for window in (early, late))


def window_fall(steps, values, windows=DEFAULT_WINDOWS):
    """A curve's mean over the early window less its mean over the late one (:func:`window_means`): positive
    where it fell, negative where it rose. The windows are fixed in advance, not chosen from the curve (a
    best evaluation less the last is biased upward by the noise), so the fall is 0 on average on a flat
    curve whatever its noise; the noise of one curve is carried into the comparisons by the spread of the
    falls over seeds. NaN where a window holds no finite evaluation."""
    early, late = window_means(steps, values, windows)
    return early - late


def curve_tests(frame, windows=DEFAULT_WINDOWS):
    """Per trial, from its validation curves: the fall between fixed windows (:func:`window_fall`) of the
    probe, of the decoder's use of z (``recon_z_gain``) and of ``mi``; the probe over the early window
    (``early_probe``: where it started from); and the decay of the probe over the late part (``decay_test``:
    was it still moving at the end?)."""
    steps = frame["step"].to_numpy(float)
    curves = {"fall": "probe_accuracy", "use_fall": "recon_z_gain", "mi_fall": "mi"}
    out = {name: window_fall(steps, frame[key].to_numpy(float), windows) for name, key in curves.items()}
    out["early_probe"] = window_means(steps, frame["probe_accuracy"].to_numpy(float), windows)[0]
    try:
        decay = decay_test(frame["probe_accuracy"].to_numpy(float), steps)["decay"]
    except UserInputError:  # no such curve (unlabelled data, say), or too short
        decay = np.nan
    return out | {"decay": decay}


# The values a test quantity can take (the reports' ranges, and the probes from x and from (x, z)): an
# interval of its mean is cut to them, so that no accuracy is printed above 1.
BOUNDS = {
    **RANGES,
    **{name: (0.0, 1.0) for name in ("probe_x_accuracy", "probe_xz_accuracy")},
    "active_units": (0.0, math.inf),
}


def t_interval(values, level=1 - ALPHA, metric=None):
    """``(mean, low, high, n)`` of the mean over seeds: Student's t
    (:func:`infovae.diagnostics.intervals.t_interval`), cut to the values ``metric`` can take
    (:data:`BOUNDS`)."""
    n = int(np.isfinite(np.asarray(values, float)).sum())
    mean, half = intervals.t_interval(values, level)
    floor, ceiling = BOUNDS.get(metric, (-math.inf, math.inf))
    return mean, max(mean - half, floor), min(mean + half, ceiling), n


@dataclass
class Paired:
    """A difference of means over seeds, paired by seed: the seeds' differences ``d``; ``mean``, its 95%
    interval ``low``–``high``, the 90% interval ``low90``–``high90`` (that of equivalence), the two-sided
    p-value of no difference and the p-value of the two one-sided tests of equivalence within
    ``±margin``.

    ``bias``: how far the expected difference may be from the difference of the quantities compared,
    either way, when each side is a plain estimate with a bias of its own (the coverage TV's, at most
    :func:`~infovae.diagnostics.coverage.tv_noise_bias_bound`). The intervals are widened by it; no
    difference is rejected only where ``|mean| - bias`` is (the p-value of the nearer end of
    ``±bias``), and equivalence is shown within ``±(margin - bias)``: each conclusion holds for the
    quantities themselves, whatever their biases within the bound."""

    d: np.ndarray
    margin: float
    bias: float = 0.0

    @property
    def n(self):
        return len(self.d)

    @property
    def mean(self):
        return float(self.d.mean()) if self.n else math.nan

    @property
    def se(self):
        return float(self.d.std(ddof=1) / math.sqrt(self.n)) if self.n > 1 else math.nan

    def interval(self, level):
        if self.n < 2:
            return math.nan, math.nan
        half = stats.t.ppf(0.5 + level / 2, self.n - 1) * self.se + self.bias
        return self.mean - half, self.mean + half

    @property
    def p(self):
        if self.n < 2:
            return math.nan
        excess = max(abs(self.mean) - self.bias, 0.0)
        if self.se == 0:
            return 0.0 if excess > 0 else 1.0
        return float(min(1.0, 2 * stats.t.sf(excess / self.se, self.n - 1)))

    @property
    def p_equivalence(self):
        if self.n < 2:
            return math.nan
        margin = self.margin - self.bias
        if margin <= 0:
            return 1.0
        if self.se == 0:
            return 0.0 if abs(self.mean) < margin else 1.0
        below = stats.t.sf((self.mean + margin) / self.se, self.n - 1)  # H0: d <= -margin
        above = stats.t.cdf((self.mean - margin) / self.se, self.n - 1)  # H0: d >= margin
        return float(max(below, above))


def paired(a, b, margin, bias=0.0):
    """:class:`Paired` of ``a - b`` over the seeds both have (``a``, ``b``: ``{seed: value}``; ``b`` None:
    ``a`` against 0), allowing ``bias`` (:class:`Paired`)."""
    seeds = sorted(set(a) if b is None else set(a) & set(b))
    d = np.array([a[s] - (0.0 if b is None else b[s]) for s in seeds], float)
    return Paired(d[np.isfinite(d)], margin, bias)


def holm(p_values):
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count): reject where below the level."""
    p = np.asarray(p_values, float)
    out = np.full(len(p), math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    out[order] = adjusted
    return out


@dataclass
class Comparison:
    """One comparison of the family: ``label`` says what is compared, ``difference`` the paired
    numbers; ``p_holm`` and ``p_equivalence_holm`` are filled in across the family."""

    key: str
    label: str
    metric: str
    unit: str
    difference: Paired
    p_holm: float = math.nan
    p_equivalence_holm: float = math.nan

    @property
    def outcome(self):
        """``"higher"`` or ``"lower"`` (the difference resolved after Holm), ``"equivalent"`` (within the
        margin after Holm), or ``"not resolved"``."""
        if self.p_holm < ALPHA:
            return "higher" if self.difference.mean > 0 else "lower"
        if self.p_equivalence_holm < ALPHA:
            return "equivalent"
        return "not resolved"


def correct(comparisons):
    """Fill in Holm's adjusted p-values across the family of :class:`Comparison`, for the differences and,
    apart, for the equivalences."""
    for adjusted, attribute in (
        (holm([c.difference.p for c in comparisons]), "p_holm"),
        (holm([c.difference.p_equivalence for c in comparisons]), "p_equivalence_holm"),
    ):
        for comparison, value in zip(comparisons, adjusted):
            setattr(comparison, attribute, float(value))
    return comparisons


def fell(falls, threshold):
    """``{seed: fall > threshold}`` from ``{seed: fall}`` (a seed whose fall is NaN is left out)."""
    return {seed: bool(fall > threshold) for seed, fall in falls.items() if np.isfinite(fall)}


@dataclass
class Count:
    """One test on counts of seeds whose curve fell (``{seed: bool}``). With ``b``: ``a`` against ``b``,
    paired by seed (the seeds both have), by the exact McNemar test, two-sided: under no difference, the
    seeds where exactly one of the two fell are as likely to be either's (binomial, 1/2). Without ``b``:
    whether the share of ``a``'s seeds that fell is below ``rate``, by the exact binomial test, one-sided.
    ``p_holm`` is filled in across the counts' own family (:func:`correct_counts`)."""

    key: str
    label: str
    a: dict
    b: dict | None = None
    rate: float = math.nan
    p_holm: float = math.nan

    @property
    def seeds(self):
        return sorted(self.a) if self.b is None else sorted(set(self.a) & set(self.b))

    @property
    def discordant(self):
        """``(only a fell, only b fell)`` over the paired seeds."""
        only_a = sum(self.a[s] and not self.b[s] for s in self.seeds)
        only_b = sum(self.b[s] and not self.a[s] for s in self.seeds)
        return only_a, only_b

    @property
    def p(self):
        if self.b is None:
            return float(stats.binomtest(sum(self.a.values()), len(self.a), self.rate, alternative="less").pvalue)
        only_a, only_b = self.discordant
        if only_a + only_b == 0:
            return 1.0
        return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)

    @property
    def outcome(self):
        """``"higher"`` or ``"lower"`` (``a``'s seeds fell resolvably more or less often than ``b``'s),
        ``"below"`` (the share resolvably below ``rate``), or ``"not resolved"``; after Holm."""
        if not self.p_holm < ALPHA:
            return "not resolved"
        if self.b is None:
            return "below"
        only_a, only_b = self.discordant
        return "higher" if only_a > only_b else "lower"


def correct_counts(counts):
    """Fill in Holm's adjusted p-values across a family of :class:`Count`."""
    for count, value in zip(counts, holm([c.p for c in counts])):
        count.p_holm = float(value)
    return counts
