"""Reports: the figures of a run (or a sweep) as PNG files and a ``report.md`` that embeds them with
the key numbers and what they say. :func:`run_figures` and :func:`sweep_figures` give the same figures
to a notebook without the command line.

Numbers are labelled by where they come from: *validation* (``metrics.jsonl``, the evaluations during
training), *training (running mean)* (the ``train_*`` terms), *test* (``summary.json``).
"""

import os
import re
from pathlib import Path

import numpy as np

from infovae.core.latents import CategoricalLatent
from infovae.diagnostics.coverage import coverage_bounds
from infovae.diagnostics.evaluate import evaluated_examples
from infovae.diagnostics.metrics import label_count, latent_codes
from infovae.diagnostics.quantities import QUANTITIES
from infovae.errors import RunDirError, UserInputError
from infovae.files import write_document
from infovae.machine import available_memory
from infovae.reports import plots, verdicts
from infovae.reports.arviz import DEFAULT_DRAWS, DEFAULT_EXAMPLES, run_datatree, write_datatree
from infovae.reports.images import image_figures, missing_image_figures
from infovae.reports.sweep_report import sweep_figures, write_sweep_report
from infovae.sweeps.sweep import SWEEP
from infovae.training.runs import CONFIG, open_run

__all__ = ["RUN_CAPTIONS", "run_figures", "sweep_figures", "write_report", "write_run_report", "write_sweep_report"]

REPORT_DIR, REPORT = "report", "report.md"
# The most values (draws x examples x the values of each) report/inference.nc may hold: 2 GB in float64.
MAX_INFERENCE_VALUES = 250_000_000
FIGURE_EXAMPLES = 2000
# The ArviZ data behind ppc.png when run_figures is called without it.
FIGURE_DRAWS, FIGURE_TREE_EXAMPLES = 50, 300

RUN_CAPTIONS = {
    "loss_terms": "The objective's terms over training, one panel each: the training running means (dashed; "
    "the mean over the steps since the previous evaluation) and the validation evaluations (dots), in nats "
    "per example; the grey line marks the weights the test numbers use.",
    "elbo_surgery": "The KL term split into its two roles on the validation split over training (Hoffman & "
    "Johnson's ELBO surgery over the evaluation examples): information I(x,y; z) (left, at most log n) and "
    "`marginal_kl` (right: the KL between the n-component mixtures of posteriors and priors, which grows as the "
    "posteriors narrow even where the population's q(z) matches p(z); `marginal_mmd` tests that), each on its own "
    "scale; the star is the test value.",
    "probe": "Label information in z: accuracy of a probe trained on sampled z (left) and NMI between latent "
    "code and label (right), on the validation split over training, against the Bayes ceiling and chance "
    "(grey band: two binomial standard errors at the number of validation examples); stars: test values.",
    "latent_usage": "How the test split's aggregate posterior uses the latent, against the aggregate prior.",
    "contingency": "Which latent codes each true label uses on the test split: P(code | label), with the "
    "fraction and the count in every non-empty cell (a Gaussian latent's codes are k-means clusters of the "
    "posterior means).",
    "generated": "What the decoder makes of each latent value (or of draws from the prior), beside the data's own.",
    "reconstructions": "Test examples (top row) and the decoder's mean of y at draws of z from the encoder q(z|x,y), "
    "which has seen y: what z keeps of the image. Given pixels (the condition x) are blue inside an orange outline.",
    "completions": "The figure of Pyro's CVAE tutorial: from the given pixels x alone (first row; grey: hidden), "
    "z drawn from the prior p(z|x) and the decoder's mean of the rest; the true image in the second row. "
    "Different draws should give different plausible completions where x leaves the image open.",
    "samples": "Images from the model: the decoder's mean at one draw of z from the prior, each for a different "
    "test example's x (or from p(z) for an unconditional model).",
    "traversals": "What each latent dimension does: one dimension varied from −2.5 to +2.5 prior standard "
    "deviations with the others at the prior mean; rows whose images do not change are dimensions the decoder ignores.",
    "latent_values": "What each latent value does: the decoder's mean at every value of the discrete latent "
    "(rows), for the same conditions (columns).",
    "ppc": "Predictive checks on the test split: the true predictive (z ~ p(z|x), y ~ p(y|x,z)) and the "
    "reconstruction (z ~ q(z|x,y), which has seen y) against the observed y: pooled over factors (left, "
    "94% intervals over draws) and per factor (right, the diagonal is a perfect match).",
}


def _evaluated_labels(run, split):
    """The labels of the examples of ``split`` an evaluation used (its probe was scored on), selected as
    the evaluation selects them (:func:`~infovae.diagnostics.evaluate.evaluated_examples`), or ``None``
    without labels."""
    return evaluated_examples(getattr(run.splits, split), run.config).labels


def _evaluated(run, split):
    """How many examples of ``split`` an evaluation used."""
    return min(len(getattr(run.splits, split)), run.config.train.eval_examples)


def _generated_panels(run, test, p, rng):
    """What the decoder makes of each latent value (or of draws from the prior) beside the true strategies'
    (``strategies`` only: image data get the image figures)."""
    backend, arch = run.backend, run.backend.arch
    if run.config.data.kind != "strategies":
        return None
    draws = 6
    if arch.latent == "discrete":
        z = np.arange(arch.latent_size)[:, None]
    else:
        # Draws from each example's own conditional prior p(z|x) stand for the continuum.
        z = p.loc + p.scale * rng.standard_normal((draws,) + p.loc.shape)  # [R, n, d]
    latent_actions = backend.decoder_mean(test.x, z).mean(axis=(1, 2))  # [K, n, T, A] -> [K, A]
    generator = run.splits.generator
    true = generator.label_factor_distributions(test.x).mean(1)
    if arch.latent == "discrete":
        return plots.plot_generated_strategies(latent_actions, p.probs.mean(0), true, generator.label_mix, "latent value")
    return plots.plot_generated_strategies(latent_actions, None, true, generator.label_mix, "draw of z ~ p(z|x)")


def _ppc_figure(run, tree):
    observed = tree["observed_data"]["y"].values
    predictive = tree["posterior_predictive"]["y"].values[0]
    reconstruction = tree["reconstruction"]["y"].values[0]
    return plots.plot_ppc(
        observed, predictive, reconstruction, run.config.likelihood, run.backend.arch.num_classes, tree.attrs.get("split", "test")
    )


def _weights(config):
    o = config.objective
    return {"kl": o.beta, "marginal": o.marginal_weight if o.marginal else 0.0, "jsd": o.jsd_weight}


def run_figures(run, seed=0, tree=None):
    """Every figure of a trained run (see :func:`infovae.open_run`), by file stem. ``tree`` is the run's
    ArviZ data (:func:`~infovae.reports.arviz.run_datatree`), made small when not given."""
    records, splits, summary = run.records, run.splits, run.summary or {}
    test = splits.test.subset(slice(0, FIGURE_EXAMPLES))
    selected = summary.get("selected_step")
    figures = {
        "loss_terms": plots.plot_loss_terms(records, selected, bool(summary.get("stopped_early")), weights=_weights(run.config)),
        "elbo_surgery": plots.plot_elbo_surgery(records, summary if summary else None, selected),
    }
    if test.labels is not None:
        chance = verdicts.chance_accuracy(_evaluated_labels(run, "val"))
        figures["probe"] = plots.plot_probe(records, chance, _evaluated(run, "val"), summary if summary else None, selected)
    q, p = run.backend.posterior(test.x, test.y), run.backend.prior(test.x)
    figures["latent_usage"] = plots.plot_latent_usage(q, p)
    if test.labels is not None:
        discrete = isinstance(q, CategoricalLatent)
        num_labels = label_count(splits.train.labels, splits.val.labels, splits.test.labels)
        num_codes = q.probs.shape[1] if discrete else max(num_labels, 2)
        codes = latent_codes(q, num_labels, seed)
        code_name = "latent code (most probable z)" if discrete else "latent code (k-means cluster)"
        figures["contingency"] = plots.plot_contingency(
            codes, test.labels, num_codes, test.info.get("label_name", "label"), code_name
        )
    generated = _generated_panels(run, test, p, np.random.default_rng(seed))
    if generated is not None:
        figures["generated"] = generated
    figures.update(image_figures(run, test, seed))
    if tree is None:
        tree = run_datatree(run, num_draws=FIGURE_DRAWS, max_examples=FIGURE_TREE_EXAMPLES, seed=seed)
    figures["ppc"] = _ppc_figure(run, tree)
    return figures


def _fmt(value, digits=4):
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _kl_sentence(summary):
    mi, mk = summary.get("mi"), summary.get("marginal_kl")
    if mi is None or mk is None:
        return None
    total = mi + mk
    share = mi / total if total > 0 else 0.0
    return (
        f"On the test split the KL to the aggregate prior is {total:.4g} nats: **{mi:.4g} nats of information "
        f"about the example** (I(x,y; z), at most log n) and **{mk:.4g} nats of `marginal_kl`** (the KL between the "
        "n-component mixtures over the evaluation examples: it grows as posteriors narrow; `marginal_mmd` measures "
        "the population's mismatch) "
        f"({100 * share:.0f}% / {100 * (1 - share):.0f}%)."
    )


def _coverage_sentence(run):
    """Whether data generated from the prior covers the strategies: the coverage TV of episodes generated for
    the test split's first contexts, with its bounds (:func:`~infovae.diagnostics.coverage.coverage_bounds`)
    against the threshold; the evaluation's own test TV (other draws) beside it, to show the noise."""
    tv = (run.summary or {}).get("coverage_tv")
    generator = run.splits.generator
    if tv is None or generator is None:
        return None
    test = run.splits.test.subset(slice(0, FIGURE_EXAMPLES))
    _, y_gen = run.backend.generate(test.x, seed=0)
    posteriors = generator.posterior(test.x, y_gen)
    generated = posteriors.mean(0)
    bounds = coverage_bounds(posteriors, generator.label_mix)
    numbers = (
        f"total variation **{bounds['tv']:.3f}** from the true mix over {bounds['examples']} generated episodes, "
        f"95% bounds {max(bounds['low'], 0.0):.3f}–{bounds['high']:.3f}, threshold {verdicts.COVERAGE_THRESHOLD}; "
        f"the evaluation's test TV on its own draws {tv:.3f}"
    )
    rows = "\n".join(f"| {s} | {true:.3f} | {gen:.3f} |" for s, (true, gen) in enumerate(zip(generator.label_mix, generated)))
    missing = [s for s, (t, g) in enumerate(zip(generator.label_mix, generated)) if g < 0.5 * t]
    gap = f" Under-generated strategies (less than half their true share): {missing}." if missing else ""
    verdict = verdicts.coverage_phrase(bounds["low"], bounds["high"], numbers)
    return (
        f"Data generated from the prior (test-split contexts): {verdict}.{gap} The plain TV reads high by its noise "
        "(a strategy generated at its true share adds |noise|, not 0); the bounds allow for it.\n\n"
        f"| strategy | true mix | generated mix (test contexts) |\n|---|---|---|\n{rows}"
    )


def _run_header(run_dir, run):
    c, s = run.config, run.summary or {}
    o = c.objective
    marginal = f"marginal={o.marginal} (γ = {o.marginal_weight:g})" if o.marginal else "no marginal term"
    size = f"{c.model.latent_size} values" if c.model.latent == "discrete" else f"{c.model.latent_size} dimensions"
    splits = run.splits
    return (
        f"# Run report: `{run_dir}`\n\n"
        f"Data **{c.data.kind}** ({len(splits.train)} training / {len(splits.val)} validation / {len(splits.test)} test "
        f"examples; {c.likelihood} likelihood), {c.model.latent} latent of {size} ({c.model.prior} prior); "
        f"objective β = {o.beta:g}, {marginal}, δ = {o.jsd_weight:g}; {s.get('steps', '?')} steps with the "
        f"{c.backend} backend.\n\n"
        "Numbers marked *validation* come from the evaluations during training (`metrics.jsonl`), *test* from "
        f"the final evaluation (`summary.json`, {_evaluated(run, 'test')} test examples)."
    )


def _images_paragraph(run):
    """What the image figures show (the layout of the images) and which are not drawn, and why."""
    test = run.splits.test
    layout = test.info.get("image")
    missing = missing_image_figures(test, run.config.model.latent, run.config.data.kind)
    layout_line = f"The data are {layout.describe()}." if layout is not None else ""
    if layout is not None and test.info.get("quadrants"):
        layout_line += f" Given quadrants: {', '.join(test.info['quadrants'])}."
    left_out = "\n".join(f"- No {name if ' ' in name else f'`{name}` figure'}: {why}." for name, why in missing.items())
    return "\n\n".join(part for part in (layout_line, left_out) if part)


def _bullets(sentences):
    return "\n".join(f"- {s}" for s in sentences if s)


def _summary_table(summary):
    rows = []
    for key, value in summary.items():
        if value is None or key in ("backend",):
            continue
        name = key.removeprefix("test_")
        quantity = QUANTITIES.get(name)
        meaning = (
            quantity.description
            if quantity
            else {
                "steps": "training steps taken",
                "selected_step": "step of the weights evaluated",
                "stopped_early": "whether early stopping ended training",
                "train_seconds": "training time [s] (in a vectorised sweep: this trial's share of its group's)",
                "seconds_per_step": "training time per step [s] (likewise a share)",
                "trials_sharing_time": "trials trained together in one program, sharing its time by their steps",
            }.get(key, "")
        )
        direction = f" ({quantity.better} is better)" if quantity and quantity.better else ""
        rows.append(f"| {key} | {_fmt(value)} | {meaning}{direction} |")
    return "| quantity (test split) | value | meaning |\n|---|---|---|\n" + "\n".join(rows)


def _ppc_call(likelihood):
    return {
        "categorical": "az.plot_ppc_rootogram(pooled_predictive(tree))   # counts of each value of y",
        "bernoulli": "az.plot_ppc_pava(pooled_predictive(tree))        # calibration of the predicted ones",
    }.get(likelihood, "az.plot_ppc_dist(tree)            # the predictive distribution of y")


def write_run_report(run_dir, seed=0, draws=DEFAULT_DRAWS, examples=DEFAULT_EXAMPLES):
    """Figures, ArviZ data and ``report.md`` for the run in ``run_dir``; returns the report's path."""
    run = open_run(run_dir)
    _check_draws(run, draws, examples)
    folder = Path(run_dir) / REPORT_DIR
    tree = run_datatree(run, num_draws=draws, max_examples=examples, seed=seed)
    figures = run_figures(run, seed, tree=tree)
    plots.save_figures(figures, folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_datatree(tree, folder / "inference.nc")
    s, c = run.summary or {}, run.config
    latent = c.model.latent
    training = [
        verdicts.selection_sentence(s, c.train),
        verdicts.monitor_verdict(run.records, c.train.monitor),
        verdicts.overfitting_warning(run.records),
    ]
    ceiling = s.get("bayes_accuracy")
    latent_lines = [
        verdicts.collapse_warning(s, latent),
        verdicts.chance_verdict(
            s.get("probe_accuracy"), verdicts.chance_accuracy(_evaluated_labels(run, "test")), _evaluated(run, "test"), ceiling
        )
        if run.splits.test.labels is not None
        else "The data has no labels, so there is no probe, NMI or contingency table.",
        verdicts.probe_decay_verdict(run.records, _evaluated(run, "val")),
        _kl_sentence(s),
    ]
    coverage = _coverage_sentence(run)
    images = _images_paragraph(run)
    body = "\n\n".join(
        f"### {name.replace('_', ' ')} (`{REPORT_DIR}/{name}.png`)\n{RUN_CAPTIONS[name]}\n\n![{name}]({REPORT_DIR}/{name}.png)"
        for name in figures
    )
    n_tree, s_tree = tree.attrs["examples"], tree.attrs["draws"]
    summarised = (
        "the aggregate posterior probability of each latent value"
        if latent == "discrete"
        else "the aggregate posterior of each latent dimension"
    )
    # A Python literal of the path whatever its name holds: repr writes a byte that is not UTF-8 as its
    # surrogate's escape, which the string in the reader's Python opens as that byte again.
    tree_path = repr(str(Path(run_dir) / REPORT_DIR / "inference.nc"))
    text = f"""{_run_header(run_dir, run)}

## Training

{_bullets(training)}

## What happened to the latent

{_bullets(latent_lines)}

{coverage or ""}

## Test summary

{_summary_table(s) if s else "The run has no summary.json (it has not finished)."}

## Figures

{images}

{body}

## ArviZ data

`{REPORT_DIR}/inference.nc` (an `xarray.DataTree`; `infovae.reports.arviz.read_datatree(path)` or
`xarray.open_datatree(path, engine="h5netcdf")`) holds, for the first {n_tree} test examples and {s_tree} draws
each: `posterior` (draws of the aggregate posterior q(z): z ~ q(z|x_i,y_i) for every example, interleaved along
`draw`, the coordinate `example` naming each draw's example), `prior` (the same from p(z|x_i)),
`posterior_predictive` (y from z ~ p(z|x): a true predictive), `reconstruction` (y from z ~ q(z|x,y): a
reconstruction check, not a predictive one), `observed_data`, `constant_data` (x, labels),
`heldout_log_likelihood` (the held-out log p(y_i|x_i), {"exact" if latent == "discrete" else "importance-weighted"})
and `latent_parameters` (each example's exact q(z|x,y) and p(z|x)). The `example` coordinate holds the rows of
the full data set (`splits.npz`). Compare runs on held-out predictive density with
`infovae.reports.arviz.compare_heldout({{"a": tree_a, "b": tree_b}})` (`az.compare` on the pointwise held-out
values); PSIS-LOO does not apply to an amortised model, so `az.loo(tree)` fails (the tree has no
`log_likelihood` group); what else applies is in `infovae.reports.arviz`'s documentation. For example:

```python
import arviz as az
from infovae.reports.arviz import compare_heldout, pooled_predictive, read_datatree

tree = read_datatree({tree_path})
az.summary(tree, kind="stats")   # {summarised}
az.plot_dist(tree)                # the aggregate posterior q(z)
{_ppc_call(c.likelihood)}
compare_heldout({{"this run": tree, "other run": read_datatree("OTHER_RUN/report/inference.nc")}})
```
"""
    path = Path(run_dir) / REPORT
    write_document(path, re.sub(r"\n{3,}", "\n\n", text))
    return path


def _check_writable(folder):
    """That the report folder can be made and written, before anything is computed (a probe file made
    and removed there, or in the folder that will hold it)."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise RunDirError(f"{folder} is not a folder (a file or a link is there); move it away to write the report")
    try:
        probe = (folder if folder.is_dir() else folder.parent) / f".write-test.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise RunDirError(f"cannot write the report in {folder}: {error.strerror or error}") from None


def _check_draws(run, draws, examples):
    """That the ArviZ data of ``draws`` per example for ``examples`` examples fits in memory: at most
    :data:`MAX_INFERENCE_VALUES` values, and float64 values with a copy for writing within the memory
    available now."""
    test = run.splits.test
    values = draws * min(examples, len(test)) * (test.y_dim + run.config.model.latent_size + 1)
    memory = available_memory()
    limit = MAX_INFERENCE_VALUES if memory is None else min(MAX_INFERENCE_VALUES, memory // 16)
    if values > limit:
        raise UserInputError(
            f"--draws {draws} x --examples {min(examples, len(test))} make {values:,} values in inference.nc; "
            f"at most {limit:,} fit in this machine's memory (lower --draws or --examples)"
        )


def write_report(path, draws=DEFAULT_DRAWS, examples=DEFAULT_EXAMPLES):
    """A report for a run folder or a sweep folder, whichever ``path`` is; returns the paths written
    (``{"report", "figures", "inference"}``). ``draws`` and ``examples`` size a run's ArviZ data
    (``report/inference.nc``): draws per example, and the first test examples."""
    path = Path(path)
    if (path / SWEEP).exists():
        kind = "sweep"
    elif (path / CONFIG).exists():
        kind = "run"
    else:
        raise RunDirError(f"{path} is neither a run folder (no {CONFIG}) nor a sweep folder (no {SWEEP})")
    _check_writable(path / REPORT_DIR)
    try:
        report = write_sweep_report(path) if kind == "sweep" else write_run_report(path, draws=draws, examples=examples)
    except OSError as error:  # the disk filled, or the folder changed meanwhile
        raise RunDirError(f"cannot write the report in {path / REPORT_DIR}: {error.strerror or error}") from None
    figures = sorted((path / REPORT_DIR).glob("*.png"))
    inference = path / REPORT_DIR / "inference.nc"
    return {"report": report, "figures": figures, "inference": inference if inference.exists() else None}
