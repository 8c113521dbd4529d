"""A sweep's results: one row per trial (``results.csv``) and the mean and spread over seeds
(``results_by_setting.csv`` and ``results.md``)."""

import csv
import math

import numpy as np

__all__ = ["METRICS", "aggregate", "markdown_table", "trial_rows", "write_results"]

# The summary metrics a sweep table shows, in this order.
METRICS = (
    "probe_accuracy", "bayes_accuracy", "nmi", "coverage_tv", "mi", "marginal_kl", "jsd",
    "latent_perplexity", "active_units", "test_loss", "test_recon", "test_kl", "nll", "seconds_per_step",
)  # fmt: skip


def trial_rows(spec, outcomes):
    """One row per trial with an outcome: its overridden keys, seed, status, error and summary."""
    rows = []
    for trial in spec.trials:
        outcome = outcomes.get(trial.name)
        if outcome is None:
            continue
        row = {key: trial.overrides.get(key, "") for key in spec.swept_keys}
        row.update(seed=trial.seed, status=outcome["status"], error=outcome["error"], trial=trial.name)
        row.update({k: v for k, v in outcome["summary"].items() if k != "backend"})
        rows.append(row)
    return rows


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def aggregate(spec, rows):
    """Mean and standard deviation over seeds of every metric, for each setting of the swept keys."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(str(row[k]) for k in spec.swept_keys), []).append(row)
    table = []
    for key, members in groups.items():
        ok = [r for r in members if r["status"] == "ok"]
        entry = dict(zip(spec.swept_keys, (members[0][k] for k in spec.swept_keys)))
        entry.update(runs=len(members), failed=len(members) - len(ok))
        for metric in METRICS:
            values = [r[metric] for r in ok if _number(r.get(metric))]
            entry[f"{metric}_mean"] = float(np.mean(values)) if values else None
            entry[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else (0.0 if values else None)
        table.append(entry)
    return sorted(table, key=lambda e: tuple(_order(e[k]) for k in spec.swept_keys))


def _order(value):
    """Sort numbers numerically and before anything else, the rest by their text."""
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


def _write_csv(path, rows):
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


TABLE_METRICS = ("probe_accuracy", "nmi", "coverage_tv", "mi", "marginal_kl", "jsd", "nll", "seconds_per_step")


def _cell(value):
    return "none" if value is None or value == "" else f"{value:g}" if isinstance(value, float) else str(value)


def markdown_table(spec, table, metrics=TABLE_METRICS):
    """The per-setting table as markdown: ``mean ± sd`` over seeds (the mean alone for one seed)."""
    shown = [m for m in metrics if any(e[f"{m}_mean"] is not None for e in table)]
    header = [k.split(".")[-1] for k in spec.swept_keys] + ["runs"] + shown
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in table:
        ok = e["runs"] - e["failed"]
        cells = [_cell(e[k]) for k in spec.swept_keys] + [f"{ok}/{e['runs']}"]
        for m in shown:
            mean, sd = e[f"{m}_mean"], e[f"{m}_std"]
            cells.append("–" if mean is None else f"{mean:.3f} ± {sd:.3f}" if ok > 1 else f"{mean:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(spec, rows, out_dir):
    """Write ``results.csv``, ``results_by_setting.csv`` and ``results.md``; return the markdown table."""
    _write_csv(out_dir / "results.csv", rows)
    table = aggregate(spec, rows)
    _write_csv(out_dir / "results_by_setting.csv", table)
    text = markdown_table(spec, table)
    failures = [r for r in rows if r["status"] != "ok"]
    notes = "".join(f"\n- `{r['trial']}` failed: {r['error']}" for r in failures)
    (out_dir / "results.md").write_text(
        f"# Sweep {spec.path.name}\n\nMean ± standard deviation over seeds; runs = finished/total.\n\n{text}\n"
        + (f"\nFailed trials:{notes}\n" if failures else "")
    )
    return text
