"""Sweep figures a reader can trust: heatmaps over any two swept keys with titles inside the figure,
colour scales that one cell cannot wash out, no panel title for a key that was not swept, and
intervals drawn within each quantity's range with a note when seeds are few."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import LogNorm

from infovae.reports import plots
from infovae.reports.sweep_report import _heatmap_axes


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def cell_texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def row(n=2, std=0.1, **keys_and_mean):
    mean = keys_and_mean.pop("mean")
    return {**keys_and_mean, "m_mean": mean, "m_std": std, "m_n": n}


def inside(fig, artist):
    fig.canvas.draw()
    extent, box = artist.get_window_extent(), fig.bbox
    return extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1 and extent.y1 <= box.y1 + 1


def test_heatmap_over_any_two_keys_names_included():
    table = [
        row(**{"model.latent": latent, "model.latent_size": size, "mean": 0.1 * size + (latent == "gaussian")})
        for latent in ("discrete", "gaussian")
        for size in (4, 10)
    ]
    fig = plots.plot_sweep_heatmap(table, "m", ("model.latent", "model.latent_size"), None, "higher", description="x " * 80)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["discrete", "gaussian"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "10"]
    assert ax.get_title() == ""  # no panel key: no panel title (no "δ = 0" for a δ not swept)
    assert inside(fig, fig._suptitle)
    # Two seeds: the mean alone in the cells, and the title says why.
    assert not any("±" in t or "[" in t for t in cell_texts(fig))
    assert "±12.7 standard errors" in fig._suptitle.get_text()


def test_one_large_cell_does_not_wash_out_the_others():
    values = {(0, 0): 1.07, (0, 1): 0.010, (1, 0): 0.018, (1, 1): 0.012}
    table = [row(n=3, std=0.001, a=a, b=b, mean=v) for (a, b), v in values.items()]
    fig = plots.plot_sweep_heatmap(table, "m", ("a", "b"), better="lower")
    norm = fig.axes[0].images[0].norm
    assert isinstance(norm, LogNorm) and "log scale" in fig.axes[-1].get_ylabel()
    assert abs(norm(0.018) - norm(0.010)) > 0.1  # distinguishable, where a linear scale gives 0.008
    # A dominant cell among values with a zero: a linear scale clipped at the outlier, and said so.
    values = {(0, 0): 5.0, (0, 1): 0.0, (1, 0): 0.02, (1, 1): 0.03, (2, 0): 0.01, (2, 1): 0.04}
    table = [row(n=3, std=0.001, a=a, b=b, mean=v) for (a, b), v in values.items()]
    fig = plots.plot_sweep_heatmap(table, "m", ("a", "b"))
    norm = fig.axes[0].images[0].norm
    assert norm.vmax == pytest.approx(0.04) and "clipped" in fig.axes[-1].get_ylabel()


def test_cell_intervals_stay_in_the_quantity_range():
    table = [row(n=3, std=0.3, a=a, b=0, mean=m) for a, m in ((0, 0.05), (1, 0.5))]
    fig = plots.plot_sweep_heatmap(table, "m", ("a", "b"), bounds=(0.0, 1.0))
    texts = cell_texts(fig)
    # 0.05 ± 0.75 would leave [0, 1]: the interval is cut and written as its ends.
    assert any(t.startswith("0.05\n[0, ") for t in texts)
    numbers = [float(x) for t in texts for x in t.replace("[", " ").replace("]", " ").replace(",", " ").split() if x != "±"]
    assert min(numbers) >= 0


def test_panels_are_titled_by_the_swept_key_only():
    table = [row(n=3, a=a, b=b, d=d, mean=a + b + d) for a in (0, 1) for b in (0, 1) for d in (0.0, 0.1)]
    fig = plots.plot_sweep_heatmap(table, "m", ("a", "b"), "d", labels={"d": "δ"})
    assert [ax.get_title() for ax in fig.axes[:2]] == ["δ = 0", "δ = 0.1"]
    table = [{**e, "panel": f"marginal={m}"} for e, m in zip(table, ["kl", "mmd"] * 4)]
    fig = plots.plot_sweep_heatmap(table, "m", ("a", "b"), "panel")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["marginal=kl", "marginal=mmd"]


def test_heatmap_axes_prefer_beta_gamma_then_any_two_keys():
    sweep = SimpleNamespace(varying=("model.latent_size", "objective.jsd_weight"))
    assert _heatmap_axes(sweep) == (("objective.jsd_weight", "model.latent_size"), [])
    sweep = SimpleNamespace(varying=("objective.jsd_weight", "objective.marginal_weight", "objective.beta", "train.lr"))
    assert _heatmap_axes(sweep) == (("objective.beta", "objective.marginal_weight"), ["objective.jsd_weight", "train.lr"])
    assert _heatmap_axes(SimpleNamespace(varying=("objective.beta",))) is None


def test_forest_intervals_stay_in_range_and_few_seeds_are_named():
    per_seed = {"probe_accuracy": [[0.05, 0.4], [0.9, 0.99]], "mi": [[0.01, 0.3], [1.0, 1.2]]}
    fig = plots.plot_sweep_forest(["a", "b"], ["probe_accuracy", "mi"], per_seed, seeds=2)
    for ax, (low, high) in zip(fig.axes, ((0, 1), (0, np.inf))):
        for line in ax.collections:
            segments = getattr(line, "get_segments", lambda: [])()
            for segment in segments:
                assert segment[:, 0].min() >= low - 1e-9 and segment[:, 0].max() <= high + 1e-9
    title = fig._suptitle.get_text()
    assert "only 2 seeds" in title and "12.7" in title and inside(fig, fig._suptitle)
    assert plots.few_seeds_note(3) is None


def test_mean_interval_is_the_t_interval_cut_to_bounds():
    mean, low, high = plots.mean_interval([0.1, 0.2, 0.3], (0.0, 1.0))
    half = plots.t_interval([0.1, 0.2, 0.3])[1]
    assert (mean, low, high) == pytest.approx((0.2, 0.0, 0.2 + half))
    assert np.isnan(plots.mean_interval([0.5], (0, 1))[1])


def test_probe_bands_are_one_standard_error_within_zero_and_one():
    steps = np.array([10, 20])
    runs = np.array([[0.05, 0.9], [0.6, 1.0]])
    fig = plots.plot_probe_panels([("p", [("s", steps, runs)])])
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    mean, se = runs.mean(0), runs.std(0, ddof=1) / np.sqrt(2)
    assert band.min() >= 0 and band.max() <= 1
    np.testing.assert_allclose(
        sorted(set(np.round(band, 6))), sorted(set(np.round(np.clip([*(mean - se), *(mean + se)], 0, 1), 6)))
    )
    assert "standard error" in fig._suptitle.get_text()


def test_kl_split_bars_do_not_reach_below_zero():
    fig = plots.plot_kl_split(
        ["a", "b"], [0.1, 0.45], [0.001, 0.005], [(-0.1, 0.3), (0.3, 0.6)], [(-0.01, 0.01), (0.0, 0.01)], seeds=2
    )
    for ax in fig.axes[:2]:
        assert ax.get_xlim()[0] == 0
        for line in ax.collections:
            for segment in getattr(line, "get_segments", lambda: [])():
                assert segment[:, 0].min() >= 0
    assert "only 2 seeds" in fig._suptitle.get_text()
