"""The image figures of a run whose data are images (``info["image"]``, an
:class:`~infovae.data.images.ImageLayout`): reconstructions, conditional completions, samples from the
prior, and latent traversals (Gaussian latent) or the decoder at each latent value (discrete latent).

Each function here turns a trained run into arrays of images ``[..., C, H, W]`` (the decoder's mean put
back in place beside the given pixels); :mod:`infovae.reports.plots` draws them.
"""

import numpy as np

from infovae.diagnostics.metrics import sample_latents
from infovae.reports import plots

__all__ = [
    "COLUMNS",
    "DRAWS",
    "chosen_examples",
    "completions",
    "image_figures",
    "latent_values",
    "missing_image_figures",
    "prior_samples",
    "reconstructions",
    "setting_images",
    "traversals",
    "value_range",
]

COLUMNS, DRAWS = 10, 3
SAMPLE_ROWS, SAMPLE_COLUMNS = 6, 10
# A traversal's offsets from the prior mean, in prior standard deviations; at most this many dimensions
# and latent values are drawn (the most used first).
OFFSETS = np.linspace(-2.5, 2.5, 9)
MAX_ROWS = 12


def layout_of(data):
    """The data's :class:`~infovae.data.images.ImageLayout`, or ``None`` where the data are not images."""
    return data.info.get("image")


def chosen_examples(data, count=COLUMNS):
    """Rows of ``data`` to draw: the first example of each label in label order (then the next of each, ...),
    or the first ``count`` where there are no labels; with their column labels. Only the label ids that occur
    are looked at: they need not be ``0..K-1`` (an npz file's may be 3 and 8)."""
    if data.labels is None:
        index = np.arange(min(count, len(data)))
        return index, [f"#{i}" for i in index]
    by_label = [np.flatnonzero(data.labels == label) for label in np.unique(data.labels)]
    index = [rows[r] for r in range(max(map(len, by_label))) for rows in by_label if r < len(rows)][:count]
    name = data.info.get("label_name", "label")
    return np.array(index), [f"{name} {data.labels[i]}" for i in index]


def _pixels(run, mean):
    """Pixel values from a decoder mean: probabilities (Bernoulli), locations (Gaussian), or the expected
    class (categorical)."""
    if run.backend.arch.likelihood == "categorical":
        return mean @ np.arange(mean.shape[-1])
    return mean


def value_range(run, data):
    """The pixel values drawn from white to full ink: [0, 1] (Bernoulli), the classes (categorical), or
    the data's own 1st to 99th percentile (Gaussian)."""
    likelihood = run.backend.arch.likelihood
    if likelihood != "gaussian":
        return 0.0, 1.0 if likelihood == "bernoulli" else float(data.num_classes - 1)
    layout = layout_of(data)
    values = data.y if not layout.completes else np.concatenate([data.x, data.y], axis=1)
    low, high = np.percentile(values, [1, 99])
    return float(low), float(high) if high > low else float(low) + 1.0


def _decoded(run, data, z):
    """Images from the decoder's mean at ``z`` (leading dims ``[*S, n]``) beside ``data``'s own ``x``."""
    return layout_of(data).to_images(data.x, _pixels(run, run.backend.decoder_mean(data.x, z)))


def _true(data):
    return layout_of(data).to_images(data.x, data.y)


def reconstructions(run, data, draws, rng):
    """``(true [n, C, H, W], reconstructions [S, n, C, H, W])``: the decoder's mean at ``z ~ q(z|x,y)``."""
    z = sample_latents(run.backend.posterior(data.x, data.y), rng, draws)
    return _true(data), _decoded(run, data, z)


def completions(run, data, draws, rng):
    """``(true [n, C, H, W], completions [S, n, C, H, W])``: the decoder's mean at ``z ~ p(z|x)``."""
    z = sample_latents(run.backend.prior(data.x), rng, draws)
    return _true(data), _decoded(run, data, z)


def prior_samples(run, data, rng, rows=SAMPLE_ROWS, columns=SAMPLE_COLUMNS):
    """``[rows, columns, C, H, W]``: each from a different example's ``x`` (one draw ``z ~ p(z|x)`` each); for an
    unconditional model, draws from ``p(z)``."""
    count = rows * columns
    chosen = data.subset(np.arange(count) % len(data))
    z = sample_latents(run.backend.prior(chosen.x), rng)
    return _decoded(run, chosen, z).reshape((rows, columns) + layout_of(data).shape)


def traversals(run, one, dims, offsets=OFFSETS):
    """``[D, V, C, H, W]``: the decoder's mean for the single example ``one`` (a one-row data set) with the
    Gaussian latent at the mean of its prior ``p(z|x)``, except dimension ``dims[d]`` in row ``d``, set to the
    prior mean plus ``offsets`` prior standard deviations."""
    p = run.backend.prior(one.x)
    z = np.repeat(p.loc[None, None], len(dims) * len(offsets), axis=0).reshape(len(dims), len(offsets), 1, -1)
    for row, d in enumerate(dims):
        z[row, :, 0, d] = p.loc[0, d] + offsets * p.scale[0, d]
    return _decoded(run, one, z)[:, :, 0]


def latent_values(run, data, values):
    """``[K, n, C, H, W]``: the decoder's mean at each discrete latent value of ``values``, for each example's ``x``."""
    return _decoded(run, data, np.asarray(values)[:, None])


def _traversal_figure(run, data, index, label, q, pixel_range, given):
    """A Gaussian latent varied one dimension at a time around the prior mean of one example's ``p(z|x)``."""
    one = data.subset(index[:1])
    usage = q.loc.var(0)  # how much each dimension varies across examples: the information it carries
    dims = np.argsort(-usage)[:MAX_ROWS]
    images = traversals(run, one, dims)
    rows = [f"z[{d}]  (Var E[z|x,y] = {usage[d]:.2g})" for d in dims]
    hidden = len(usage) - len(dims)
    where = "the prior p(z)" if one.x.shape[1] == 0 else f"the prior p(z|x) of one test example's x ({label})"
    title = (
        f"Latent traversals: one dimension at a time from −2.5 to +2.5 standard deviations around the mean of {where}, "
        "the others at that mean\n(rows: the dimensions that vary most across examples first"
        + (f"; {hidden} less used not shown" if hidden else "")
        + "; Var E[z|x,y] near 0: a dimension the encoder does not use)"
    )
    return plots.plot_latent_traversals(images, OFFSETS, rows, given, pixel_range, title)


def _values_figure(run, data, index, labels, p_all, pixel_range, given):
    """A discrete latent: the decoder's mean at each latent value, for a few examples' ``x``."""
    layout = layout_of(data)
    weights = p_all.probs.mean(0)
    values = np.sort(np.argsort(-weights)[:MAX_ROWS])
    columns = index[: 6 if layout.completes else 1]
    images = latent_values(run, data.subset(columns), values)
    hidden = len(weights) - len(values)
    more = f" ({hidden} least probable values not shown)" if hidden else ""
    if layout.completes:
        title = f"The decoder's mean for each latent value z given each example's x{more}\n(p: the aggregate prior's probability)"
        col_labels = labels[: len(columns)]
    else:
        title = f"The decoder's mean for each latent value z{more} (p: the prior's probability)"
        col_labels = None
    return plots.plot_latent_values(images, weights[values], values, given, col_labels, pixel_range, title)


def missing_image_figures(data, latent, kind):
    """``{figure stem: why it is not drawn}`` for a run with a ``latent`` (``"discrete"`` or ``"gaussian"``)
    on ``data`` of data kind ``kind``; ``{"image figures": why}`` for an npz not declared images."""
    layout = layout_of(data)
    if layout is None:
        if kind != "npz":
            return {}
        return {"image figures": "the data are not declared images (for an npz of images, give data.image_shape: [C, H, W])"}
    missing = {}
    if not layout.completes:
        missing["completions"] = "x holds no pixel of the image (the model generates the whole image): nothing to complete"
    if latent == "discrete":
        missing["traversals"] = "the latent is discrete: the decoder at each latent value is drawn instead (latent_values)"
    else:
        missing["latent_values"] = "the latent is Gaussian: each dimension's traversal is drawn instead (traversals)"
    return missing


def image_figures(run, data, seed=0):
    """The image figures of ``run`` on ``data`` (a split), by file stem; none where the data are not images
    (:func:`missing_image_figures` says which are left out and why)."""
    layout = layout_of(data)
    if layout is None:
        return {}
    rng = np.random.default_rng(seed)
    index, labels = chosen_examples(data)
    chosen = data.subset(index)
    pixel_range = value_range(run, data)
    given = layout.given if layout.completes else None
    split = "test"
    figures = {}
    true, recon = reconstructions(run, chosen, DRAWS, rng)
    figures["reconstructions"] = plots.plot_reconstructions(true, recon, given, labels, pixel_range, split)
    if layout.completes:
        true, drawn = completions(run, chosen, DRAWS + 1, rng)
        figures["completions"] = plots.plot_completions(true, drawn, given, labels, pixel_range, split)
    samples = prior_samples(run, data, rng)
    what = (
        "each from a different test example's given pixels x, z ~ p(z|x)"
        if layout.completes
        else ("z ~ p(z)" if data.x.shape[1] == 0 else "each for a different test example's x, z ~ p(z|x)")
    )
    figures["samples"] = plots.plot_image_samples(
        samples, given, pixel_range, f"Samples from the model: the decoder's mean at a draw of the prior ({what})"
    )
    fit = data.subset(slice(0, 2000))
    if run.backend.arch.latent == "discrete":
        figures["latent_values"] = _values_figure(run, data, index, labels, run.backend.prior(fit.x), pixel_range, given)
    else:
        q_fit = run.backend.posterior(fit.x, fit.y)
        figures["traversals"] = _traversal_figure(run, data, index, labels[0], q_fit, pixel_range, given)
    return figures


def setting_images(run, data, columns=4, seed=0):
    """The grid a sweep report shows for one setting: completions of ``columns`` test examples (``DRAWS``
    draws each, below the true image), or for an unconditional model ``DRAWS + 1`` rows of prior samples.
    Returns ``(images [R, K, C, H, W], row labels, column labels)``."""
    rng = np.random.default_rng(seed)
    layout = layout_of(data)
    if not layout.completes:
        return prior_samples(run, data, rng, DRAWS + 1, columns), [f"sample {r + 1}" for r in range(DRAWS + 1)], None
    index, labels = chosen_examples(data, columns)
    true, drawn = completions(run, data.subset(index), DRAWS, rng)
    rows = ["true image"] + [f"completion {s + 1}" for s in range(DRAWS)]
    return np.concatenate([true[None], drawn]), rows, labels
