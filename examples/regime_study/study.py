"""The regime study's numbers: per-trial curve statistics, intervals over seeds, and the verdicts.

Everything here reads finished sweep folders (``infovae.open_sweep``) and returns plain tables and
text; :mod:`run` runs the sweeps and writes ``docs/regime_study.md`` from what this module computes.
"""

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

import infovae

# Evaluations averaged at each end of a probe curve (one evaluation is noisy at ~1000 examples).
WINDOW = 3
# A setting has converged when its mean validation probe over the last quarter of the evaluations is
# within this of the quarter before it.
PLATEAU = 0.01


def interval(values, level=0.95):
    """``(mean, low, high, n)``: the mean and its two-sided Student-t interval over seeds."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan"), 0
    if len(values) == 1:
        return float(values[0]), float("nan"), float("nan"), 1
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(values.mean() - half), float(values.mean() + half), len(values)


def difference(a, b, level=0.95):
    """``(mean(a) - mean(b), low, high)``: Welch's interval of the difference of two means."""
    a = np.asarray([v for v in a if np.isfinite(v)], float)
    b = np.asarray([v for v in b if np.isfinite(v)], float)
    if len(a) < 2 or len(b) < 2:
        return float(a.mean() - b.mean()), float("nan"), float("nan")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else len(a) + len(b) - 2
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    d = float(a.mean() - b.mean())
    return d, d - half, d + half


def fmt(mean, low=None, high=None, digits=3):
    """``mean [low, high]`` (the mean alone without an interval)."""
    if mean is None or not np.isfinite(mean):
        return "–"
    if low is None or not np.isfinite(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _number(text):
    """A swept value as a table spells it: ``1.0`` as ``1``, names as they are."""
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def _curve(run_dir, key="probe_accuracy"):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return np.array([r["step"] for r in records]), np.array([np.nan if r.get(key) is None else r[key] for r in records], float)


def curve_statistics(run_dir):
    """The validation curves of one run: of the probe, ``peak`` (the best mean of ``WINDOW`` consecutive
    evaluations), ``final`` (the mean of the last ``WINDOW``), ``decay = peak - final`` and ``drift``
    (the last quarter's mean less the previous quarter's: near 0 once the curve has plateaued); of
    ``mi``, its value at the probe's peak (``mi_at_peak``) and at the end (``mi_final``), as means over
    the same windows."""
    steps, probe = _curve(run_dir)
    _, mi = _curve(run_dir, "mi")
    if len(probe) < 2 * WINDOW or np.isnan(probe).all():
        return dict.fromkeys(("peak", "final", "decay", "drift", "peak_step", "mi_at_peak", "mi_final"), np.nan)
    kernel = np.ones(WINDOW) / WINDOW
    smooth, smooth_mi = np.convolve(probe, kernel, mode="valid"), np.convolve(mi, kernel, mode="valid")
    quarter = max(1, len(probe) // 4)
    at = int(smooth.argmax())
    return {
        "peak": float(smooth[at]),
        "peak_step": int(steps[at + WINDOW // 2]),
        "final": float(smooth[-1]),
        "decay": float(smooth[at] - smooth[-1]),
        "drift": float(probe[-quarter:].mean() - probe[-2 * quarter : -quarter].mean()),
        "mi_at_peak": float(smooth_mi[at]),
        "mi_final": float(smooth_mi[-1]),
    }


@dataclass
class Arm:
    """One sweep of the study, read back: a row per finished trial with its setting, test summary and
    curve statistics."""

    name: str
    frame: pd.DataFrame
    keys: tuple

    @classmethod
    def read(cls, name, sweep_dirs):
        """Read the sweeps in ``sweep_dirs`` as one arm. A later sweep adds trials to the earlier ones or,
        where it has a trial of the same name (the same overrides and seed), replaces it: that is how an
        arm trains the settings still moving at the end of its first sweep for longer, or gives a
        setting more seeds. ``train.steps`` becomes a key when it varies."""
        trials, sweeps = {}, []
        for sweep_dir in sweep_dirs:
            sweep = infovae.open_sweep(sweep_dir)
            sweeps.append(sweep)
            for row in sweep.results[sweep.results["status"] == "ok"].to_dict("records"):
                row.update(curve_statistics(sweep.run_dir(row["trial"])))
                row["train.steps"] = row["steps"]
                trials[row["trial"]] = row
        frame = pd.DataFrame.from_records(list(trials.values()))
        swept = dict.fromkeys(k for sweep in sweeps for k in sweep.spec.swept_keys) | {"train.steps": None}
        keys = tuple(k for k in swept if k in frame and frame[k].astype(str).nunique(dropna=False) > 1)
        return cls(name, frame, keys)

    def select(self, **where):
        """The rows whose swept keys (by the last part of their name, e.g. ``beta``) have these values;
        ``None`` matches a key a row does not set (the base config's value)."""
        frame = self.frame
        for short, value in where.items():
            keys = [k for k in frame.columns if "." in k and k.split(".")[-1] == short]
            column = frame[keys[0]] if keys else pd.Series([None] * len(frame), index=frame.index, dtype=object)
            if value is None:
                frame = frame[column.isna()]
            elif isinstance(value, (int, float)):
                frame = frame[np.isclose(pd.to_numeric(column, errors="coerce"), value)]
            else:
                frame = frame[column == value]
        return frame

    def values(self, metric, **where):
        return self.select(**where)[metric].astype(float).to_numpy()

    def table(self, metrics, names=None):
        """Markdown: per setting of the varying keys, ``mean [95% interval]`` of each metric over seeds."""
        header = [k.split(".")[-1] for k in self.keys] + ["seeds"] + [names.get(m, m) if names else m for m in metrics]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        settings = self.frame[list(self.keys)].astype(object).where(self.frame[list(self.keys)].notna(), None).drop_duplicates()
        for _, setting in settings.iterrows():
            mask = np.ones(len(self.frame), bool)
            for k in self.keys:
                mask &= (self.frame[k].isna() if setting[k] is None else self.frame[k] == setting[k]).to_numpy()
            rows = self.frame[mask]
            cells = [
                "none" if setting[k] is None else f"{setting[k]:g}" if isinstance(setting[k], float) else str(setting[k])
                for k in self.keys
            ]
            cells.append(str(len(rows)))
            for metric in metrics:
                mean, low, high, _ = interval(rows[metric].astype(float))
                cells.append(fmt(mean, low, high))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def drifts(self):
        """Per setting (its label), the mean over seeds of the probe's drift (module docstring)."""
        groups = self.frame.groupby([self.frame[k].astype(str) for k in self.keys], dropna=False)["drift"].mean()
        labels = [
            " ".join(f"{k.split('.')[-1]}={_number(v)}" for k, v in zip(self.keys, key) if v is not None and v == v)
            for key in groups.index
        ]
        return pd.Series(groups.to_numpy(), index=labels)

    def drift(self, **where):
        """The mean over seeds of the probe's drift in the rows that ``select(**where)`` picks."""
        return float(self.select(**where)["drift"].astype(float).mean())

    def converged(self):
        """Settings whose mean drift is within ``PLATEAU``: ``(converged, total)``."""
        drifts = self.drifts()
        return int((drifts.abs() <= PLATEAU).sum()), len(drifts)
