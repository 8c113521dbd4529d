"""A sweep's results as pandas tables: one row per trial (``results.csv``) and the mean and spread over
seeds per setting (``results_by_setting.csv``, ``results.md``)."""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from infovae.diagnostics.quantities import SUMMARY_KEYS
from infovae.errors import UserInputError
from infovae.sweeps.spec import SweepSpec, SweepTrial
from infovae.sweeps.trial import Outcome, trial_config
from infovae.training.config import parse_config

__all__ = ["PENDING", "TABLE_METRICS", "aggregate", "markdown_table", "swept_values", "trial_table", "write_results"]

# The status of a trial without an outcome: not started yet, or queued when the sweep was stopped.
PENDING = "pending"
_NO_OUTCOME: Outcome = {"status": PENDING, "error": "", "summary": {}}
# The summary numbers a sweep's tables carry, in this order.
METRICS = SUMMARY_KEYS + ("seconds_per_step",)
# Those the markdown table shows.
TABLE_METRICS = (
    "probe_accuracy",
    "nmi",
    "coverage_tv",
    "mi",
    "marginal_kl",
    "marginal_mmd",
    "test_jsd",
    "nll",
    "seconds_per_step",
)


def trial_table(spec: SweepSpec, outcomes: Mapping[str, Outcome], trials_dir: Path | None = None) -> pd.DataFrame:
    """One row per trial: its swept keys, seed, status, error, trial name and summary; a trial without an
    outcome is :data:`PENDING`. ``trials_dir``: the sweep's ``trials/`` folder, where each trial's recorded
    config gives the value of a swept key that the trial leaves to the base (:func:`swept_values`)."""
    rows = []
    for trial in spec.trials:
        outcome = outcomes.get(trial.name) or _NO_OUTCOME
        row = swept_values(spec, trial, None if trials_dir is None else Path(trials_dir) / trial.name)
        row.update(seed=trial.seed, status=outcome["status"], error=outcome["error"], trial=trial.name)
        row.update({k: v for k, v in outcome["summary"].items() if k != "backend"})
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def swept_values(spec: SweepSpec, trial: SweepTrial, trial_dir: Path | None = None) -> dict:
    """The values of the swept keys that a trial ran with: its overrides, and for a key it leaves to the base
    (a ``list:`` entry that does not set it), the value in the config the trial recorded (``trial_dir``'s
    ``trial.json``; without it, the spec's base), the schema's default where that config does not set it
    either. ``None`` where that config is missing or does not validate."""
    values = {key: trial.overrides[key] for key in spec.swept_keys if key in trial.overrides}
    if len(values) < len(spec.swept_keys):
        try:
            raw = trial.raw_config(spec.base) if trial_dir is None else trial_config(trial_dir)
            config = parse_config(raw).model_dump()
        except UserInputError:
            config = {}
        for key in spec.swept_keys:
            if key not in values:
                section, _, name = key.partition(".")
                values[key] = config.get(section, {}).get(name)
    return {key: values[key] for key in spec.swept_keys}


def _sort_key(column):
    """Numbers numerically and before anything else, the rest by their text."""
    return column.map(
        lambda v: (
            (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) and not _missing(v) else (1, 0.0, str(v))
        )
    )


def _missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def aggregate(spec: SweepSpec, table: pd.DataFrame) -> pd.DataFrame:
    """Per setting of the swept keys: ``runs`` (the trials that ran: :data:`PENDING` ones do not count),
    ``finished`` (status ``ok``), ``failed``, and ``<metric>_mean``, ``<metric>_std`` (sample standard
    deviation, 0 for one seed) and ``<metric>_n`` over the trials that finished."""
    keys = list(spec.swept_keys)
    if not table.empty:
        table = table[table["status"] != PENDING]
    if table.empty:
        return pd.DataFrame(columns=keys + ["runs", "finished", "failed"])
    table = table.copy()
    setting = table[keys].astype(object).where(table[keys].notna(), None).map(str) if keys else pd.DataFrame(index=table.index)
    table["_setting"] = setting.agg("|".join, axis=1) if keys else ""
    entries = []
    for _, members in table.groupby("_setting", sort=False):
        ok = members[members["status"] == "ok"]
        entry = {key: members[key].iloc[0] for key in keys}
        entry.update(runs=len(members), finished=len(ok), failed=int((members["status"] == "failed").sum()))
        for metric in METRICS:
            values = pd.to_numeric(ok[metric], errors="coerce").dropna() if metric in ok else pd.Series(dtype=float)
            values = values[np.isfinite(values)]
            entry[f"{metric}_mean"] = float(values.mean()) if len(values) else None
            entry[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else None)
            entry[f"{metric}_n"] = int(len(values))
        entries.append(entry)
    out = pd.DataFrame.from_records(entries)
    if keys:
        out = out.sort_values(keys, key=_sort_key, kind="stable").reset_index(drop=True)
    return out


def _cell(value):
    return "none" if _missing(value) or value == "" else f"{value:g}" if isinstance(value, float) else str(value)


def markdown_table(spec: SweepSpec, table: pd.DataFrame, metrics: Sequence[str] = TABLE_METRICS) -> str:
    """The per-setting table as markdown: ``mean ± sd`` over seeds (the mean alone for one seed)."""
    shown = [m for m in metrics if f"{m}_mean" in table and table[f"{m}_mean"].notna().any()]
    header = [k.split(".")[-1] for k in spec.swept_keys] + ["runs"] + shown
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, e in table.iterrows():
        # Only trials that finished count: an interrupted (or otherwise unfinished) trial did not.
        cells = [_cell(e[k]) for k in spec.swept_keys] + [f"{e['finished']}/{e['runs']}"]
        for m in shown:
            mean, sd, n = e[f"{m}_mean"], e[f"{m}_std"], e[f"{m}_n"]
            cells.append("–" if _missing(mean) else f"{mean:.3f} ± {sd:.3f}" if n > 1 else f"{mean:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(spec: SweepSpec, table: pd.DataFrame, out_dir: Path) -> str:
    """Write ``results.csv``, ``results_by_setting.csv`` and ``results.md``; return the markdown table."""
    table.to_csv(out_dir / "results.csv", index=False)
    settings = aggregate(spec, table)
    settings.to_csv(out_dir / "results_by_setting.csv", index=False)
    text = markdown_table(spec, settings)
    unfinished = table[table["status"] != "ok"] if not table.empty else table
    notes = "".join(
        f"\n- `{r['trial']}` {r['status']}" + (f": {r['error']}" if r["error"] else "") for _, r in unfinished.iterrows()
    )
    shared = "".join(f"\n- `{k}` = {v!r}" for k, v in spec.shared.items())
    timing = _timing_note(table)
    (out_dir / "results.md").write_text(
        (f"# Sweep {spec.path.name}" if spec.path else "# Sweep results")
        + "\n\nMean ± standard deviation over seeds; runs = finished/total."
        + (f"\n\nSet on every trial:{shared}" if shared else "")
        + f"\n\n{text}\n"
        + (f"\nTrials not finished:{notes}\n" if len(unfinished) else "")
        + timing
    )
    return text


def _timing_note(table):
    """What ``seconds_per_step`` means where trials trained together (a vectorised sweep), or nothing."""
    if "trials_sharing_time" not in table or not (pd.to_numeric(table["trials_sharing_time"], errors="coerce") > 1).any():
        return ""
    return (
        "\nseconds_per_step: where trials trained together in one program (trials_sharing_time > 1 in results.csv), "
        "the program's training time divided among its trials in proportion to the steps each trained.\n"
    )
