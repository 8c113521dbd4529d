"""Figures of what happened to the latent, for people: one function per figure, each returning a
:class:`matplotlib.figure.Figure` built from plain arrays and metric records.

Conventions: every figure has a title and labelled axes with units; numbers from ``metrics.jsonl``
are called *validation*, the training terms' running means *training (running mean)*, and numbers
from ``summary.json`` *test*.
"""

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (figures are written to files; no display is needed)
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from infovae.core.latents import CategoricalLatent
from infovae.diagnostics.intervals import t_interval

__all__ = [
    "better_cmap",
    "plot_contingency",
    "plot_elbo_surgery",
    "plot_generated_digits",
    "plot_generated_strategies",
    "plot_kl_split",
    "plot_latent_usage",
    "plot_loss_terms",
    "plot_ppc",
    "plot_probe",
    "plot_probe_panels",
    "plot_sweep_forest",
    "plot_sweep_heatmap",
    "save_figures",
]

TERM_LABELS = {
    "loss": ("loss  −(recon − β·kl − γ·marginal + δ·jsd)", "nats per example"),
    "recon": ("reconstruction  E_q log p(y|x,z)", "nats per example"),
    "kl": ("KL(q(z|x,y) ‖ p(z|x))", "nats per example"),
    "marginal": ("marginal divergence D(q(z) ‖ p(z))", "objective's units (nats for KL)"),
    "jsd": ("inter-latent JSD", "nats per example"),
}
VALIDATION, TRAINING = "validation", "training (running mean since the previous evaluation)"
GOOD_CMAP = "viridis"  # yellow is good in every map (reversed where lower is better)


def better_cmap(better):
    """A colour map whose bright end is the good end: reversed where lower is better."""
    return GOOD_CMAP + ("_r" if better == "lower" else "")


def _series(records, key):
    steps = np.array([r["step"] for r in records if r.get(key) is not None])
    values = np.array([r[key] for r in records if r.get(key) is not None], dtype=float)
    return steps, values


def _mark_selected(ax, selected_step, stopped_early):
    if selected_step is None:
        return
    label = f"selected weights (step {selected_step})" + ("; stopped early" if stopped_early else "")
    ax.axvline(selected_step, color="grey", ls="-.", lw=1, label=label)


def plot_loss_terms(records, selected_step=None, stopped_early=False, title=None, weights=None):
    """The objective's terms over training, one panel each (their scales differ): the training running
    means and the validation evaluations.

    :param weights: ``{"kl": β, "marginal": γ, "jsd": δ}``: a term of weight 0 is marked as a diagnostic.
    """
    weights = weights or {}
    terms = [t for t in TERM_LABELS if any(r.get(t) is not None or r.get(f"train_{t}") is not None for r in records)]
    cols = 2 if len(terms) > 1 else 1
    rows = int(np.ceil(len(terms) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.9 * rows + 1.2), sharex=True, squeeze=False, layout="constrained")
    for ax, key in zip(axes.flat, terms):
        label, unit = TERM_LABELS[key]
        steps_t, values_t = _series(records, f"train_{key}")
        if len(steps_t):
            ax.plot(steps_t, values_t, ls="--", color="C1", label=TRAINING)
        steps, values = _series(records, key)
        if len(steps):
            ax.plot(steps, values, marker="o", ms=3, color="C0", label=VALIDATION)
        _mark_selected(ax, selected_step, stopped_early)
        if weights.get(key) == 0:
            label += "  (weight 0: not in the loss)"
        ax.set_title(label, fontsize=10)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(terms) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    if len(terms) % cols:
        axes[-2, -1].xaxis.set_tick_params(labelbottom=True)
        axes[-2, -1].set_xlabel("training step")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(title or "The objective's terms over training: training running means and validation evaluations")
    return fig


def plot_elbo_surgery(records, test=None, selected_step=None):
    """``mean KL(q(z|x,y) || p(z)) = mi + marginal_kl`` over training, one panel per part (each on its own
    scale: a marginal mismatch of 0.005 nats stays visible beside 0.5 nats of information), with the
    test values at the end.

    :param test: ``{"mi", "marginal_kl"}`` of the test split, or ``None``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    parts = (
        ("mi", "information in z:  I(x,y; z) under q", "C0"),
        ("marginal_kl", "marginal mismatch:  KL(q(z) ‖ p(z))", "C3"),
    )
    for ax, (key, title, colour) in zip(axes, parts):
        steps, values = _series(records, key)
        ax.plot(steps, values, marker="o", ms=3, color=colour, label=f"{VALIDATION} (at each evaluation)")
        top = float(values.max()) if len(values) else 0.0
        if test is not None and test.get(key) is not None:
            at = selected_step if selected_step is not None else (steps[-1] if len(steps) else 0)
            ax.plot([at], [test[key]], marker="*", ms=13, color="k", ls="none", label=f"test: {test[key]:.4g} nats")
            top = max(top, test[key])
        bottom = min(0.0, float(values.min()) * 1.15) if len(values) else 0.0
        ax.set_ylim(bottom, top * 1.15 if top > 0 else 1e-3)
        if bottom < 0:
            ax.axhline(0, color="k", lw=0.8)
            title += "\n(a Monte-Carlo estimate: it can dip below 0)"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel("nats")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    fig.suptitle("ELBO surgery: mean KL(q(z|x,y) ‖ p(z)) = information + marginal mismatch (each on its own scale)")
    return fig


def plot_probe(records, num_labels=None, num_examples=None, test=None, selected_step=None):
    """Accuracy of the sampled-z probe and NMI over training (validation), against the Bayes ceiling and
    chance, with chance's noise band (two binomial standard errors at ``num_examples``).

    :param test: ``{"probe_accuracy", "nmi"}`` of the test split, or ``None``.
    """
    fig, (ax, ax_nmi) = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    steps, acc = _series(records, "probe_accuracy")
    ax.plot(steps, acc, marker="o", ms=3, label=f"probe on sampled z ({VALIDATION})")
    at = selected_step if selected_step is not None else (steps[-1] if len(steps) else 0)
    if test is not None and test.get("probe_accuracy") is not None:
        ax.plot(
            [at], [test["probe_accuracy"]], marker="*", ms=13, color="k", ls="none", label=f"test: {test['probe_accuracy']:.3f}"
        )
    _, ceiling = _series(records, "bayes_accuracy")
    if len(ceiling):
        ax.axhline(
            float(np.mean(ceiling)), color="k", ls="--", label=f"Bayes ceiling, validation ({float(np.mean(ceiling)):.3f})"
        )
    if num_labels:
        chance = 1.0 / num_labels
        ax.axhline(chance, color="grey", ls=":", label=f"chance (1/{num_labels})")
        if num_examples:
            se = np.sqrt(chance * (1 - chance) / num_examples)
            ax.axhspan(
                chance - 2 * se, chance + 2 * se, color="grey", alpha=0.15, label=f"chance ± 2 binomial s.e. (n = {num_examples})"
            )
    _unit_panel(ax, "accuracy (fraction correct)", "Label information in sampled z: a probe's accuracy")
    steps, nmi = _series(records, "nmi")
    ax_nmi.plot(steps, nmi, marker="o", ms=3, color="C2", label=VALIDATION)
    if test is not None and test.get("nmi") is not None:
        ax_nmi.plot([at], [test["nmi"]], marker="*", ms=13, color="k", ls="none", label=f"test: {test['nmi']:.3f}")
    _unit_panel(ax_nmi, "NMI (0 = independent, 1 = one-to-one)", "Normalised mutual information between latent code and label")
    fig.suptitle("Does z carry the label? Probe accuracy and NMI over training")
    return fig


def _unit_panel(ax, ylabel, title):
    """A panel of a quantity in [0, 1] over training, its legend below it (never over the curves)."""
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.grid(alpha=0.3)


def save_figures(figures, folder):
    """Write the figures as ``NAME.png``, removing figures of an earlier report that this one no longer makes."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        if old.stem not in figures:
            old.unlink()
    for name, fig in figures.items():
        fig.savefig(folder / f"{name}.png", dpi=110)
        plt.close(fig)


def plot_latent_usage(q, p, split="test"):
    """Aggregate posterior against aggregate prior: per latent value (discrete) or per dimension (Gaussian)."""
    fig, ax = plt.subplots(figsize=(8, 4.4), layout="constrained")
    if isinstance(q, CategoricalLatent):
        q_mean, p_mean = q.probs.mean(0), p.probs.mean(0)
        k = np.arange(len(q_mean))
        ax.bar(k - 0.2, q_mean, width=0.4, label="aggregate posterior q(z) = mean q(z|x,y)")
        ax.bar(k + 0.2, p_mean, width=0.4, label="aggregate prior p(z) = mean p(z|x)")
        ax.set_xticks(k)
        ax.set_xlabel("latent value z")
        ax.set_ylabel("probability")
        ax.set_title(f"Latent usage on the {split} split ({len(q.probs)} examples)")
    else:
        d = np.arange(q.loc.shape[1])
        # Variance of the aggregate posterior per dimension: spread of the means plus mean variance.
        between, within = q.loc.var(0), (q.scale**2).mean(0)
        ax.bar(d, between, label="Var over examples of E[z|x,y] (information)")
        ax.bar(d, within, bottom=between, label="mean posterior variance (noise)")
        prior_var = p.loc.var(0) + (p.scale**2).mean(0)
        ax.scatter(d, prior_var, color="k", marker="_", s=400, zorder=3, label="aggregate prior variance")
        ax.set_xticks(d)
        ax.set_xlabel("latent dimension")
        ax.set_ylabel("variance (latent units²)")
        ax.set_title(f"Latent usage on the {split} split: aggregate posterior variance per dimension")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax.grid(alpha=0.3, axis="y")
    return fig


def plot_kl_split(settings, mi, marginal_kl, mi_err=None, marginal_err=None, unit_note="test split, mean over seeds"):
    """Per setting, the KL to the aggregate prior as information (I(x,y; z)) and marginal mismatch, in
    two panels with their own scales (and 95% t-intervals over seeds where given)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.8 + 0.38 * len(settings)), sharey=True, layout="constrained")
    rows = np.arange(len(settings))
    for ax, values, err, title, colour in (
        (axes[0], mi, mi_err, "information in z:  I(x,y; z)", "C0"),
        (axes[1], marginal_kl, marginal_err, "marginal mismatch:  KL(q(z) ‖ p(z))", "C3"),
    ):
        values = np.asarray(values, dtype=float)
        xerr = (
            None
            if err is None or not np.isfinite(np.asarray(err, dtype=float)).any()
            else np.nan_to_num(np.asarray(err, dtype=float))
        )
        ax.barh(rows, values, xerr=xerr, color=colour, alpha=0.85, capsize=3)
        for r, v in enumerate(values):
            if np.isfinite(v):
                end = v + (xerr[r] if xerr is not None else 0.0)
                ax.text(end, r, f"  {v:.3g}", va="center", fontsize=7)
        ax.set_xlim(0, max(float(np.nanmax(values + (xerr if xerr is not None else 0))) * 1.3, 1e-4) if len(values) else 1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"nats ({unit_note})")
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(rows, settings, fontsize=8)
    axes[0].invert_yaxis()
    note = "; bars: 95% t-interval over seeds" if mi_err is not None else ""
    fig.suptitle(f"ELBO surgery per setting: the KL term split into its two roles (each on its own scale{note})")
    return fig


def plot_contingency(codes, labels, num_codes, label_name="label", code_name="latent code", split="test"):
    """Heatmap of P(code | label): which latent codes each label uses, every non-empty cell annotated
    with its fraction and count."""
    num_labels = int(labels.max()) + 1
    counts = np.zeros((num_labels, num_codes), dtype=int)
    np.add.at(counts, (labels, codes), 1)
    rows = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.8 + 0.8 * num_codes), max(3.4, 1.6 + 0.55 * num_labels)), layout="constrained")
    image = ax.imshow(rows, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, j), count in np.ndenumerate(counts):
        if count == 0:
            continue
        v = rows[i, j]
        text = f"{v:.2f}" if v >= 0.005 else "<.01"
        ax.text(j, i, f"{text}\n({count})", ha="center", va="center", fontsize=8, color="w" if v < 0.6 else "k")
    ax.set_xticks(range(num_codes))
    ax.set_yticks(range(num_labels), [f"{i} (n={n})" for i, n in enumerate(counts.sum(1))])
    ax.set_xlabel(code_name)
    ax.set_ylabel(f"true {label_name}")
    ax.set_title(
        f"P({code_name} | {label_name}) on the {split} split ({int(counts.sum())} examples)\n"
        "cell: fraction of the row (count); blank: no example",
        fontsize=10,
    )
    fig.colorbar(image, ax=ax, shrink=0.8, label=f"fraction of the {label_name}'s examples")
    return fig


def plot_generated_strategies(latent_actions, latent_weights, true_actions, true_mix, latent_label="latent value"):
    """Action distributions the decoder gives each latent value, beside the true strategies'.

    :param latent_actions: ``[K, A]`` action distribution per latent value (averaged over steps and contexts).
    :param latent_weights: ``[K]`` how often the prior picks each latent value, or ``None`` (rows that
        are draws from the prior).
    :param true_actions: ``[S, A]`` the same for the true strategies.
    :param true_mix: ``[S]`` the true strategy mix.
    """
    K, A = latent_actions.shape
    S = true_actions.shape[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 2.0 + 0.42 * max(K, S)), layout="constrained")
    vmax = max(float(latent_actions.max()), float(true_actions.max()))
    for ax, table, weights, title, row_label in (
        (axes[0], latent_actions, latent_weights, f"generated: the decoder for each {latent_label}", latent_label),
        (axes[1], true_actions, true_mix, "true: each strategy of the data", "strategy"),
    ):
        image = ax.imshow(table, cmap="magma", vmin=0, vmax=vmax, aspect="auto")
        names = [f"{row_label} {i}" + ("" if weights is None else f"  (p={weights[i]:.2f})") for i in range(len(table))]
        ax.set_yticks(range(len(table)), names, fontsize=8)
        ax.set_xticks(range(A))
        ax.set_xlabel("action")
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.8, label="probability of the action")
    fig.suptitle("Action distributions, averaged over steps and contexts (p: prior weight / true mix)")
    return fig


def _outline(ax, mask):
    """Draw the boundary of a pixel mask along the pixel edges."""
    rows, cols = mask.shape
    inside = lambda i, j: 0 <= i < rows and 0 <= j < cols and mask[i, j]  # noqa: E731
    for i in range(rows):
        for j in range(cols):
            if not mask[i, j]:
                continue
            for di, dj, xs, ys in (
                (0, 1, (j + 0.5, j + 0.5), (i - 0.5, i + 0.5)),
                (0, -1, (j - 0.5, j - 0.5), (i - 0.5, i + 0.5)),
                (1, 0, (j - 0.5, j + 0.5), (i + 0.5, i + 0.5)),
                (-1, 0, (j - 0.5, j + 0.5), (i - 0.5, i - 0.5)),
            ):
                if not inside(i + di, j + dj):
                    ax.plot(xs, ys, color="red", lw=1.0)


def plot_generated_digits(images, conditions, truths, given, row_labels):
    """Completions of a few test conditions (columns): the given part, the true digit, and the decoder's
    pixel probabilities for each latent row; the given pixels are outlined in red.

    :param images: ``[K, n, 8, 8]`` pixel probabilities.
    :param conditions: ``[n, 8, 8]`` the inputs, with the hidden part zero.
    :param truths: ``[n, 8, 8]`` the true images.
    :param given: ``[8, 8]`` mask of the pixels given as the condition.
    :param row_labels: ``K`` labels of the latent rows.
    """
    K, n = images.shape[:2]
    rows = [("given x", conditions), ("true digit", truths)] + [(label, images[i]) for i, label in enumerate(row_labels)]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.05 * n + 1.6, 1.05 * len(rows) + 0.9), squeeze=False, layout="constrained")
    for r, (label, pictures) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            ax.imshow(pictures[j], cmap="gray_r", vmin=0, vmax=1)
            _outline(ax, given)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 1:
                for spine in ax.spines.values():
                    spine.set_color("C2")
                    spine.set_linewidth(2)
        axes[r, 0].set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
    for j in range(n):
        axes[0, j].set_title(f"test example {j}", fontsize=8)
    fig.suptitle(
        "Digit completions: the given quadrant (red outline), the true digit (green frame),\n"
        "and the decoder's pixel probabilities (black = 1) for each latent row"
    )
    return fig


def _interval_bars(ax, x, draws, label, colour, offset):
    """Mean and 94% interval over draws (rows) of per-draw statistics (columns at ``x``)."""
    mean = draws.mean(0)
    low, high = np.percentile(draws, [3, 97], axis=0)
    ax.errorbar(x + offset, mean, yerr=[mean - low, high - mean], fmt="o", ms=5, color=colour, capsize=3, label=label)


def plot_ppc(observed, predictive, reconstruction, likelihood, num_classes=0, split="test"):
    """Predictive checks of ``y`` against the observed data, pooled over examples.

    :param observed: ``[n, F]`` observed ``y``.
    :param predictive: ``[S, n, F]`` ``y ~ p(y|x,z)``, ``z ~ p(z|x)`` (the true predictive).
    :param reconstruction: ``[S, n, F]`` ``y ~ p(y|x,z)``, ``z ~ q(z|x,y)`` (a reconstruction check).
    :param likelihood: ``"categorical"``, ``"bernoulli"`` or ``"gaussian"``.
    """
    S, n, F = predictive.shape
    series = (
        ("predictive: z ~ p(z|x), y ~ p(y|x,z)", predictive, "C0", -0.15),
        ("reconstruction: z ~ q(z|x,y), y ~ p(y|x,z)", reconstruction, "C1", 0.15),
    )
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained", gridspec_kw={"width_ratios": [1.3, 1]})
    if likelihood == "categorical":
        C = max(int(num_classes), int(observed.max()) + 1)
        classes = np.arange(C)

        def freq(a):  # [..., n, F] -> [..., C]
            return np.stack([(a == c).mean(axis=(-2, -1)) for c in classes], axis=-1)

        ax.bar(classes, freq(observed), width=0.7, color="0.85", edgecolor="k", label="observed")
        for label, draws, colour, offset in series:
            _interval_bars(ax, classes, freq(draws), label, colour, offset)
        ax.set_xticks(classes)
        ax.set_xlabel("value of y (class)")
        ax.set_ylabel("fraction of observations")
        ax.set_title(f"Frequency of each value of y, pooled over {F} factors (bars: 94% of draws)", fontsize=10)
        # Per (factor, class): observed against predicted frequency.
        obs = np.stack([(observed == c).mean(0) for c in classes], -1).ravel()
        for label, draws, colour, _ in series:
            pred = np.stack([(draws == c).mean(axis=(0, 1)) for c in classes], -1).ravel()
            ax2.scatter(obs, pred, s=14, color=colour, alpha=0.7, label=label.split(":")[0])
        ax2.set_xlabel("observed frequency of (factor, value)")
        ax2.set_ylabel("predicted frequency (mean over draws)")
        ax2.set_title("Each (factor, value) pair: predicted against observed", fontsize=10)
    elif likelihood == "bernoulli":
        ones = observed.sum(-1)
        bins = np.arange(F + 2) - 0.5
        ax.hist(ones, bins=bins, density=True, color="0.85", edgecolor="k", label="observed")
        centres = np.arange(F + 1)
        for label, draws, colour, _ in series:
            hist = np.stack([np.histogram(d.sum(-1), bins=bins, density=True)[0] for d in draws])
            mean = hist.mean(0)
            low, high = np.percentile(hist, [3, 97], axis=0)
            ax.plot(centres, mean, color=colour, label=label)
            ax.fill_between(centres, low, high, color=colour, alpha=0.2)
        ax.set_xlim(max(0, ones.min() - 5), min(F, ones.max() + 5))
        ax.set_xlabel(f"number of ones among the {F} values of y (pixels on)")
        ax.set_ylabel("fraction of examples")
        ax.set_title("Ones per example: observed against predicted (band: 94% of draws)", fontsize=10)
    else:
        values = observed.ravel()
        low, high = np.percentile(np.concatenate([values, predictive.ravel(), reconstruction.ravel()]), [0.5, 99.5])
        bins = np.linspace(low, high, int(np.clip(np.sqrt(values.size), 10, 40)) + 1)
        ax.hist(values, bins=bins, density=True, color="0.85", edgecolor="k", label="observed")
        centres = 0.5 * (bins[1:] + bins[:-1])
        for label, draws, colour, _ in series:
            hist = np.stack([np.histogram(d.ravel(), bins=bins, density=True)[0] for d in draws])
            ax.plot(centres, hist.mean(0), color=colour, label=label)
            ax.fill_between(centres, *np.percentile(hist, [3, 97], axis=0), color=colour, alpha=0.2)
        ax.set_xlabel("value of y")
        ax.set_ylabel("density (per unit of y)")
        ax.set_title(f"Distribution of y, pooled over {F} factors (band: 94% of draws)", fontsize=10)
    if likelihood != "categorical":  # each factor's predicted mean against its observed one
        what = "frequency of a one" if likelihood == "bernoulli" else "mean"
        for label, draws, colour, _ in series:
            ax2.scatter(observed.mean(0), draws.mean(axis=(0, 1)), s=14, color=colour, alpha=0.7, label=label.split(":")[0])
        ax2.set_xlabel(f"observed {what} per factor of y")
        ax2.set_ylabel(f"predicted {what} (mean of draws)")
        ax2.set_title(f"Each factor: predicted against observed {what}", fontsize=10)
    lim = [min(ax2.get_xlim()[0], ax2.get_ylim()[0]), max(ax2.get_xlim()[1], ax2.get_ylim()[1])]
    ax2.plot(lim, lim, color="k", lw=0.8, ls="--", label="predicted = observed")
    ax2.set_xlim(lim)
    ax2.set_ylim(lim)
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax.set_ylim(bottom=0)
    fig.suptitle(f"Posterior predictive check on the {split} split ({n} examples, {S} draws each)")
    return fig


# -- sweeps -----------------------------------------------------------------------------------


def plot_sweep_heatmap(table, metric, axes_keys, panel_key, better=None, labels=None, description=None):
    """One heatmap panel of ``metric`` (mean over seeds) per value of ``panel_key``, on one colour scale
    whose bright end is the good end (``better``); cells show the mean and, over several seeds, the
    95% t-interval's half-width.

    :param table: per-setting dicts with the axes keys, ``<metric>_mean``, ``<metric>_std``, ``<metric>_n``.
    :param labels: ``{key: axis label}``.
    """
    labels = labels or {}
    y_key, x_key = axes_keys

    def panel_of(e):
        return e.get(panel_key, 0.0) or 0.0

    panels = sorted({panel_of(e) for e in table})
    xs = sorted({float(e[x_key]) for e in table})
    ys = sorted({float(e[y_key]) for e in table})
    grids, halves = [], []
    for panel in panels:
        grid, half = np.full((len(ys), len(xs)), np.nan), np.full((len(ys), len(xs)), np.nan)
        for e in table:
            if panel_of(e) == panel and e.get(f"{metric}_mean") is not None:
                i, j = ys.index(float(e[y_key])), xs.index(float(e[x_key]))
                grid[i, j] = e[f"{metric}_mean"]
                n, sd = e.get(f"{metric}_n") or 0, e.get(f"{metric}_std")
                if n > 1 and sd is not None:
                    half[i, j] = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
        grids.append(grid)
        halves.append(half)
    values = np.concatenate([g[np.isfinite(g)] for g in grids]) if grids else np.array([])
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5 * abs(low or 1) * 0.01, high + 0.5 * abs(high or 1) * 0.01
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(2.2 + 1.25 * len(xs) * len(panels) + 1.8, max(3.8, 2.2 + 0.8 * len(ys))),
        squeeze=False,
        layout="constrained",
    )
    cmap = better_cmap(better)
    image = None
    for ax, panel, grid, half in zip(axes[0], panels, grids, halves):
        image = ax.imshow(grid, cmap=cmap, aspect="auto", origin="lower", vmin=low, vmax=high)
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                shade = (v - low) / (high - low)
                bright = (1 - shade if better == "lower" else shade) > 0.6
                text = f"{v:.3g}" + (f"\n± {half[i, j]:.2g}" if np.isfinite(half[i, j]) else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="k" if bright else "w")
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
        ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
        ax.set_xlabel(labels.get(x_key, x_key))
        ax.set_ylabel(labels.get(y_key, y_key))
        if len(panels) > 1 or panel_key in labels:
            ax.set_title(f"{labels.get(panel_key, panel_key)} = {panel:g}", fontsize=10)
    direction = {"higher": "higher is better", "lower": "lower is better"}.get(better)
    bar = fig.colorbar(
        image, ax=axes[0].tolist(), shrink=0.85, label=f"{metric}\n({direction}: bright, at the top)" if better else metric
    )
    if better == "lower":
        bar.ax.invert_yaxis()  # the good end at the top, as in every other map
    intervals = "; ± : 95% t-interval over seeds" if any(np.isfinite(h).any() for h in halves) else ""
    what = f": {description}" if description else ""
    fig.suptitle(f"{metric}{what}\nmean over seeds{intervals}; blank: not run", fontsize=10)
    return fig


def plot_probe_panels(panels, chance=None, ceiling=None, panel_title="", num_examples=None):
    """Probe curves as small multiples.

    :param panels: ``[(title, [(label, steps, runs [seeds, steps]), ...]), ...]``: at most six lines a panel.
    :param chance: chance accuracy (``1 / number of labels``), drawn with its noise band when
        ``num_examples`` is given.
    :param ceiling: the Bayes ceiling.
    """
    cols = min(3, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols + 0.6, 3.6 * rows + 1.4), squeeze=False, sharey=True, layout="constrained"
    )
    multi = False
    for ax, (title, lines) in zip(axes.flat, panels):
        for i, (label, steps, runs) in enumerate(lines):
            runs = np.asarray(runs, dtype=float)
            mean = np.nanmean(runs, 0)
            ax.plot(steps, mean, marker="o", ms=3, color=f"C{i}", label=label)
            if len(runs) > 1:
                multi = True
                n = np.sum(np.isfinite(runs), 0)
                sd = np.nanstd(runs, 0, ddof=1)
                half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1))
                ax.fill_between(steps, mean - half, mean + half, color=f"C{i}", alpha=0.15)
        if ceiling is not None:
            ax.axhline(ceiling, color="k", ls="--", lw=1, label=f"Bayes ceiling ({ceiling:.3f})")
        if chance is not None:
            ax.axhline(chance, color="grey", ls=":", label=f"chance ({chance:.3f})")
            if num_examples:
                se = np.sqrt(chance * (1 - chance) / num_examples)
                ax.axhspan(chance - 2 * se, chance + 2 * se, color="grey", alpha=0.12)
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel("probe accuracy (validation)")
        ax.grid(alpha=0.3)
        # Two columns of long labels would run into the next panel's legend.
        ncol = 2 if max(len(label) for label, _, _ in lines) <= 28 else 1
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol, frameon=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    band = "; band: 95% t-interval over seeds" if multi else ""
    noise = "; grey band: chance ± 2 binomial s.e." if chance is not None and num_examples else ""
    fig.suptitle(
        f"Probe accuracy on sampled z over training, per setting{(' — ' + panel_title) if panel_title else ''}\n(line: "
        f"mean over seeds{band}{noise})",
        fontsize=10,
    )
    return fig


UNITS = {
    "mi": "nats",
    "marginal_kl": "nats",
    "nll": "nats per example",
    "probe_accuracy": "fraction correct",
    "coverage_tv": "total variation",
}


def plot_sweep_forest(names, metrics, per_seed, better=None, reference=None, seeds=1):
    """A forest plot across seeds: per setting (rows) and metric (panels), each seed's value and the
    mean with its 95% t-interval.

    :param per_seed: ``{metric: [[values of the seeds] per setting]}``.
    :param reference: ``{metric: [(value, label, style)]}`` reference lines (chance, ceiling), named in
        the axis label.
    """
    better = better or {}
    reference = reference or {}
    cols = min(3, len(metrics))
    grid_rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(
        grid_rows,
        cols,
        figsize=(4.2 * cols + 2.5, (1.5 + 0.32 * len(names)) * grid_rows + 1.0),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    rows = np.arange(len(names))
    for ax, metric in zip(axes.flat, metrics):
        for r, values in zip(rows, per_seed[metric]):
            values = [v for v in values if v is not None and np.isfinite(v)]
            if not values:
                continue
            ax.scatter(values, [r] * len(values), s=12, color="0.55", zorder=2, label="one seed")
            mean, half = t_interval(values)
            if np.isfinite(half):
                ax.errorbar(
                    mean, r, xerr=half, fmt="o", color="C0", ms=6, capsize=3, zorder=3, label="mean with its 95% t-interval"
                )
            else:
                ax.plot(mean, r, "o", color="C0", ms=6, zorder=3, label="mean")
        refs = []
        for value, label, style in reference.get(metric, []):
            ax.axvline(value, color="k", ls=style, lw=1)
            refs.append(f"{'dotted' if style == ':' else 'dashed'}: {label}")
        direction = {"higher": "higher is better", "lower": "lower is better"}.get(better.get(metric))
        unit = UNITS.get(metric)
        xlabel = f"{metric}" + (f" [{unit}]" if unit else "") + (f" ({direction})" if direction else "")
        ax.set_xlabel(xlabel + ("\n" + "; ".join(refs) if refs else ""), fontsize=9)
        ax.set_title(metric, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_yticks(rows, names, fontsize=8)
    axes[0, 0].invert_yaxis()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(
        f"Test-split results across seeds ({seeds} seed{'s' if seeds != 1 else ''} a setting): each seed and the mean "
        "with its 95% t-interval",
        fontsize=10,
    )
    return fig
