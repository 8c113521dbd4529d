"""Reports: the figures of a run (or a sweep) as PNG files and a ``report.md`` that embeds them with
the key numbers and what they say. :func:`run_figures` and :func:`sweep_figures` give the same figures
to a notebook without the command line."""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from infovae.core.latents import CategoricalLatent
from infovae.diagnostics.metrics import latent_codes
from infovae.errors import RunDirError
from infovae.reports import plots
from infovae.reports.arviz import pooled_predictive, to_datatree, write_datatree
from infovae.sweeps.sweep import SWEEP, open_sweep
from infovae.sweeps.trial import read_outcome
from infovae.training.runs import CONFIG, open_run

__all__ = ["run_figures", "sweep_figures", "write_report", "write_run_report", "write_sweep_report"]

REPORT_DIR, REPORT = "report", "report.md"
# A probe that ends this far below its best has decayed (accuracy points).
DECAY_THRESHOLD = 0.05
# Total variation between the true and the generated strategy mix below which the prior "covers" them.
COVERAGE_THRESHOLD = 0.1
FIGURE_EXAMPLES = 2000


def _num_labels(splits):
    return max(splits.train.num_labels, splits.test.num_labels)


def _generated_panels(run, test, q, p, rng):
    """The decoder's outputs per latent value, beside the data's own where the data has them."""
    backend, arch, info = run.backend, run.backend.arch, test.info
    if arch.latent == "discrete":
        z = np.arange(arch.latent_size)[:, None]
        weights = p.probs.mean(0)
        label = "z ="
    else:
        # Six latents drawn from the aggregate prior stand for the continuum.
        pick = rng.integers(len(test), size=6)
        z = (p.loc[pick] + p.scale[pick] * rng.standard_normal(p.loc[pick].shape))[:, None, :]
        weights = np.full(6, 1 / 6)
        label = "prior draw"
    if run.config.data.kind == "strategies":
        mean = backend.decoder_mean(test.x, z)  # [K, n, T, A]
        latent_actions = mean.mean(axis=(1, 2))
        true = run.splits.generator.label_factor_distributions(test.x).mean(1)
        return plots.plot_generated_strategies(latent_actions, weights, true, run.splits.generator.label_mix, label)
    if run.config.data.kind == "digits":
        from infovae.data.digits import to_images

        chosen = test.subset(slice(0, 8))
        probs = backend.decoder_mean(chosen.x, z)  # [K, 8, |y|]
        given = to_images(np.ones(chosen.x.shape[1]), np.zeros(chosen.y.shape[1]), info)
        return plots.plot_generated_digits(
            to_images(chosen.x, probs, info), to_images(chosen.x, np.zeros_like(chosen.y), info), given, label.split()[0]
        )
    return None


def run_figures(run, seed=0):
    """Every figure of a trained run (see :func:`infovae.open_run`), by file stem."""
    records, splits = run.records, run.splits
    test = splits.test.subset(slice(0, FIGURE_EXAMPLES))
    figures = {
        "loss_terms": plots.plot_loss_terms(records),
        "elbo_surgery": plots.plot_elbo_surgery(records),
    }
    num_labels = _num_labels(splits)
    if test.labels is not None:
        figures["probe"] = plots.plot_probe(records, num_labels)
    q, p = run.backend.posterior(test.x, test.y), run.backend.prior(test.x)
    figures["latent_usage"] = plots.plot_latent_usage(q, p)
    if test.labels is not None:
        num_codes = q.probs.shape[1] if isinstance(q, CategoricalLatent) else max(num_labels, 2)
        codes = latent_codes(q, num_labels, seed)
        figures["contingency"] = plots.plot_contingency(codes, test.labels, num_codes, test.info.get("label_name", "label"))
    generated = _generated_panels(run, test, q, p, np.random.default_rng(seed))
    if generated is not None:
        figures["generated"] = generated
    figures["ppc"] = _ppc_figure(run, seed)
    return figures


def _ppc_figure(run, seed):
    import arviz as az

    tree = pooled_predictive(to_datatree(run.backend, run.splits.test, num_draws=50, max_examples=300, seed=seed))
    if run.config.likelihood == "gaussian":
        az.plot_ppc_dist(tree, var_names=["y"], kind="kde", num_samples=30, backend="matplotlib")
        title = "Posterior predictive density of y (z ~ q) against the observed y, pooled over factors"
    elif run.config.likelihood == "bernoulli":
        az.plot_ppc_pava(tree, var_names=["y"], backend="matplotlib")
        title = "Calibration (PAV) of the predicted pixel probabilities (z ~ q) against the observed pixels"
    else:
        az.plot_ppc_rootogram(tree, var_names=["y"], backend="matplotlib")
        title = "Rootogram: predicted counts of each value of y (z ~ q) against the observed counts, pooled over factors"
        # ArviZ labels the axes for count data; here the x axis holds y's categories.
        ax = plt.gcf().axes[0]
        ax.set_xlabel("value of y")
        ax.set_ylabel("number of observations (square-root scale)")
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig = plt.gcf()  # the figure ArviZ just drew on
    fig.suptitle(title, fontsize=10)
    fig.set_size_inches(8, 4)
    return fig


def _save(figures, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        fig.savefig(folder / f"{name}.png", dpi=110)
        plt.close(fig)


def _fmt(value, digits=3):
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _probe_sentence(records):
    acc = [(r["step"], r["probe_accuracy"]) for r in records if r.get("probe_accuracy") is not None]
    if not acc:
        return "The data has no labels, so there is no probe."
    (peak_step, peak), (last_step, last) = max(acc, key=lambda a: a[1]), acc[-1]
    ceiling = next((r["bayes_accuracy"] for r in reversed(records) if r.get("bayes_accuracy") is not None), None)
    verdict = (
        f"**the probe decayed** by {peak - last:.3f} from its best"
        if peak - last > DECAY_THRESHOLD
        else "the probe did **not** decay (within {:.2f} of its best)".format(DECAY_THRESHOLD)
    )
    bound = f" The Bayes ceiling is {ceiling:.3f}." if ceiling is not None else ""
    return f"Sampled-z probe accuracy peaked at {peak:.3f} (step {peak_step}) and ended at {last:.3f} (step {last_step}): {verdict}.{bound}"


def _kl_sentence(summary):
    mi, mk = summary.get("mi"), summary.get("marginal_kl")
    if mi is None or mk is None:
        return ""
    total = mi + mk
    share = mi / total if total > 0 else 0.0
    return (
        f"On the test split the KL to the aggregate prior is {total:.3f} nats: **{mi:.3f} nats of information "
        f"about the example** (I(x,y; z)) and **{mk:.3f} nats of marginal mismatch** KL(q(z) || p(z)) "
        f"({100 * share:.0f}% / {100 * (1 - share):.0f}%)."
    )


def _coverage_sentence(run):
    tv = (run.summary or {}).get("coverage_tv")
    if tv is None:
        return ""
    test = run.splits.test.subset(slice(0, FIGURE_EXAMPLES))
    _, y_gen = run.backend.generate(test.x, seed=0)
    generator = run.splits.generator
    generated = generator.posterior(test.x, y_gen).mean(0)
    rows = "\n".join(
        f"| {s} | {true:.3f} | {gen:.3f} |" for s, (true, gen) in enumerate(zip(generator.strategy_mix, generated))
    )
    verdict = "the prior covers every strategy" if tv < COVERAGE_THRESHOLD else "**the prior does not cover the strategies evenly**"
    missing = [s for s, (t, g) in enumerate(zip(generator.label_mix, generated)) if g < 0.5 * t]
    gap = f" Under-generated strategies: {missing}." if missing else ""
    return (
        f"Data generated from the prior has strategy mix at total variation **{tv:.3f}** from the true mix: {verdict}.{gap}\n\n"
        f"| strategy | true mix | generated mix |\n|---|---|---|\n{rows}"
    )


def write_run_report(run_dir, seed=0, draws=100, examples=500):
    """Figures and ``report.md`` for the run in ``run_dir``; returns the report's path."""
    run = open_run(run_dir)
    folder = Path(run_dir) / REPORT_DIR
    figures = run_figures(run, seed)
    _save(figures, folder)
    write_datatree(to_datatree(run.backend, run.splits.test, num_draws=draws, max_examples=examples, seed=seed), folder / "inference.nc")
    s = run.summary or {}
    c = run.config
    keys = ["test_loss", "test_recon", "test_kl", "mi", "marginal_kl", "jsd", "nll", "latent_perplexity", "active_units",
            "probe_accuracy", "bayes_accuracy", "nmi", "coverage_tv"]  # fmt: skip
    table = "\n".join(f"| {k} | {_fmt(s.get(k))} |" for k in keys if s.get(k) is not None)
    captions = {
        "loss_terms": "The objective's terms on held-out data over training.",
        "elbo_surgery": "The KL term split into information about the example and marginal mismatch.",
        "probe": "Label information in sampled z over training, against the Bayes ceiling and chance.",
        "latent_usage": "How the aggregate posterior uses the latent, against the aggregate prior.",
        "contingency": "Which latent codes each label uses (rows sum to one).",
        "generated": "What the decoder makes of each latent value, beside the data's own.",
        "ppc": "ArviZ posterior predictive check.",
    }
    body = "\n\n".join(f"### {name.replace('_', ' ')}\n{captions[name]}\n\n![{name}]({REPORT_DIR}/{name}.png)" for name in figures)
    text = f"""# Run report: `{run_dir}`

Data **{c.data.kind}**, {c.model.latent} latent of size {c.model.latent_size} ({c.model.prior} prior),
objective beta={c.objective.beta}, marginal={c.objective.marginal} (weight {c.objective.marginal_weight}),
jsd_weight={c.objective.jsd_weight}; {s.get('steps', '?')} steps with the {c.backend} backend.

## What happened to the latent

- {_probe_sentence(run.records)}
- {_kl_sentence(s)}

{_coverage_sentence(run)}

## Test summary

| metric | value |
|---|---|
{table}

## Figures

{body}

ArviZ data (posterior z, posterior predictive, pointwise log-likelihood): `{REPORT_DIR}/inference.nc`.
"""
    path = Path(run_dir) / REPORT
    path.write_text(text)
    return path


# -- sweeps -----------------------------------------------------------------------------------


def _settings(rows, key_names):
    return sorted({tuple(r[k] for k in key_names) for r in rows}, key=lambda t: tuple(str(v) for v in t))


def sweep_figures(sweep_dir):
    """Heatmaps of the key metrics over (beta, marginal weight) for each JSD weight, probe curves per
    setting, and an ArviZ forest plot across seeds."""
    sweep = open_sweep(sweep_dir)
    spec, rows, table = sweep.spec, _rows(sweep), _table_records(sweep)
    figures = {}
    axes_keys = ("objective.beta", "objective.marginal_weight")
    if all(k in spec.swept_keys for k in axes_keys):
        for metric in ("probe_accuracy", "nmi", "coverage_tv", "mi"):
            if any(e[f"{metric}_mean"] is not None for e in table):
                figures[f"heatmap_{metric}"] = plots.plot_sweep_heatmap(table, metric, axes_keys, "objective.jsd_weight")
    ok = [e for e in table if e["mi_mean"] is not None and e["marginal_kl_mean"] is not None]
    if ok:
        names = [_setting_name({k: e[k] for k in spec.swept_keys}) for e in ok]
        figures["kl_split"] = plots.plot_kl_split(names, [e["mi_mean"] for e in ok], [e["marginal_kl_mean"] for e in ok])
    figures["probe_curves"] = _probe_curves(spec, sweep_dir)
    forest = _forest(spec, rows)
    if forest is not None:
        figures["forest"] = forest
    return figures


def _table_records(sweep):
    """The per-setting table as dicts, ``None`` where a value is missing."""
    records = sweep.by_setting.to_dict("records")
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in records]


def _rows(sweep):
    records = sweep.results.to_dict("records")
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in records]


def _probe_runs(spec, sweep_dir):
    """Per setting name, each finished trial's probe curve ``[(step, accuracy or None), ...]``."""
    curves = {}
    for trial in spec.trials:
        trial_dir = Path(sweep_dir) / "trials" / trial.name
        outcome = read_outcome(trial_dir)
        metrics_path = trial_dir / "run" / "metrics.jsonl"
        if outcome is None or outcome["status"] != "ok" or not metrics_path.exists():
            continue
        records = [json.loads(line) for line in metrics_path.read_text().splitlines()]
        curves.setdefault(_setting_name(trial.overrides), []).append([(r["step"], r.get("probe_accuracy")) for r in records])
    return curves


def _probe_curves(spec, sweep_dir):
    curves = _probe_runs(spec, sweep_dir)
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    for i, (label, runs) in enumerate(sorted(curves.items())):
        steps = [s for s, _ in runs[0]]
        values = np.array([[v if v is not None else np.nan for _, v in run] for run in runs if len(run) == len(steps)])
        mean = np.nanmean(values, 0)
        ax.plot(steps, mean, marker="o", ms=3, color=f"C{i % 10}", ls="-" if i < 10 else "--", label=label)
        if len(values) > 1:
            ax.fill_between(steps, np.nanmin(values, 0), np.nanmax(values, 0), color=f"C{i % 10}", alpha=0.15)
    ax.set_xlabel("training step")
    ax.set_ylabel("probe accuracy on sampled z (validation)")
    ax.set_title("Probe over training per setting (line: mean over seeds; band: min-max)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def _forest(spec, rows):
    """ArviZ forest plot of the probe accuracy across seeds, one row per setting."""
    import arviz as az

    ok = [r for r in rows if r["status"] == "ok" and r.get("probe_accuracy") is not None]
    if not ok or not spec.swept_keys:
        return None
    settings = _settings(ok, spec.swept_keys)
    seeds = sorted({r["seed"] for r in ok})
    values = np.full((1, len(seeds), len(settings)), np.nan)
    for r in ok:
        values[0, seeds.index(r["seed"]), settings.index(tuple(r[k] for k in spec.swept_keys))] = r["probe_accuracy"]
    names = [_setting_name(dict(zip(spec.swept_keys, s))) for s in settings]
    tree = az.from_dict({"posterior": {"probe_accuracy": values}}, dims={"probe_accuracy": ["setting"]}, coords={"setting": names})
    # One label column: with a single variable, ArviZ's "variable" column only repeats its name.
    az.plot_forest(tree, var_names=["probe_accuracy"], labels=["setting"], backend="matplotlib")
    fig = plt.gcf()  # the figure ArviZ just drew on
    fig.axes[-1].set_xlabel("probe accuracy on sampled z (test split)")
    fig.suptitle("Probe accuracy across seeds (ArviZ forest plot: draws = seeds)", fontsize=10)
    fig.set_size_inches(10, 1.5 + 0.35 * len(settings))
    return fig


SYMBOLS = {"objective.beta": "β", "objective.marginal_weight": "γ", "objective.jsd_weight": "δ"}


def _setting_name(overrides):
    """A short label: Greek letters for the objective's weights, the last key part otherwise."""
    def value(v):
        if v is None:
            return "none"  # as the results tables write it
        return f"{v:g}" if isinstance(v, float) else str(v)

    order = list(SYMBOLS)
    keys = sorted(overrides, key=lambda k: (order.index(k) if k in order else len(order), k))
    return " ".join(f"{SYMBOLS.get(k, k.split('.')[-1])}={value(overrides[k])}" for k in keys) or "base"


def _setting_sentences(spec, sweep_dir):
    """One line per setting: did the probe decay, how did the KL split, does the prior cover the data."""
    table = _table_records(open_sweep(sweep_dir))
    curves = {name: [[v for _, v in run] for run in runs] for name, runs in _probe_runs(spec, sweep_dir).items()}
    lines = []
    for e in table:
        name = _setting_name({k: e[k] for k in spec.swept_keys})
        parts = []
        runs = [c for c in curves.get(name, []) if c and all(v is not None for v in c)]
        if runs:
            mean = np.mean([c for c in runs if len(c) == len(runs[0])], axis=0)
            decay = float(mean.max() - mean[-1])
            parts.append(
                f"probe (validation) peaked at {mean.max():.3f} and ended at {mean[-1]:.3f} "
                + (f"(**decayed by {decay:.3f}**)" if decay > DECAY_THRESHOLD else "(no decay)")
            )
        if e["mi_mean"] is not None and e["marginal_kl_mean"] is not None:
            parts.append(f"KL to the aggregate prior = {e['mi_mean']:.3f} nats of information + {e['marginal_kl_mean']:.3f} of marginal mismatch")
        if e["coverage_tv_mean"] is not None:
            verdict = "covers the strategies" if e["coverage_tv_mean"] < COVERAGE_THRESHOLD else "**does not cover the strategies evenly**"
            parts.append(f"the prior {verdict} (TV {e['coverage_tv_mean']:.3f})")
        if parts:
            lines.append(f"- **{name}**: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def write_sweep_report(sweep_dir):
    """Figures and ``report.md`` for the sweep in ``sweep_dir``; returns the report's path."""
    sweep_dir = Path(sweep_dir)
    figures = sweep_figures(sweep_dir)
    _save(figures, sweep_dir / REPORT_DIR)
    table = (sweep_dir / "results.md").read_text().split("\n", 2)[-1]
    body = "\n\n".join(f"![{name}]({REPORT_DIR}/{name}.png)" for name in figures)
    path = sweep_dir / REPORT
    sentences = _setting_sentences(open_sweep(sweep_dir).spec, sweep_dir)
    path.write_text(
        f"# Sweep report: {sweep_dir.name}\n\n## What happened to the latent (means over seeds)\n\n{sentences}\n\n"
        f"## Results\n\n{table}\n\n## Figures\n\n{body}\n\nEach trial's run directory (`trials/NAME/run`) "
        "has a report of its own: `infovae report trials/NAME/run`.\n"
    )
    return path


def write_report(path, draws=100, examples=500):
    """A report for a run folder or a sweep folder, whichever ``path`` is; returns the paths written
    (``{"report", "figures", "inference"}``)."""
    path = Path(path)
    if (path / SWEEP).exists():
        report = write_sweep_report(path)
    elif (path / CONFIG).exists():
        report = write_run_report(path, draws=draws, examples=examples)
    else:
        raise RunDirError(f"{path} is neither a run folder (no {CONFIG}) nor a sweep folder (no {SWEEP})")
    figures = sorted((path / REPORT_DIR).glob("*.png"))
    inference = path / REPORT_DIR / "inference.nc"
    return {"report": report, "figures": figures, "inference": inference if inference.exists() else None}
