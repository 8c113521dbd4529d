"""The figures from plain arrays: what a reader needs is on them (numbers, legends, directions)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from infovae.reports import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def titled(fig):
    return bool(fig._suptitle and fig._suptitle.get_text()) or bool(fig.axes[0].get_title())


def test_contingency_numbers_every_non_empty_cell():
    labels = np.array([0] * 200 + [1] * 10)
    codes = np.array([0] * 199 + [1] + [2] * 10)  # one example of 200: a fraction of 0.005
    fig = plots.plot_contingency(codes, labels, 3, "strategy")
    shown = texts(fig)
    assert len(shown) == 3  # (0,0), (0,1), (1,2); the empty cells stay blank
    assert any("(1)" in t for t in shown) and any("(199)" in t for t in shown)
    assert titled(fig)


def test_elbo_surgery_keeps_a_small_mismatch_visible():
    records = [{"step": s, "mi": 0.5 + 0.01 * i, "marginal_kl": 0.005 - 0.001 * i} for i, s in enumerate((10, 20, 30))]
    fig = plots.plot_elbo_surgery(records, {"mi": 0.52, "marginal_kl": 0.004})
    info, mismatch = fig.axes[:2]
    # Each part on its own scale: the small one fills its panel.
    assert mismatch.get_ylim()[1] < 0.01 and info.get_ylim()[1] > 0.5
    assert all(ax.get_ylabel() == "nats" for ax in (info, mismatch))


def test_probe_legend_does_not_cover_the_chance_line():
    records = [{"step": s, "probe_accuracy": a, "bayes_accuracy": 0.8, "nmi": 0.2} for s, a in ((10, 0.3), (20, 0.35))]
    fig = plots.plot_probe(records, chance=0.4, num_examples=60)
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    plot_area = ax.get_window_extent()
    assert legend.y1 <= plot_area.y0  # below the axes, not over the lines
    assert any("chance" in t.get_text() and "0.400" in t.get_text() for t in ax.get_legend().get_texts())


def test_heatmap_colour_direction_follows_better():
    table = [
        {"objective.beta": b, "objective.marginal_weight": g, "objective.jsd_weight": d, "m_mean": v, "m_std": 0.1, "m_n": 3}
        for (b, g, d), v in zip(((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 5.0, 0.1), (1.0, 5.0, 0.1)), (0.1, 0.2, 0.3, 0.4))
    ]
    labels = {"objective.beta": "β", "objective.marginal_weight": "γ", "objective.jsd_weight": "δ"}
    low = plots.plot_sweep_heatmap(
        table, "m", ("objective.beta", "objective.marginal_weight"), "objective.jsd_weight", "lower", labels
    )
    high = plots.plot_sweep_heatmap(
        table, "m", ("objective.beta", "objective.marginal_weight"), "objective.jsd_weight", "higher", labels
    )
    assert low.axes[0].images[0].get_cmap().name == "viridis_r"
    assert high.axes[0].images[0].get_cmap().name == "viridis"
    assert [ax.get_title() for ax in high.axes[:2]] == ["δ = 0", "δ = 0.1"]
    assert any("±" in t for t in texts(high))  # 95% t-intervals over three seeds
    assert "lower is better" in low.axes[-1].get_ylabel()


def test_probe_panels_and_forest():
    steps = np.array([10, 20, 30])
    lines = [(f"γ={g}", steps, np.random.default_rng(g).uniform(0.3, 0.6, (3, 3))) for g in range(6)]
    fig = plots.plot_probe_panels([("β = 1", lines), ("β = 0", lines[:2])], chance=1 / 3, ceiling=0.8, num_examples=80)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    assert all(len(ax.get_legend().get_texts()) <= 6 + 2 for ax in fig.axes if ax.get_visible())
    fig = plots.plot_sweep_forest(
        ["β=1", "β=0"],
        ["probe_accuracy"],
        {"probe_accuracy": [[0.5, 0.6, 0.55], [0.4, None, 0.45]]},
        {"probe_accuracy": "higher"},
        seeds=3,
    )
    assert "higher is better" in fig.axes[0].get_xlabel()


@pytest.mark.parametrize("likelihood", ["categorical", "bernoulli", "gaussian"])
def test_ppc_has_a_legend_and_a_linear_scale(likelihood):
    rng = np.random.default_rng(0)
    if likelihood == "categorical":
        draw = lambda *shape: rng.integers(0, 5, shape)  # noqa: E731
    elif likelihood == "bernoulli":
        draw = lambda *shape: (rng.random(shape) < 0.3).astype(int)  # noqa: E731
    else:
        draw = lambda *shape: rng.normal(size=shape)  # noqa: E731
    fig = plots.plot_ppc(draw(40, 6), draw(20, 40, 6), draw(20, 40, 6), likelihood, num_classes=5)
    left = fig.axes[0]
    assert left.get_yscale() == "linear" and left.get_ylim()[0] == 0
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert "observed" in labels and any("predictive" in t for t in labels) and any("reconstruction" in t for t in labels)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes[:2])


def test_contingency_has_a_row_per_label_present_named_by_its_id():
    labels = np.array([3] * 5 + [8] * 7)  # ids as an npz file may store them
    codes = np.array([0] * 5 + [1] * 7)
    fig = plots.plot_contingency(codes, labels, 2, "strategy")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["3 (n=5)", "8 (n=7)"]
    assert len(texts(fig)) == 2 and all("1.00" in t for t in texts(fig))
