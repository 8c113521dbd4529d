"""Reports of tiny runs and a tiny sweep: every promised figure, listed with a caption, and sentences
that label their numbers."""

import ast
import json
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import infovae
from infovae.diagnostics.metrics import latent_codes
from infovae.reports import report, sweep_report
from infovae.reports.arviz import read_datatree
from infovae.reports.report import RUN_CAPTIONS, write_report
from infovae.training.runs import open_run

pytestmark = pytest.mark.slow

FIGURES = {
    "strategies": {"loss_terms", "elbo_surgery", "probe", "latent_usage", "contingency", "generated", "ppc"},
    "digits": {
        "loss_terms",
        "elbo_surgery",
        "probe",
        "latent_usage",
        "contingency",
        "reconstructions",
        "completions",
        "samples",
        "latent_values",
        "ppc",
    },
    "gaussian": {"loss_terms", "elbo_surgery", "probe", "latent_usage", "contingency", "generated", "ppc"},
    "numpyro": {"loss_terms", "elbo_surgery", "probe", "latent_usage", "contingency", "generated", "ppc"},
    "nolabels": {"loss_terms", "elbo_surgery", "latent_usage", "ppc"},
}


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.mark.parametrize("name", list(FIGURES))
def test_run_report_has_every_promised_figure_with_a_caption(runs, name):
    out = write_report(runs / name, draws=10, examples=20)
    text = out["report"].read_text()
    assert {p.stem for p in out["figures"]} == FIGURES[name]
    for figure in FIGURES[name]:
        width, height = png_size(runs / name / "report" / f"{figure}.png")
        assert 400 <= width <= 2500 and 250 <= height <= 2500, (figure, width, height)
        assert f"![{figure}](report/{figure}.png)" in text and RUN_CAPTIONS[figure] in text
    assert out["inference"].exists()
    tree = read_datatree(out["inference"])
    assert tree.attrs["draws"] == 10 and tree.attrs["examples"] == 20
    # Numbers are labelled by their split, and training and selection are stated.
    selected = json.loads((runs / name / "summary.json").read_text())["selected_step"]
    assert "## Training" in text and f"the test numbers use the weights of step {selected}, the best validation `loss`" in text
    assert "Trained for all 20 steps" in text and "nats of information about the example" in text
    assert "| quantity (test split) | value | meaning |" in text
    if name == "nolabels":
        assert "The data has no labels" in text
    else:
        assert re.search(r"The test probe accuracy [0-9.]+ is \*\*(at chance|above chance|below chance|not resolved)\*\*", text)
        # Twenty steps give too few evaluations for the decay test, which must say so rather than guess.
        assert re.search(r"Validation probe accuracy(: not tested for decay| \(sampled z\) over the second half)", text)
    if name in ("strategies", "gaussian", "numpyro"):
        # The verdict rests on the TV's bounds, not on the plain TV (biased upwards by its noise).
        assert re.search(
            r"Data generated from the prior \(test-split contexts\): (the prior covers|the prior \*\*does not cover|"
            r"whether the prior covers the strategies is \*\*not resolved).*total variation \*\*[0-9.]+\*\* from the "
            r"true mix over \d+ generated episodes, 95% bounds -?[0-9.]+–[0-9.]+, threshold 0.1",
            text,
        )


def test_a_second_report_replaces_the_first(runs):
    folder = runs / "strategies" / "report"
    write_report(runs / "strategies", draws=5, examples=10)
    (folder / "stale.png").write_bytes(b"")
    out = write_report(runs / "strategies", draws=5, examples=10)
    assert not (folder / "stale.png").exists() and {p.stem for p in out["figures"]} == FIGURES["strategies"]


def test_sweep_report(tmp_path, monkeypatch):
    base = {
        "data": {"kind": "strategies", "num_examples": 300, "horizon": 4, "num_strategies": 3},
        "model": {"latent": "discrete", "latent_size": 4, "hidden": 16},
        "train": {"steps": 10, "batch_size": 32, "eval_every": 5, "eval_examples": 80},
        "objective": {"marginal": "kl"},
    }
    spec = {
        "base": base,
        "grid": {"objective.beta": [1.0, 0.0], "objective.marginal_weight": [0.0, 5.0], "objective.jsd_weight": [0.1]},
        # A setting outside the (β, γ) grid (another marginal divergence) leaves the heatmaps of the grid.
        "list": [
            {
                "objective.beta": 0.0,
                "objective.marginal_weight": 5.0,
                "objective.jsd_weight": 0.1,
                "objective.marginal": "kl_corrected",
            }
        ],
        "seeds": [0, 1],
        "set": {"train.lr": 0.003},
    }
    infovae.sweep(spec, out=tmp_path / "out", progress=False, workers=2)
    opened = []
    with monkeypatch.context() as patch:
        patch.setattr(sweep_report, "open_run", lambda path: opened.append(path) or open_run(path))
        out = write_report(tmp_path / "out")
    # A run's splits are its data, generated again: read once for the figures and once per setting's
    # coverage sentence (5 settings), and once more for the figure of the first setting's latent.
    assert len(opened) <= 1 + 5 + 1, len(opened)
    text = out["report"].read_text()
    expected = {
        "heatmap_probe_accuracy",
        "heatmap_nmi",
        "heatmap_coverage_tv",
        "heatmap_mi",
        "heatmap_marginal_kl",
        "heatmap_nll",
        "kl_split",
        "probe_curves",
        "forest",
    }
    assert {p.stem for p in out["figures"]} == expected
    for figure in expected:
        png_size(tmp_path / "out" / "report" / f"{figure}.png")
        assert f"![{figure}](report/{figure}.png)" in text
    assert out["inference"] is None
    # Keys the same in every trial are named once, in the header, not in the labels.
    assert "- `train.lr` = 0.003" in text and "- `objective.jsd_weight` = 0.1" in text
    assert "δ=" not in text and "lr=" not in text
    assert "## What happened to the latent" in text
    assert text.count("- **β=") == 5 and "(2 seeds)" in text and "validation probe not tested for decay" in text
    # The coverage's bias bound counts the generator's labels (3 strategies).
    assert sweep_report._Sweep(tmp_path / "out").labels()["num_labels"] == 3
    # In a folder whose name is not UTF-8: the name shown escaped.
    moved = tmp_path / os.fsdecode(b"sweep-\xff")
    shutil.copytree(tmp_path / "out", moved)
    assert write_report(moved)["report"].read_bytes().decode("utf-8").startswith("# Sweep report: sweep-\\xff\n")


def test_sweep_decay_sentence_tests_the_mean_curve_and_never_calls_a_flat_one_decayed():
    from infovae.reports.sweep_report import _decay_sentence

    rng = np.random.default_rng(0)
    steps = np.arange(40) * 100
    # Three seeds of a flat curve with binomial-size noise: the old peak-less-final read ~0.02 "below its best".
    flat = [list(zip(steps, 0.6 + 0.015 * rng.standard_normal(40))) for _ in range(3)]
    sentence = _decay_sentence(flat)
    assert "decayed" not in sentence and "mean of 3 seeds" in sentence and "steps 2000–3900" in sentence
    falling = [list(zip(steps, np.r_[np.full(20, 0.6), np.linspace(0.6, 0.4, 20)] + 0.015 * rng.standard_normal(40)))]
    assert "**the probe decayed**" in _decay_sentence(falling)


def test_setting_names_order_the_weights_and_spell_values_as_the_tables_do():
    from infovae.reports.sweep_report import _setting_name

    overrides = {"objective.jsd_weight": 0.1, "objective.marginal": None, "objective.beta": 1.0, "train.lr": 0.01}
    assert _setting_name(overrides) == "β=1 δ=0.1 marginal=none lr=0.01"
    assert _setting_name({}) == "base"


@pytest.mark.parametrize(
    "values, labels, examples, verdict",
    [
        ([0.02, 0.03, 0.025], 4, 2000, "the prior covers the strategies"),
        ([0.30, 0.32, 0.31], 4, 2000, "the prior **does not cover the strategies evenly**"),
        ([0.06, 0.14, 0.10], 4, 2000, "whether the prior covers the strategies is **not resolved**"),
        ([0.02], 4, 2000, "whether the prior covers the strategies is **not resolved** (plain test TV 0.020, one seed"),
        # Plain TVs above the threshold by less than their upward bias at 200 examples (at most 0.061):
        # no seed need be above it, and a tight interval over seeds does not make it so.
        ([0.15, 0.151, 0.152, 0.149], 4, 200, "whether the prior covers the strategies is **not resolved**"),
        ([0.15, 0.151, 0.152, 0.149], 4, 2000, "the prior **does not cover the strategies evenly**"),
        # Without the numbers of labels and examples the bias has no bound: "covered" only.
        ([0.30, 0.32, 0.31], None, None, "whether the prior covers the strategies is **not resolved**"),
        ([0.02, 0.03, 0.025], None, None, "the prior covers the strategies"),
    ],
)
def test_a_sweeps_coverage_verdict_rests_on_the_interval_over_seeds_less_the_bias(values, labels, examples, verdict):
    from infovae.reports.sweep_report import _coverage_sentence

    assert _coverage_sentence(values, labels, examples).startswith(verdict)


def test_a_run_report_in_a_folder_whose_name_is_not_utf8(runs, tmp_path):
    """A byte that is not UTF-8 in the folder's name (Python keeps it as a lone surrogate) is shown
    escaped in the report, and the ArviZ example's path is a Python literal that opens the folder."""
    folder = tmp_path / os.fsdecode(b"run-\xff")
    shutil.copytree(runs / "strategies", folder)
    out = write_report(folder, draws=5, examples=10)
    text = out["report"].read_bytes().decode("utf-8")  # valid UTF-8
    assert text.startswith(f"# Run report: `{tmp_path}/run-\\xff`")
    literal = re.search(r"tree = read_datatree\((.*)\)", text).group(1)
    assert Path(ast.literal_eval(literal)) == folder / "report" / "inference.nc" and out["inference"].exists()


def test_a_gaussian_latent_with_sparse_label_ids_is_clustered_into_one_code_per_label(tmp_path, monkeypatch):
    """Labels stored as 3 and 8: the contingency's k-means codes number the labels (2), not the largest
    id + 1, and its rows are the two labels."""
    rng = np.random.default_rng(0)
    labels = rng.choice([3, 8], 300)
    x = rng.normal(size=(300, 3)).astype("float32")
    y = (rng.normal(size=(300, 5)) + (labels == 8)[:, None]).astype("float32")
    np.savez(tmp_path / "sparse.npz", x=x, y=y, labels=labels)
    config = {
        "data": {"kind": "npz", "path": str(tmp_path / "sparse.npz")},
        "model": {"latent": "gaussian", "latent_size": 2, "hidden": 16, "likelihood": "gaussian"},
        "train": {"steps": 10, "batch_size": 32, "eval_every": 5, "eval_examples": 80},
    }
    infovae.train(config, out=tmp_path / "run", progress=False)
    clusters = []
    monkeypatch.setattr(report, "latent_codes", lambda q, n, seed=0: clusters.append(n) or latent_codes(q, n, seed))
    figures = report.run_figures(open_run(tmp_path / "run"))
    assert clusters == [2]
    rows = [t.get_text().split(" ")[0] for t in figures["contingency"].axes[0].get_yticklabels()]
    assert rows == ["3", "8"] and len(figures["contingency"].axes[0].get_xticks()) == 2
