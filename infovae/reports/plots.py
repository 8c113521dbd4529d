"""Figures of what happened to the latent, for people: one function per figure, each returning a
:class:`matplotlib.figure.Figure` built from plain arrays and metric records."""

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (figures are written to files; no display is needed)
import matplotlib.pyplot as plt
import numpy as np

from infovae.core.latents import CategoricalLatent

__all__ = [
    "plot_contingency",
    "plot_elbo_surgery",
    "plot_generated_digits",
    "plot_generated_strategies",
    "plot_kl_split",
    "plot_latent_usage",
    "plot_loss_terms",
    "plot_probe",
    "plot_sweep_heatmap",
]

TERM_LABELS = {
    "recon": "reconstruction  E_q log p(y|x,z)  [nats]",
    "kl": "per-example KL(q(z|x,y) || p(z|x))  [nats]",
    "marginal": "marginal divergence D(q(z) || p(z))",
    "jsd": "inter-latent JSD  [nats]",
}


def _series(records, key):
    steps = np.array([r["step"] for r in records if r.get(key) is not None])
    values = np.array([r[key] for r in records if r.get(key) is not None], dtype=float)
    return steps, values


def plot_loss_terms(records, title="Loss terms on held-out data"):
    """The objective's terms over training, one panel each (their scales differ)."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True, layout="constrained")
    for ax, (key, label) in zip(axes.flat, TERM_LABELS.items()):
        steps, values = _series(records, key)
        ax.plot(steps, values, marker="o", ms=3, color="C0", label="held-out")
        steps_t, values_t = _series(records, f"train_{key}")
        if len(steps_t):
            ax.plot(steps_t, values_t, ls="--", color="C1", label="training (running mean)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("training step")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def plot_elbo_surgery(records):
    """``mean KL(q(z|x,y) || p(z)) = mi + marginal_kl`` over training, stacked: which role of the KL term moved."""
    steps, mi = _series(records, "mi")
    _, marginal = _series(records, "marginal_kl")
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    ax.stackplot(steps, mi, marginal, labels=["I(example; z): information in z", "KL(q(z) || p(z)): marginal mismatch"], alpha=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("nats")
    ax.set_title("ELBO surgery: the KL term split into mutual information and marginal mismatch")
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    return fig


def plot_probe(records, num_labels=None):
    """Accuracy of the sampled-z probe and NMI over training, against the Bayes ceiling and chance."""
    fig, (ax, ax_nmi) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    steps, acc = _series(records, "probe_accuracy")
    ax.plot(steps, acc, marker="o", ms=3, label="probe on sampled z (held-out)")
    _, ceiling = _series(records, "bayes_accuracy")
    if len(ceiling):
        ax.axhline(float(np.mean(ceiling)), color="k", ls="--", label="Bayes ceiling")
    if num_labels:
        ax.axhline(1.0 / num_labels, color="grey", ls=":", label=f"chance (1/{num_labels})")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy")
    ax.set_title("Label information in sampled z")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    steps, nmi = _series(records, "nmi")
    ax_nmi.plot(steps, nmi, marker="o", ms=3, color="C2")
    ax_nmi.set_ylim(0, 1.02)
    ax_nmi.set_xlabel("training step")
    ax_nmi.set_ylabel("NMI")
    ax_nmi.set_title("Normalised mutual information (latent code, label)")
    ax_nmi.grid(alpha=0.3)
    return fig


def plot_latent_usage(q, p):
    """Aggregate posterior against aggregate prior: per latent value (discrete) or per dimension (Gaussian)."""
    fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    if isinstance(q, CategoricalLatent):
        q_mean, p_mean = q.probs.mean(0), p.probs.mean(0)
        k = np.arange(len(q_mean))
        ax.bar(k - 0.2, q_mean, width=0.4, label="aggregate posterior q(z)")
        ax.bar(k + 0.2, p_mean, width=0.4, label="aggregate prior p(z)")
        ax.set_xticks(k)
        ax.set_xlabel("latent value z")
        ax.set_ylabel("probability")
        ax.set_title("Latent usage")
    else:
        d = np.arange(q.loc.shape[1])
        # Variance of the aggregate posterior per dimension: spread of the means plus mean variance.
        between, within = q.loc.var(0), (q.scale ** 2).mean(0)
        ax.bar(d, between, label="Var over examples of E[z|x,y] (information)")
        ax.bar(d, within, bottom=between, label="mean posterior variance (noise)")
        prior_var = p.loc.var(0) + (p.scale ** 2).mean(0)
        ax.scatter(d, prior_var, color="k", marker="_", s=400, zorder=3, label="aggregate prior variance")
        ax.set_xticks(d)
        ax.set_xlabel("latent dimension")
        ax.set_ylabel("variance")
        ax.set_title("Latent usage: aggregate posterior variance per dimension")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    ax.grid(alpha=0.3, axis="y")
    return fig


def plot_kl_split(settings, mi, marginal_kl):
    """Per setting, the final KL to the aggregate prior as information (I(x,y; z)) plus marginal mismatch."""
    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.35 * len(settings)), layout="constrained")
    rows = np.arange(len(settings))
    ax.barh(rows, mi, label="I(example; z): information in z")
    ax.barh(rows, marginal_kl, left=mi, label="KL(q(z) || p(z)): marginal mismatch")
    ax.set_yticks(rows, settings, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("nats (test split, mean over seeds)")
    ax.set_title("ELBO surgery per setting: the KL term split into its two roles")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    return fig


def plot_contingency(codes, labels, num_codes, label_name="label"):
    """Heatmap of P(code | label): which latent codes each label uses."""
    num_labels = int(labels.max()) + 1
    counts = np.zeros((num_labels, num_codes))
    np.add.at(counts, (labels, codes), 1)
    rows = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 2.5 + 0.55 * num_codes), max(3.0, 1.2 + 0.45 * num_labels)), layout="constrained")
    image = ax.imshow(rows, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(rows):
        if v >= 0.05:
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
    ax.set_xticks(range(num_codes))
    ax.set_yticks(range(num_labels))
    ax.set_xlabel("latent code")
    ax.set_ylabel(f"true {label_name}")
    ax.set_title(f"P(latent code | {label_name})")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of examples")
    return fig


def plot_generated_strategies(latent_actions, latent_weights, true_actions, true_mix, latent_label="latent value"):
    """Action distributions the decoder gives each latent value, beside the true strategies'.

    :param latent_actions: ``[K, A]`` action distribution per latent value (averaged over steps and contexts).
    :param latent_weights: ``[K]`` how often the prior picks each latent value.
    :param true_actions: ``[S, A]`` the same for the true strategies.
    :param true_mix: ``[S]`` the true strategy mix.
    """
    K, A = latent_actions.shape
    S = true_actions.shape[0]
    fig, axes = plt.subplots(
        1, 2, figsize=(10, 1.8 + 0.4 * max(K, S)), layout="constrained", gridspec_kw={"width_ratios": [1, 1]}
    )
    for ax, table, weights, title, row_label in (
        (axes[0], latent_actions, latent_weights, "generated: decoder per latent value", latent_label),
        (axes[1], true_actions, true_mix, "true strategies", "strategy"),
    ):
        image = ax.imshow(table, cmap="magma", vmin=0, vmax=max(float(latent_actions.max()), float(true_actions.max())), aspect="auto")
        ax.set_yticks(range(len(table)), [f"{row_label} {i}  (p={w:.2f})" for i, w in enumerate(weights)], fontsize=8)
        ax.set_xticks(range(A))
        ax.set_xlabel("action")
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.8, label="probability of the action")
    fig.suptitle("Action distributions (averaged over steps and contexts)")
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


def plot_generated_digits(images, conditions, given, latent_label="z"):
    """Completions of a few conditions (columns) by each latent value (rows); the given pixels are outlined in red.

    :param images: ``[K, n, 8, 8]`` pixel probabilities.
    :param conditions: ``[n, 8, 8]`` the inputs, with the hidden part zero.
    :param given: ``[8, 8]`` mask of the pixels given as the condition.
    """
    K, n = images.shape[:2]
    fig, axes = plt.subplots(K + 1, n, figsize=(1.1 * n + 0.8, 1.1 * (K + 1) + 0.6), squeeze=False, layout="constrained")
    for j in range(n):
        axes[0, j].imshow(conditions[j], cmap="gray_r", vmin=0, vmax=1)
        for i in range(K):
            axes[i + 1, j].imshow(images[i, j], cmap="gray_r", vmin=0, vmax=1)
    for ax in axes.flat:
        _outline(ax, given)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("given", fontsize=9)
    for i in range(K):
        axes[i + 1, 0].set_ylabel(f"{latent_label}={i}", fontsize=9)
    fig.suptitle("Completions by latent value (pixel probabilities)")
    return fig


def plot_sweep_heatmap(table, metric, axes_keys, panel_key):
    """One heatmap panel of ``metric`` (mean over seeds) per value of ``panel_key``, on one colour scale."""
    y_key, x_key = axes_keys
    panels = sorted({e.get(panel_key, 0.0) or 0.0 for e in table})
    xs = sorted({float(e[x_key]) for e in table})
    ys = sorted({float(e[y_key]) for e in table})
    grids = []
    for panel in panels:
        grid = np.full((len(ys), len(xs)), np.nan)
        for e in table:
            if (e.get(panel_key, 0.0) or 0.0) == panel and e[f"{metric}_mean"] is not None:
                grid[ys.index(float(e[y_key])), xs.index(float(e[x_key]))] = e[f"{metric}_mean"]
        grids.append(grid)
    values = np.concatenate([g[np.isfinite(g)] for g in grids]) if grids else np.array([0.0])
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(1.0 + 0.9 * len(xs) * len(panels) + 1.5, 1.2 + 0.7 * len(ys) + 0.8), squeeze=False, layout="constrained"
    )
    for ax, panel, grid in zip(axes[0], panels, grids):
        image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower", vmin=low, vmax=high)
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                bright = (v - low) / (high - low + 1e-12) > 0.6
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="k" if bright else "w")
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
        ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
        ax.set_xlabel("gamma (marginal weight)")
        ax.set_ylabel("beta (KL weight)")
        ax.set_title(f"delta (JSD weight) = {panel:g}", fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(f"{metric.replace('_', ' ')}: mean over seeds (blank: not run)")
    return fig
