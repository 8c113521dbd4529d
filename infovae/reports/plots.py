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
    "plot_completions",
    "plot_contingency",
    "plot_elbo_surgery",
    "plot_generated_strategies",
    "plot_image_samples",
    "plot_kl_split",
    "plot_latent_traversals",
    "plot_latent_usage",
    "plot_latent_values",
    "plot_loss_terms",
    "plot_ppc",
    "plot_probe",
    "plot_probe_panels",
    "plot_reconstructions",
    "plot_setting_images",
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
    scale: a ``marginal_kl`` of 0.005 nats stays visible beside 0.5 nats of information), with the
    test values at the end.

    :param test: ``{"mi", "marginal_kl"}`` of the test split, or ``None``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    parts = (
        ("mi", "information in z:  I(x,y; z) under q", "C0"),
        ("marginal_kl", "marginal_kl: KL between the n-component mixtures", "C3"),
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
    fig.suptitle(
        "ELBO surgery over the evaluation examples: mean KL(q(z|x,y) ‖ p(z)) = information (at most log n) + marginal_kl "
        "(each on its own scale)"
    )
    return fig


def plot_probe(records, chance=None, num_examples=None, test=None, selected_step=None):
    """Accuracy of the sampled-z probe and NMI over training (validation), against the Bayes ceiling and
    ``chance`` (the most frequent label's share among the validation examples evaluated:
    :func:`~infovae.reports.verdicts.chance_accuracy`), with chance's noise band (two binomial standard
    errors at ``num_examples``).

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
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", label=f"chance: most frequent label's share ({chance:.3f})")
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


def plot_kl_split(
    settings, mi, marginal_kl, mi_interval=None, marginal_interval=None, seeds=1, unit_note="test split, mean over seeds"
):
    """Per setting, the KL to the aggregate prior as information (I(x,y; z)) and ``marginal_kl`` (the KL
    between the n-component mixtures over the evaluation examples, which grows as posteriors narrow), in
    two panels with their own scales, with 95% t-intervals over seeds where given (``[(low, high)]`` per
    setting, cut at 0: neither part can be negative)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.8 + 0.38 * len(settings)), sharey=True, layout="constrained")
    rows = np.arange(len(settings))
    for ax, values, interval, title, colour in (
        (axes[0], mi, mi_interval, "information in z:  I(x,y; z)", "C0"),
        (axes[1], marginal_kl, marginal_interval, "marginal_kl: KL between the n-component mixtures", "C3"),
    ):
        values = np.asarray(values, dtype=float)
        ends = np.asarray(interval, dtype=float).reshape(-1, 2) if interval is not None else np.full((len(values), 2), np.nan)
        ends = np.where(np.isfinite(ends), np.clip(ends, 0, None), values[:, None])  # no interval: none drawn
        xerr = np.abs(np.stack([values - ends[:, 0], ends[:, 1] - values]))
        ax.barh(rows, values, xerr=xerr if np.isfinite(xerr).any() else None, color=colour, alpha=0.85, capsize=3)
        for r, v in enumerate(values):
            if np.isfinite(v):
                ax.text(max(v, ends[r, 1]), r, f"  {v:.3g}", va="center", fontsize=7)
        top = float(np.nanmax(np.maximum(values, ends[:, 1]))) if len(values) else 1.0
        ax.set_xlim(0, max(top * 1.3, 1e-4))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"nats ({unit_note})")
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(rows, settings, fontsize=8)
    axes[0].invert_yaxis()
    note = "; bars: 95% t-interval over seeds, cut at 0" if mi_interval is not None else ""
    warning = few_seeds_note(seeds) if mi_interval is not None else None
    title = f"ELBO surgery per setting: the KL term split into its two roles (each on its own scale{note})"
    fig.suptitle(_wrap(title + (f"\n⚠ {warning}" if warning else ""), fig.get_figwidth()), fontsize=10)
    return fig


def plot_contingency(codes, labels, num_codes, label_name="label", code_name="latent code", split="test"):
    """Heatmap of P(code | label): which latent codes each label uses, every non-empty cell annotated
    with its fraction and count; a row per label present (label ids need not be ``0..K-1``)."""
    ids, row = np.unique(labels, return_inverse=True)
    num_labels = len(ids)
    counts = np.zeros((num_labels, num_codes), dtype=int)
    np.add.at(counts, (row, codes), 1)
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
    ax.set_yticks(range(num_labels), [f"{i} (n={n})" for i, n in zip(ids, counts.sum(1))])
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


# -- images -----------------------------------------------------------------------------------

# Given pixels (the condition x) are drawn in blue ink inside an orange outline, the model's pixels in black
# ink, both on white; pixels a panel does not show are grey. Each image has a thin grey frame.
DRAWN_INK, GIVEN_INK, HIDDEN, OUTLINE, FRAME = np.zeros(3), np.array([0.05, 0.33, 0.85]), 0.78, "#f28e00", "0.6"


def _tiles(images, given, vmin, vmax):
    """RGB tiles ``[..., H, W, 3]`` of ``images [..., C, H, W]``: one channel as ink (blue where ``given``
    ``[H, W]`` is true), three as colour, others as their mean; NaN pixels light grey."""
    values = np.clip((np.asarray(images, dtype=float) - vmin) / (vmax - vmin), 0, 1)
    if values.shape[-3] == 3:
        rgb = np.moveaxis(values, -3, -1)
    else:
        ink = np.where(given[..., None], GIVEN_INK, DRAWN_INK) if given is not None else DRAWN_INK
        rgb = 1 - values.mean(axis=-3)[..., None] * (1 - ink)
    return np.where(np.isnan(rgb), HIDDEN, rgb)


def _mosaic(images, given, vmin, vmax):
    """One RGB canvas of ``images [R, K, C, H, W]`` with gaps, and the given-pixel mask on the same canvas."""
    R, K, _, H, W = images.shape
    gap = max(1, H // 14)
    canvas = np.ones((R * (H + gap) - gap, K * (W + gap) - gap, 3))
    mask, frames = np.zeros(canvas.shape[:2], dtype=bool), []
    tiles = _tiles(images, given, vmin, vmax)
    for r in range(R):
        for k in range(K):
            if np.isnan(images[r, k]).all():
                continue  # no image in this cell
            top, left = r * (H + gap), k * (W + gap)
            canvas[top : top + H, left : left + W] = tiles[r, k]
            frames.append((left, top))
            if given is not None:
                mask[top : top + H, left : left + W] = given
    return canvas, mask, frames, (H + gap, W + gap)


def _outline(ax, mask):
    """The boundary of a pixel mask, drawn along the pixel edges (one line collection)."""
    from matplotlib.collections import LineCollection

    padded = np.pad(mask, 1)
    rows, cols = np.nonzero(padded[1:, 1:-1] != padded[:-1, 1:-1])  # a horizontal edge above pixel (rows, cols)
    horizontal = [((c - 0.5, r - 0.5), (c + 0.5, r - 0.5)) for r, c in zip(rows, cols)]
    rows, cols = np.nonzero(padded[1:-1, 1:] != padded[1:-1, :-1])  # a vertical edge left of pixel (rows, cols)
    vertical = [((c - 0.5, r - 0.5), (c - 0.5, r + 0.5)) for r, c in zip(rows, cols)]
    ax.add_collection(LineCollection(horizontal + vertical, colors=OUTLINE, linewidths=1.1))


def _draw_grid(ax, images, given, vmin, vmax, row_labels=None, col_labels=None):
    """``images [R, K, C, H, W]`` as one picture on ``ax``: rows and columns labelled, given pixels outlined."""
    from matplotlib.collections import PolyCollection

    canvas, mask, frames, (step_h, step_w) = _mosaic(images, given, vmin, vmax)
    ax.imshow(canvas, interpolation="nearest")
    R, K, _, H, W = images.shape
    boxes = [[(x - 0.5, y - 0.5), (x + W - 0.5, y - 0.5), (x + W - 0.5, y + H - 0.5), (x - 0.5, y + H - 0.5)] for x, y in frames]
    ax.add_collection(PolyCollection(boxes, facecolors="none", edgecolors=FRAME, linewidths=0.6))
    if mask.any():
        _outline(ax, mask)
    margin = 1.5  # pixels of white around the grid, so that no frame or outline touches the axes' edge
    ax.set_xlim(-0.5 - margin, canvas.shape[1] - 0.5 + margin)
    ax.set_ylim(canvas.shape[0] - 0.5 + margin, -0.5 - margin)
    ax.set_yticks([r * step_h + (H - 1) / 2 for r in range(R)], row_labels or [""] * R, fontsize=8)
    ax.set_xticks([k * step_w + (W - 1) / 2 for k in range(K)], col_labels or [""] * K, fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _legend(fig, given):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=DRAWN_INK, label="the model's pixels (decoder mean)")]
    if given is not None and given.any():
        handles = [
            Patch(color=GIVEN_INK, label="given pixels (the condition x)"),
            Line2D([], [], color=OUTLINE, lw=1.5, label="the given region's outline"),
        ] + handles
    ncol = len(handles) if fig.get_figwidth() >= 2.3 * len(handles) else 1
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)


def _image_figure(panels, given, value_range, row_labels, col_labels, title):
    """Panels ``[(panel title, images [R, K, C, H, W])]`` side by side (four to a row), each with the same
    rows and columns."""
    R, K, _, H, _ = panels[0][1].shape
    cols = min(len(panels), 4)
    rows = int(np.ceil(len(panels) / cols))
    tile = 0.62 if H >= 16 else 0.5
    label_width = 0.08 * max(len(label) for label in row_labels or [""]) + 0.3
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(max(5.5, cols * (K * tile + 0.2) + label_width + 0.4), rows * (R * tile + (0.5 if col_labels else 0.25)) + 1.2),
        squeeze=False,
        layout="constrained",
    )
    given2d = None if given is None else np.asarray(given).any(0)
    for i, (ax, (panel_title, images)) in enumerate(zip(axes.flat, panels)):
        # Panels side by side share their rows: the labels stand left of the first panel of each row.
        _draw_grid(ax, images, given2d, *value_range, row_labels if i % cols == 0 else None, col_labels)
        if panel_title:
            ax.set_title(panel_title, fontsize=9)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    _legend(fig, given2d)
    fig.suptitle(_wrap(title, fig.get_figwidth()), fontsize=10)
    return fig


def _wrap(text, width_inches, fontsize=10):
    """``text`` broken into lines that fit ``width_inches`` at ``fontsize`` (its own line breaks kept)."""
    import textwrap

    width = max(30, int(width_inches * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def _stack(*rows):
    """Rows of ``[K, C, H, W]`` images as one ``[R, K, C, H, W]`` array."""
    return np.stack([np.asarray(r, dtype=float) for r in rows])


def plot_reconstructions(true, reconstructions, given=None, col_labels=None, value_range=(0.0, 1.0), split="test"):
    """The data and their reconstructions: ``y`` from the decoder at ``z ~ q(z|x,y)``.

    :param true: ``[n, C, H, W]`` the examples (columns).
    :param reconstructions: ``[S, n, C, H, W]`` the decoder's means at ``S`` draws of ``z`` each.
    :param given: ``[C, H, W]`` booleans, the pixels given as ``x`` (shown as they are), or ``None``.
    """
    rows = ["data"] + [f"reconstruction {s + 1}\nz ~ q(z|x,y)" for s in range(len(reconstructions))]
    return _image_figure(
        [("", _stack(true, *reconstructions))],
        given,
        value_range,
        rows,
        col_labels,
        f"Reconstructions of {split}-split examples: the decoder's mean at z drawn from the encoder q(z|x,y), which has seen y",
    )


def plot_completions(true, completions, given, col_labels=None, value_range=(0.0, 1.0), split="test"):
    """Conditional completions (the figure of Pyro's CVAE tutorial): the given pixels ``x``, the true
    image, and ``y`` from the decoder at several ``z ~ p(z|x)`` (the model has not seen ``y``).

    :param true: ``[n, C, H, W]``; :param completions: ``[S, n, C, H, W]`` decoder means;
    :param given: ``[C, H, W]`` booleans, the pixels of ``x``.
    """
    true = np.asarray(true, dtype=float)
    shown = np.where(np.asarray(given, dtype=bool), true, np.nan)  # the hidden pixels grey
    rows = ["given x", "true image"] + [f"completion {s + 1}\nz ~ p(z|x)" for s in range(len(completions))]
    return _image_figure(
        [("", _stack(shown, true, *completions))],
        given,
        value_range,
        rows,
        col_labels,
        f"Completions of {split}-split examples: from the given pixels x alone, z drawn from the prior p(z|x) and "
        "the decoder's mean of y\n(grey in the first row: what the model does not see)",
    )


def plot_image_samples(samples, given=None, value_range=(0.0, 1.0), title="Samples"):
    """A grid of generated images ``[R, K, C, H, W]`` (e.g. the decoder's mean at ``z ~ p(z|x)``)."""
    return _image_figure([("", np.asarray(samples, dtype=float))], given, value_range, None, None, title)


def plot_latent_traversals(images, offsets, row_labels, given=None, value_range=(0.0, 1.0), title="Latent traversals"):
    """A Gaussian latent, one dimension at a time: row ``d`` varies ``z[d]`` over ``offsets`` (in prior
    standard deviations around the prior mean) with every other dimension at the prior mean.

    :param images: ``[D, V, C, H, W]`` decoder means; :param offsets: ``[V]``.
    """
    columns = [f"{o:+.1f}σ" if o else "mean" for o in offsets]
    return _image_figure([("", np.asarray(images, dtype=float))], given, value_range, row_labels, columns, title)


def plot_latent_values(images, weights, values=None, given=None, col_labels=None, value_range=(0.0, 1.0), title=None):
    """A discrete latent: the decoder's mean for each latent value (rows), for a few conditions (columns).

    :param images: ``[K, n, C, H, W]``; :param weights: ``[K]`` the aggregate prior's probability of each value;
    :param values: ``[K]`` the latent values shown (default ``0..K-1``).
    """
    values = range(len(images)) if values is None else values
    rows = [f"z = {k}  (p = {w:.2f})" for k, w in zip(values, weights)]
    title = title or "The decoder's mean for each latent value z (p: its probability under the aggregate prior)"
    return _image_figure([("", np.asarray(images, dtype=float))], given, value_range, rows, col_labels, title)


def plot_setting_images(panels, given=None, row_labels=None, col_labels=None, value_range=(0.0, 1.0), title=""):
    """One image grid per setting of a sweep, side by side: ``panels [(setting, images [R, K, C, H, W])]``."""
    return _image_figure(panels, given, value_range, row_labels, col_labels, title)


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


def _tick(value):
    """A setting's value as the results tables spell it."""
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _sorted_values(values):
    """Distinct values in order: numbers by size, then the rest by their spelling."""
    distinct = {_value_key(v): v for v in values}.values()
    return sorted(
        distinct,
        key=lambda v: (not isinstance(v, (int, float)) or isinstance(v, bool), v if isinstance(v, (int, float)) else 0, _tick(v)),
    )


def _value_key(value):
    """A hashable stand-in for a setting's value (numbers of equal size are one key)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)


def mean_interval(values, bounds=None, level=0.95):
    """``(mean, low, high)``: the mean of ``values`` and its Student-t interval, cut to ``bounds`` (the
    values the quantity can take: an interval intersected with them keeps its coverage); NaN ends for
    fewer than two values."""
    mean, half = t_interval(values, level)
    low, high = bounds or (-np.inf, np.inf)
    return mean, float(np.clip(mean - half, low, high)), float(np.clip(mean + half, low, high))


def few_seeds_note(seeds):
    """What a reader must know of intervals over ``seeds`` seeds when they are few (``None`` otherwise)."""
    if seeds >= FEW_SEEDS or seeds < 2:
        return None
    t = stats.t.ppf(0.975, seeds - 1)
    return (
        f"only {seeds} seeds a setting: a 95% t-interval of the mean is ±{t:.1f} standard errors "
        f"(t with {seeds - 1} degree{'s' if seeds > 2 else ''} of freedom), so intervals are wide"
    )


def _colour_scale(values):
    """A colour normalisation for ``values`` and the words that name it: logarithmic where positive values
    span more than a factor of 20 (one large cell would wash out the rest on a linear scale), clipped at
    the outliers where a cell lies more than 3 interquartile ranges out, else linear."""
    from matplotlib.colors import LogNorm, Normalize

    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if high - low < 1e-12:
        return Normalize(low - 0.01 * abs(low or 1), high + 0.01 * abs(high or 1)), "", "neither"
    if low > 0 and high / low > 20:
        return LogNorm(low, high), "log scale", "neither"
    q1, q3 = np.percentile(values, [25, 75])
    inner = values[(values >= q1 - 3 * (q3 - q1)) & (values <= q3 + 3 * (q3 - q1))]
    if len(values) >= 4 and q3 > q1 and len(inner) < len(values):
        vmin, vmax = float(inner.min()), float(inner.max())
        extend = {(True, True): "both", (True, False): "min", (False, True): "max"}[(low < vmin, high > vmax)]
        return Normalize(vmin, vmax), "colours clipped at the outlying cells", extend
    return Normalize(low, high), "", "neither"


def plot_sweep_heatmap(table, metric, axes_keys, panel_key=None, better=None, labels=None, description=None, bounds=None):
    """One heatmap panel of ``metric`` (mean over seeds) per value of ``panel_key`` (a number, titled
    ``label = value``, or a string, the title itself; ``None``: one panel), over any two keys
    ``axes_keys`` (numbers or names), on one colour scale whose bright end is the good end (``better``):
    logarithmic, or clipped at outlying cells, where one cell would wash out the rest (the colour bar
    says which). Cells show the mean and, over at least :data:`FEW_SEEDS` seeds, its 95% t-interval
    (cut to ``bounds``); over fewer, the mean alone, and the title says why.

    :param table: per-setting dicts with the axes keys, ``<metric>_mean``, ``<metric>_std``, ``<metric>_n``.
    :param labels: ``{key: axis label}``.
    """
    labels = labels or {}
    y_key, x_key = axes_keys
    rows = [e for e in table if e.get(f"{metric}_mean") is not None]
    panels = _sorted_values(e.get(panel_key) for e in table) if panel_key else [None]
    xs, ys = _sorted_values(e.get(x_key) for e in table), _sorted_values(e.get(y_key) for e in table)
    x_index, y_index = {_value_key(v): i for i, v in enumerate(xs)}, {_value_key(v): i for i, v in enumerate(ys)}
    grids, cells, seeds = [], [], set()
    for panel in panels:
        grid, text = np.full((len(ys), len(xs)), np.nan), {}
        for e in rows:
            if panel_key and _value_key(e.get(panel_key)) != _value_key(panel):
                continue
            i, j = y_index[_value_key(e.get(y_key))], x_index[_value_key(e.get(x_key))]
            mean, sd, n = e[f"{metric}_mean"], e.get(f"{metric}_std"), int(e.get(f"{metric}_n") or 0)
            grid[i, j] = mean
            seeds.add(n)
            text[i, j] = f"{mean:.3g}" + _cell_interval(mean, sd, n, bounds)
        grids.append(grid)
        cells.append(text)
    values = np.concatenate([g[np.isfinite(g)] for g in grids])
    norm, scale, extend = _colour_scale(values)
    width = 2.2 + 1.3 * len(xs) * len(panels) + 1.8
    fig, axes = plt.subplots(1, len(panels), figsize=(width, max(3.8, 2.4 + 0.8 * len(ys))), squeeze=False, layout="constrained")
    cmap = better_cmap(better)
    image = None
    for ax, panel, grid, text in zip(axes[0], panels, grids, cells):
        image = ax.imshow(grid, cmap=cmap, aspect="auto", origin="lower", norm=norm)
        for (i, j), label in text.items():
            shade = float(np.clip(norm(grid[i, j]), 0, 1))
            bright = (1 - shade if better == "lower" else shade) > 0.6
            ax.text(j, i, label, ha="center", va="center", fontsize=8, color="k" if bright else "w")
        ax.set_xticks(range(len(xs)), [_tick(x) for x in xs])
        ax.set_yticks(range(len(ys)), [_tick(y) for y in ys])
        ax.set_xlabel(labels.get(x_key, x_key))
        ax.set_ylabel(labels.get(y_key, y_key))
        if panel_key:
            title = panel if isinstance(panel, str) else f"{labels.get(panel_key, panel_key)} = {_tick(panel)}"
            ax.set_title(_wrap(title, width / len(panels), 9), fontsize=9)
    direction = {"higher": "higher is better", "lower": "lower is better"}.get(better)
    words = [w for w in (f"{direction}: bright, at the top" if better else "", scale) if w]
    bar = fig.colorbar(
        image, ax=axes[0].tolist(), shrink=0.85, extend=extend, label=metric + (f"\n({'; '.join(words)})" if words else "")
    )
    if better == "lower":
        bar.ax.invert_yaxis()  # the good end at the top, as in every other map
    least = min(seeds) if seeds else 0
    if least >= FEW_SEEDS:
        spread = "; in brackets or ±: the 95% t-interval over seeds" + (", cut to the quantity's range" if bounds else "")
    else:
        spread = f"; no interval in the cells: {few_seeds_note(least)}" if few_seeds_note(least) else ""
    what = f": {description}" if description else ""
    fig.suptitle(_wrap(f"{metric}{what}\nmean over seeds{spread}; blank: not run", width, 10), fontsize=10)
    return fig


def _cell_interval(mean, sd, n, bounds):
    """A heatmap cell's interval: ``± half`` where the t-interval lies inside ``bounds``, ``[low, high]`` where
    it is cut; nothing over fewer than :data:`FEW_SEEDS` seeds."""
    if n < FEW_SEEDS or sd is None or not np.isfinite(sd):
        return ""
    half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
    low, high = bounds or (-np.inf, np.inf)
    if mean - half >= low and mean + half <= high:
        return f"\n± {half:.2g}"
    return f"\n[{max(mean - half, low):.2g}, {min(mean + half, high):.2g}]"


def plot_probe_panels(panels, chance=None, ceiling=None, panel_title="", num_examples=None):
    """Probe curves as small multiples.

    :param panels: ``[(title, [(label, steps, runs [seeds, steps]), ...]), ...]``: at most six lines a panel.
    :param chance: chance accuracy (the most frequent label's share among the examples evaluated:
        :func:`~infovae.reports.verdicts.chance_accuracy`), drawn with its noise band when
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
                se = np.nanstd(runs, 0, ddof=1) / np.sqrt(np.maximum(n, 1))
                ax.fill_between(steps, np.clip(mean - se, 0, 1), np.clip(mean + se, 0, 1), color=f"C{i}", alpha=0.15)
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
    band = "; band: ± one standard error of the mean over seeds" if multi else ""
    noise = "; grey band: chance ± 2 binomial s.e." if chance is not None and num_examples else ""
    fig.suptitle(
        f"Probe accuracy on sampled z over training, per setting{(' — ' + panel_title) if panel_title else ''}\n(line: "
        f"mean over seeds{band}{noise})",
        fontsize=10,
    )
    return fig


# The values each quantity can take: intervals of its mean are cut to them (an interval intersected with
# the values a quantity can take keeps its coverage).
RANGES = {
    "probe_accuracy": (0.0, 1.0),
    "bayes_accuracy": (0.0, 1.0),
    "nmi": (0.0, 1.0),
    "coverage_tv": (0.0, 1.0),
    "mi": (0.0, np.inf),
    "marginal_kl": (0.0, np.inf),
}
# Fewer seeds than this give t-intervals too wide to print in a cell (t = 12.7 with two).
FEW_SEEDS = 3
UNITS = {
    "mi": "nats",
    "marginal_kl": "nats",
    "nll": "nats per example",
    "probe_accuracy": "fraction correct",
    "coverage_tv": "total variation",
}


def plot_sweep_forest(names, metrics, per_seed, better=None, reference=None, seeds=1):
    """A forest plot across seeds: per setting (rows) and metric (panels), each seed's value and the
    mean with its 95% t-interval, cut to the values the metric can take (:data:`RANGES`); over few seeds
    the title says how wide that makes them.

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
            mean, low, high = mean_interval(values, RANGES.get(metric))
            if np.isfinite(low):
                ax.errorbar(
                    mean,
                    r,
                    xerr=[[mean - low], [high - mean]],
                    fmt="o",
                    color="C0",
                    ms=6,
                    capsize=3,
                    zorder=3,
                    label="mean with its 95% t-interval (cut to the metric's range)",
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
    note = few_seeds_note(seeds)
    title = (
        f"Test-split results across seeds ({seeds} seed{'s' if seeds != 1 else ''} a setting): each seed and the mean "
        "with its 95% t-interval" + (f"\n⚠ {note}: read the seeds themselves" if note else "")
    )
    fig.suptitle(_wrap(title, fig.get_figwidth()), fontsize=10)
    return fig
