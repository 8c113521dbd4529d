"""Reports of a tiny run and a tiny sweep: the promised figures, the ArviZ data and its round trip."""

import struct

import numpy as np
import pytest
import yaml

from infovae.reports.arviz import (
    pooled_predictive,
    read_datatree,
    to_datatree,
    write_datatree,
)
from infovae.reports.report import write_report
from infovae.sweeps import run_sweep
from infovae.training.config import parse_config
from infovae.training.loop import start_run
from infovae.training.runs import open_run

pytestmark = pytest.mark.slow

STRATEGIES = {
    "data": {"kind": "strategies", "num_examples": 300, "horizon": 4, "num_strategies": 3},
    "model": {"latent": "discrete", "latent_size": 4, "hidden": 16},
    "train": {"steps": 20, "batch_size": 32, "eval_every": 10, "eval_examples": 80},
}
RUN_FIGURES = {"loss_terms", "elbo_surgery", "probe", "latent_usage", "contingency", "generated", "ppc"}


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    configs = {
        "strategies": STRATEGIES,
        "digits": {**STRATEGIES, "data": {"kind": "digits"}},
        "gaussian": {**STRATEGIES, "model": {"latent": "gaussian", "latent_size": 2, "hidden": 16, "prior": "learned"}},
    }
    for name, raw in configs.items():
        start_run(parse_config(raw), root / name, progress=False)
    return root


@pytest.mark.parametrize("name", ["strategies", "digits", "gaussian"])
def test_run_report_has_every_promised_figure(runs, name):
    report = write_report(runs / name)["report"]
    text = report.read_text()
    for figure in RUN_FIGURES:
        path = runs / name / "report" / f"{figure}.png"
        width, height = png_size(path)
        assert 400 <= width <= 2500 and 250 <= height <= 2500, (figure, width, height)
        assert f"report/{figure}.png" in text
    assert "Sampled-z probe accuracy" in text and "nats of information about the example" in text
    if name != "digits":
        assert "Data generated from the prior has strategy mix at total variation" in text


def test_datatree_groups_dims_and_netcdf_round_trip(runs, tmp_path):
    import arviz as az

    run = open_run(runs / "gaussian")
    tree = to_datatree(run.backend, run.splits.test, num_draws=7, max_examples=11)
    assert {"posterior", "posterior_predictive", "log_likelihood", "observed_data", "constant_data"} <= set(tree.children)
    assert tree["posterior"]["z"].dims == ("chain", "draw", "example", "latent_dim")
    assert tree["posterior"]["z"].shape == (1, 7, 11, 2)
    # The pointwise log-likelihood has the observed data's dims, plus the sample dims.
    assert tree["log_likelihood"]["y"].dims == ("chain", "draw") + tree["observed_data"]["y"].dims
    assert tree["posterior_predictive"]["y"].shape == (1, 7) + tree["observed_data"]["y"].shape
    path = tmp_path / "tree.nc"
    write_datatree(tree, path)
    back = read_datatree(path)
    np.testing.assert_array_equal(back["posterior"]["z"].values, tree["posterior"]["z"].values)
    np.testing.assert_array_equal(back["observed_data"]["y"].values, tree["observed_data"]["y"].values)
    summary = az.summary(back, var_names=["z"], kind="stats")
    assert len(summary) == 11 * 2
    az.plot_ppc_rootogram(pooled_predictive(back), backend="matplotlib")


def test_discrete_log_likelihood_matches_the_backend(runs):
    run = open_run(runs / "strategies")
    tree = to_datatree(run.backend, run.splits.test, num_draws=3, max_examples=5)
    x, y = run.splits.test.x[:5], run.splits.test.y[:5]
    z = tree["posterior"]["z"].values[0]
    np.testing.assert_allclose(tree["log_likelihood"]["y"].values[0].sum(-1), run.backend.log_likelihood(x, y, z), rtol=1e-5)


def test_sweep_report(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "base": {**STRATEGIES, "objective": {"marginal": "kl"}},
                "grid": {"objective.beta": [1.0, 0.0], "objective.marginal_weight": [0.0, 5.0], "objective.jsd_weight": [0.0, 0.1]},
                "seeds": [0, 1],
                "list": [],
            }
        ).replace("list: []\n", "")
    )
    sweep.write_text(sweep.read_text().replace("steps: 20", "steps: 10"))
    run_sweep(sweep, tmp_path / "out", workers=2, progress=False)
    report = write_report(tmp_path / "out")["report"]
    for figure in ("heatmap_probe_accuracy", "heatmap_nmi", "heatmap_coverage_tv", "heatmap_mi", "kl_split", "probe_curves", "forest"):
        png_size(tmp_path / "out" / "report" / f"{figure}.png")
        assert f"report/{figure}.png" in report.read_text()
    text = report.read_text()
    assert "## What happened to the latent" in text
    assert text.count("- **β=") == 8 and "probe (validation) peaked at" in text and "nats of information" in text


def test_setting_names_order_the_weights_and_spell_values_as_the_tables_do():
    from infovae.reports.report import _setting_name

    overrides = {"objective.jsd_weight": 0.1, "objective.marginal": None, "objective.beta": 1.0, "train.lr": 0.01}
    assert _setting_name(overrides) == "β=1 δ=0.1 marginal=none lr=0.01"
    assert _setting_name({}) == "base"
