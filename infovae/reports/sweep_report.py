"""A sweep's report: figures over the settings of the swept keys and a ``report.md`` that says, per
setting, what happened to the latent.

Keys that are the same in every trial (the sweep's ``set:``, and swept keys that took one value) are
named once in the header; labels carry only the keys that vary. Where a setting ran with several
seeds, figures show 95% Student-t intervals of the mean over seeds.
"""

import json
from collections import Counter
from pathlib import Path

import numpy as np

from infovae.diagnostics.coverage import tv_noise_bias_bound
from infovae.diagnostics.decay import decay_test
from infovae.diagnostics.evaluate import evaluated_examples
from infovae.diagnostics.quantities import QUANTITIES
from infovae.errors import UserInputError
from infovae.files import write_document
from infovae.reports import images, plots
from infovae.reports.verdicts import (
    COLLAPSE_MI,
    COVERAGE_THRESHOLD,
    SIGNIFICANCE,
    chance_accuracy,
    coverage_phrase,
    decay_phrase,
    probe_vs_chance,
)
from infovae.sweeps.sweep import open_sweep
from infovae.sweeps.trial import read_outcome
from infovae.training.run_folder import RunFolder
from infovae.training.runs import open_run

__all__ = ["SWEEP_CAPTIONS", "sweep_figures", "write_sweep_report"]

REPORT_DIR, REPORT = "report", "report.md"
MAX_LINES = 6
MAX_IMAGE_SETTINGS = MAX_HEATMAP_PANELS = 8
HEATMAP_METRICS = ("probe_accuracy", "nmi", "coverage_tv", "mi", "marginal_kl", "nll")
FOREST_METRICS = ("probe_accuracy", "nmi", "coverage_tv", "mi", "nll")
SYMBOLS = {"objective.beta": "β", "objective.marginal_weight": "γ", "objective.jsd_weight": "δ"}
AXIS_LABELS = {
    "objective.beta": "β (weight of the per-example KL)",
    "objective.marginal_weight": "γ (weight of the marginal divergence)",
    "objective.jsd_weight": "δ (weight of the inter-latent JSD)",
}
SWEEP_CAPTIONS = {
    "heatmap": "Mean over seeds (test split) over two swept keys ((β, γ) where both are swept), one panel per value of "
    "the other swept keys; the colour's bright end is the good end, and the colour bar says where its scale is "
    "logarithmic or clipped.",
    "images": "What each setting's model makes of the same test examples (its first seed): completions of the given "
    "pixels from z ~ p(z|x) below the true image, or samples from the prior for an unconditional model.",
    "kl_split": (
        "The test split's KL to the aggregate prior over its evaluation examples, split into information (at most log n) "
        "and `marginal_kl` (between the n-component mixtures: it grows as posteriors narrow) per setting, "
        "each on its own scale."
    ),
    "probe_curves": "The validation probe over training, per setting (small multiples), against chance and the Bayes ceiling.",
    "forest": "Test-split results across seeds: every seed and the mean with its 95% t-interval (cut to the metric's "
    "range), per setting.",
}


def _value(v):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "none"  # as the results tables write it
    return f"{v:g}" if isinstance(v, float) else str(v)


def _setting_name(overrides):
    """A short label: Greek letters for the objective's weights, the last key part otherwise."""
    order = list(SYMBOLS)
    keys = sorted(overrides, key=lambda k: (order.index(k) if k in order else len(order), k))
    return " ".join(f"{SYMBOLS.get(k, k.split('.')[-1])}={_value(overrides[k])}" for k in keys) or "base"


def _clean(records):
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in records]


class _Sweep:
    """What the figures and sentences need from a sweep folder, read once."""

    def __init__(self, sweep_dir):
        self.sweep = open_sweep(sweep_dir)
        spec = self.sweep.spec
        self.dir = Path(sweep_dir)
        self.rows = _clean(self.sweep.results.to_dict("records")) if len(self.sweep.results) else []
        self.table = _clean(self.sweep.by_setting.to_dict("records")) if self.rows else []
        values = {k: {json.dumps(t.overrides.get(k), sort_keys=True, default=str) for t in spec.trials} for k in spec.swept_keys}
        # Swept keys with one value are as good as shared: named once, in the header.
        self.varying = tuple(k for k in spec.swept_keys if len(values[k]) > 1)
        self.constant = {k: spec.trials[0].overrides.get(k) for k in spec.swept_keys if k not in self.varying}
        self.shared = {**spec.shared, **self.constant}
        self.seeds = sorted({t.seed for t in spec.trials})
        self._labels = {}

    def name(self, overrides):
        return _setting_name({k: overrides.get(k) for k in self.varying})

    def probe_runs(self):
        """Per setting name, each finished trial's validation probe curve ``[(step, accuracy or None)]``."""
        curves = {}
        for trial in self.sweep.spec.trials:
            trial_dir = self.dir / "trials" / trial.name
            outcome = read_outcome(trial_dir)
            if outcome is None or outcome["status"] != "ok":
                continue
            records = RunFolder(self.sweep.run_dir(trial.name)).read_metrics()
            if not records:
                continue
            curves.setdefault(self.name(trial.overrides), []).append([(r["step"], r.get("probe_accuracy")) for r in records])
        return curves

    def setting_overrides(self):
        """Per setting name, the overrides of its varying keys."""
        out = {}
        for trial in self.sweep.spec.trials:
            out.setdefault(self.name(trial.overrides), {k: trial.overrides.get(k) for k in self.varying})
        return out

    def labels(self, name=None):
        """What the probes of the first finished trial's run (of the setting ``name``, where given: a sweep
        may vary them) were scored on: ``num_labels`` (the labels of the data's generator, which the
        coverage TV is over; 0 without one), and per split (``val``, ``test``) the number of examples an
        evaluation used and ``chance``, the most frequent label's share among them
        (:func:`~infovae.reports.verdicts.chance_accuracy`: what a probe that learned nothing scores at
        best), each ``None`` where unknown; read once per ``name`` (a run's splits are its data, loaded or
        generated again)."""
        if name not in self._labels:
            self._labels[name] = self._read_labels(name)
        return self._labels[name]

    def _read_labels(self, name):
        for row in self.rows:
            if row.get("status") != "ok" or (name is not None and self.name(row) != name):
                continue
            try:
                run = open_run(self.sweep.run_dir(row["trial"]))
                splits = run.splits
            except Exception:  # a damaged trial: no chance line, not a failed report
                continue
            # The coverage TV's bias bound counts the labels of the generator's mix, as the data's label
            # ids (sparse, or missing one) may not.
            out = {"num_labels": 0 if splits.generator is None else len(splits.generator.label_mix)}
            for split in ("val", "test"):
                # The examples an evaluation scored the probe on, selected as the evaluation selects them.
                held = evaluated_examples(getattr(splits, split), run.config)
                out[f"num_{split}"], out[f"{split}_chance"] = len(held), chance_accuracy(held.labels)
            return out
        return {"num_labels": 0, "num_val": None, "num_test": None, "val_chance": None, "test_chance": None}


def _aligned(runs):
    """Curves of several seeds on the union of their steps: ``steps``, ``values [seeds, steps]``."""
    steps = sorted({s for run in runs for s, _ in run})
    values = np.full((len(runs), len(steps)), np.nan)
    for i, run in enumerate(runs):
        for s, v in run:
            if v is not None:
                values[i, steps.index(s)] = v
    return np.array(steps), values


def _probe_figure(s):
    curves = s.probe_runs()
    if not curves or not any(v is not None for runs in curves.values() for run in runs for _, v in run):
        return None
    overrides = s.setting_overrides()
    panel_key = next(
        (k for k in ("objective.beta", "objective.marginal_weight") if k in s.varying), s.varying[0] if s.varying else None
    )
    groups = {}
    for name in sorted(curves, key=lambda n: tuple(str(overrides[n].get(k)) for k in s.varying)):
        key = overrides[name].get(panel_key) if panel_key else None
        groups.setdefault(key, []).append(name)
    panels = []
    for key, names in sorted(
        groups.items(), key=lambda kv: (kv[0] is None, kv[0] if isinstance(kv[0], (int, float)) else str(kv[0]))
    ):
        title = f"{AXIS_LABELS.get(panel_key, panel_key)} = {_value(key)}" if panel_key else "every setting"
        chunks = [names[i : i + MAX_LINES] for i in range(0, len(names), MAX_LINES)]
        for c, chunk in enumerate(chunks):
            lines = []
            for name in chunk:
                steps, values = _aligned(curves[name])
                rest = {k: v for k, v in overrides[name].items() if k != panel_key and v is not None}
                label = _setting_name(rest) if rest else _setting_name({panel_key: key}) if panel_key else name
                lines.append((label, steps, values))
            panels.append((title + (f" ({c + 1}/{len(chunks)})" if len(chunks) > 1 else ""), lines))
    labels = s.labels()
    ceiling = [r.get("bayes_accuracy") for r in s.rows if r.get("bayes_accuracy") is not None]
    return plots.plot_probe_panels(
        panels,
        chance=labels["val_chance"],
        ceiling=float(np.mean(ceiling)) if ceiling else None,
        panel_title=f"one panel per {AXIS_LABELS.get(panel_key, panel_key)}" if panel_key else "",
        num_examples=labels["num_val"],
    )


def _per_seed(s, metric):
    """Per setting name (in table order), the metric's values over the finished seeds."""
    values = {}
    for r in s.rows:
        if r.get("status") == "ok":
            values.setdefault(s.name(r), []).append(r.get(metric))
    return values


def _recorded(s, metric, name):
    """One setting's recorded values of the metric over its finished seeds (seeds without one left out)."""
    return [v for v in _per_seed(s, metric).get(name, []) if v is not None]


def _forest_figure(s):
    names = [s.name(e) for e in s.table]
    metrics = [m for m in FOREST_METRICS if any(e.get(f"{m}_mean") is not None for e in s.table)]
    if not names or not metrics:
        return None
    per_seed = {m: [_per_seed(s, m).get(n, []) for n in names] for m in metrics}
    reference = {}
    chance = s.labels()["test_chance"]
    ceiling = [r.get("bayes_accuracy") for r in s.rows if r.get("bayes_accuracy") is not None]
    probe_refs = []
    if chance is not None:
        probe_refs.append((chance, f"chance: most frequent label's share ({chance:.3f})", ":"))
    if ceiling:
        probe_refs.append((float(np.mean(ceiling)), "Bayes ceiling", "--"))
    reference["probe_accuracy"] = probe_refs
    if "coverage_tv" in metrics:
        reference["coverage_tv"] = [(COVERAGE_THRESHOLD, f"coverage threshold ({COVERAGE_THRESHOLD})", "--")]
    better = {m: QUANTITIES[m].better for m in metrics}
    return plots.plot_sweep_forest(names, metrics, per_seed, better, reference, seeds=len(s.seeds))


def _kl_figure(s):
    ok = [e for e in s.table if e.get("mi_mean") is not None and e.get("marginal_kl_mean") is not None]
    if not ok:
        return None
    names = [s.name(e) for e in ok]
    parts = {}
    for metric in ("mi", "marginal_kl"):
        intervals = [plots.mean_interval(_per_seed(s, metric).get(name, []), plots.RANGES[metric]) for name in names]
        parts[metric] = ([m for m, _, _ in intervals], [(low, high) for _, low, high in intervals])
    several = len(s.seeds) > 1
    return plots.plot_kl_split(
        names,
        parts["mi"][0],
        parts["marginal_kl"][0],
        parts["mi"][1] if several else None,
        parts["marginal_kl"][1] if several else None,
        seeds=len(s.seeds),
    )


def _heatmap_axes(s):
    """``(y key, x key)`` of the heatmaps and the other swept keys (which make the panels): (β, γ) where
    both are swept, else the first two swept keys (the objective's weights first); ``None`` with fewer
    than two swept keys."""
    order = list(SYMBOLS)
    keys = sorted(s.varying, key=lambda k: (order.index(k) if k in order else len(order), s.varying.index(k)))
    if len(keys) < 2:
        return None
    axes = (
        ("objective.beta", "objective.marginal_weight")
        if {"objective.beta", "objective.marginal_weight"} <= set(keys)
        else tuple(keys[:2])
    )
    return axes, [k for k in keys if k not in axes]


def _heatmaps(s):
    """One heatmap per key metric over two swept keys, panels over the values of the others."""
    layout = _heatmap_axes(s)
    if layout is None:
        return {}
    axes_keys, others = layout
    table = [e for e in s.table if all(e.get(k) is not None for k in axes_keys)]
    if all(isinstance(e.get(k), (int, float)) for e in table for k in others) and len(others) == 1:
        panel_key = others[0]  # one numeric key: panels titled "label = value"
    elif others:
        panel_key = "panel"  # several keys, or names: panels titled by the setting of those keys
        table = [{**e, panel_key: _setting_name({k: e.get(k) for k in others})} for e in table]
    else:
        panel_key = None
    shown = ""
    if panel_key:
        counts = Counter(json.dumps(e.get(panel_key), default=str) for e in table)
        if len(counts) > MAX_HEATMAP_PANELS:
            kept = {value for value, _ in counts.most_common(MAX_HEATMAP_PANELS)}
            table = [e for e in table if json.dumps(e.get(panel_key), default=str) in kept]
            shown = f"; {MAX_HEATMAP_PANELS} of {len(counts)} panels, those with the most settings"
    figures = {}
    for metric in HEATMAP_METRICS:
        if any(e.get(f"{metric}_mean") is not None for e in table):
            q = QUANTITIES[metric]
            figures[f"heatmap_{metric}"] = plots.plot_sweep_heatmap(
                table,
                metric,
                axes_keys,
                panel_key,
                q.better,
                AXIS_LABELS,
                q.description + " (test split)" + shown,
                plots.RANGES.get(metric),
            )
    return figures


def _images_figure(s):
    """One image grid per setting (its first finished seed), side by side, where the data are images."""
    first = {}
    for r in sorted(s.rows, key=lambda r: r.get("seed", 0)):
        if r.get("status") == "ok":
            first.setdefault(s.name(r), r)
    panels, layout = [], None
    for name in [s.name(e) for e in s.table][:MAX_IMAGE_SETTINGS]:
        if name not in first:
            continue
        run = open_run(s.sweep.run_dir(first[name]["trial"]))
        test = run.splits.test
        layout = test.info.get("image")
        if layout is None:
            return None
        grid, rows, columns = images.setting_images(run, test)
        panels.append((f"{name} (seed {first[name].get('seed', 0)})", grid))
    if not panels:
        return None
    more = len(s.table) - MAX_IMAGE_SETTINGS
    what = "completions of the given pixels from z ~ p(z|x)" if layout.completes else "samples from the prior"
    title = f"Each setting's model on the same test examples: {what}" + (
        f" (the first {MAX_IMAGE_SETTINGS} of {len(s.table)} settings)" if more > 0 else ""
    )
    given = layout.given if layout.completes else None
    value_range = images.value_range(run, test)
    return plots.plot_setting_images(panels, given, rows, columns, value_range, title)


def sweep_figures(sweep_dir):
    """Heatmaps of the key metrics over two swept keys, the KL split per setting, the validation probe
    curves as small multiples, a forest plot across seeds and, where the data are images, an image grid
    per setting; by file stem."""
    s = _Sweep(sweep_dir)
    figures = _heatmaps(s)
    for name, make in (
        ("kl_split", _kl_figure),
        ("probe_curves", _probe_figure),
        ("forest", _forest_figure),
        ("images", _images_figure),
    ):
        figure = make(s)
        if figure is not None:
            figures[name] = figure
    return figures


def _decay_sentence(runs):
    """Whether a setting's validation probe decayed over the second half of training: the decay test
    (:func:`~infovae.diagnostics.decay.decay_test`) of the mean curve over its seeds (those of the
    first seed's length and steps)."""
    steps = [step for step, _ in runs[0]]
    same = [[v for _, v in run] for run in runs if [step for step, _ in run] == steps]
    mean = np.mean(same, axis=0)
    try:
        result = decay_test(mean, steps)
    except UserInputError as error:
        return f"validation probe not tested for decay ({error})"
    seeds = f"mean of {len(same)} seeds, " if len(same) > 1 else ""
    return (
        f"validation probe ({seeds}steps {result['start_step']:.0f}–{result['end_step']:.0f}): {decay_phrase(result)} "
        f"(the late part's line falls by {result['decay']:.3f}, 95% interval {result['low']:.3f} to {result['high']:.3f}, "
        f"p = {result['p_value']:.2g}); it ended at {mean[-1]:.3f}"
    )


def _coverage_sentence(values, num_labels, num_examples):
    """Whether the prior covers the strategies, from the test coverage TV of each seed (on
    ``num_examples`` generated examples, ``num_labels`` labels) against the threshold
    (:func:`~infovae.reports.verdicts.coverage_phrase`): covered where the 95% t-interval over seeds ends
    below it; not covered where the interval's lower end, less the bound on each plain TV's upward bias
    (:func:`~infovae.diagnostics.coverage.tv_noise_bias_bound`; the bias does not average out over seeds),
    is above it; otherwise, or with one seed, not resolved. The TV is that of data generated for the
    test split's evaluated contexts."""
    mean, low, high = plots.mean_interval(values, plots.RANGES["coverage_tv"])
    if not np.isfinite(low):
        return coverage_phrase(low, high, f"plain test TV {mean:.3f}, one seed: no interval")
    numbers = f"plain test TV {mean:.3f}, 95% interval {low:.3f}–{high:.3f} over seeds"
    if num_labels and num_examples:
        bias = tv_noise_bias_bound(num_labels, num_examples)
        numbers += (
            f", whose low end less the plain TV's upward bias (at most {bias:.3f} at n = {num_examples}) is {low - bias:.3f}"
        )
        low -= bias
    else:  # the bias is not bounded without the numbers of labels and examples: no "not covered"
        numbers += ", biased upwards by its noise by an unknown amount"
        low = -np.inf
    return coverage_phrase(low, high, f"{numbers}; threshold {COVERAGE_THRESHOLD}")


def _setting_sentences(s):
    """One line per setting: is the test probe above chance, did the validation probe decay, how did
    the test KL split, does the prior cover the data."""
    curves = s.probe_runs()
    lines = []
    for e in s.table:
        name = s.name(e)
        labels = s.labels(name)
        num_labels, num_test, chance = labels["num_labels"], labels["num_test"], labels["test_chance"]
        parts = []
        # Above chance (the most frequent label's share among the test examples evaluated) against the
        # binomial noise of those examples; at chance only within a margin.
        probe = probe_vs_chance(_per_seed(s, "probe_accuracy").get(name, []), num_test, chance) if chance else None
        if probe is not None:
            parts.append(f"test probe {probe['text']}")
        runs = [run for run in curves.get(name, []) if run and all(v is not None for _, v in run)]
        if runs:
            parts.append(_decay_sentence(runs))
        if e.get("mi_mean") is not None and e["mi_mean"] < COLLAPSE_MI:
            parts.append(f"**latent collapse** (test information {e['mi_mean']:.4f} nats < {COLLAPSE_MI})")
        if e.get("mi_mean") is not None and e.get("marginal_kl_mean") is not None:
            parts.append(
                f"test KL to the aggregate prior over the evaluation examples = {e['mi_mean']:.4g} nats of information "
                f"(at most log n) + {e['marginal_kl_mean']:.4g} of `marginal_kl` (between the n-component mixtures: it "
                "grows as posteriors narrow)"
            )
        mmd = _recorded(s, "marginal_mmd", name)
        if mmd:
            p_values = _recorded(s, "marginal_mmd_p", name)
            found = sum(p < SIGNIFICANCE for p in p_values)
            apart = f"; its permutation test finds a mismatch (p < {SIGNIFICANCE}) in {found} of {len(p_values)} seeds"
            parts.append(
                f"the aggregate posterior's squared MMD to the prior {np.mean(mmd):.3g} (0 on average where they match)"
                + (apart if p_values else "")
            )
        coverage = _recorded(s, "coverage_tv", name)
        if coverage:
            parts.append(_coverage_sentence(coverage, num_labels, num_test))
        if e.get("failed"):
            parts.append(f"{e['failed']} of {e['runs']} trials failed")
        if parts:
            seeds = e.get("probe_accuracy_n") or e.get("mi_n") or 0
            lines.append(f"- **{name}** ({seeds} seed{'s' if seeds != 1 else ''}): " + "; ".join(parts) + ".")
    return "\n".join(lines)


def _caption(name):
    return (
        SWEEP_CAPTIONS["heatmap"] + f" Metric: `{name.removeprefix('heatmap_')}`."
        if name.startswith("heatmap_")
        else SWEEP_CAPTIONS[name]
    )


def write_sweep_report(sweep_dir):
    """Figures and ``report.md`` for the sweep in ``sweep_dir``; returns the report's path."""
    sweep_dir = Path(sweep_dir)
    s = _Sweep(sweep_dir)
    figures = sweep_figures(sweep_dir)
    plots.save_figures(figures, sweep_dir / REPORT_DIR)
    table = s.sweep.table if s.rows else "No trial has finished."
    body = "\n\n".join(
        f"### {name.replace('_', ' ')} (`{REPORT_DIR}/{name}.png`)\n{_caption(name)}\n\n![{name}]({REPORT_DIR}/{name}.png)"
        for name in figures
    )
    shared = "\n".join(f"- `{k}` = {_value(v)}" for k, v in s.shared.items()) or "- (none)"
    varying = (
        "\n".join(
            f"- `{k}` ({SYMBOLS.get(k, k.split('.')[-1])}): "
            f"{', '.join(sorted({_value(t.overrides.get(k)) for t in s.sweep.spec.trials}))}"
            for k in s.varying
        )
        or "- (none)"
    )
    ok = sum(r.get("status") == "ok" for r in s.rows)
    unfinished = "".join(f"\n- `{r['trial']}` {r['status']}: {r.get('error') or ''}" for r in s.rows if r.get("status") != "ok")
    unfinished = f"\n\nTrials not finished:{unfinished}" if unfinished else ""
    text = (
        f"# Sweep report: {sweep_dir.name}\n\n"
        f"{len(s.sweep.spec.trials)} trials ({ok} finished), seeds {', '.join(map(str, s.seeds))}. "
        "Test-split numbers come from each trial's `summary.json`, probe curves from its validation evaluations; "
        "means are over seeds, intervals 95% Student-t intervals of the mean.\n\n"
        f"Set in every trial:\n{shared}\n\nSwept (the labels name these only):\n{varying}\n\n"
        f"## What happened to the latent (means over seeds)\n\n{_setting_sentences(s)}\n\n"
        "## Results (test split)\n\nMean ± standard deviation over seeds; runs = "
        f"finished/total.\n\n{table}{unfinished}\n\n## Figures\n\n{body}\n\nEach trial's run directory (`trials/NAME/run`) "
        "has a report of its own: `infovae report trials/NAME/run`.\n"
    )
    path = sweep_dir / REPORT
    write_document(path, text)
    return path
