"""Every ArviZ call the README names works on a run's DataTree (each line of its code block is run here),
the calls that do not apply to an amortised model fail at once and the tree says why, and az.summary
summarises the latent in a row per value or dimension."""

import re
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from infovae.reports.arviz import NO_LOO, compare_heldout, heldout_elpd, pooled_predictive, read_datatree, run_datatree
from infovae.training.runs import open_run

pytestmark = pytest.mark.slow
az = pytest.importorskip("arviz")

README = Path(__file__).parents[2] / "README.md"
DRAWS, EXAMPLES = 30, 40
# The test runs by the likelihood of y (conftest.py): strategies and gaussian are categorical, digits
# Bernoulli, nolabels Gaussian.
LIKELIHOOD = {"strategies": "categorical", "gaussian": "categorical", "digits": "bernoulli", "nolabels": "gaussian"}


def readme_calls():
    """The calls of the README's ArviZ code block: ``(code, comment)`` per line that calls something."""
    section = README.read_text().split("**ArviZ data**", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    calls = []
    for line in block.splitlines():
        code, _, comment = line.partition("#")
        code = code.strip()
        if code and not code.startswith(("import ", "from ")) and "read_datatree(" not in code:
            calls.append((code, comment.strip()))
    return calls


@pytest.fixture(scope="module")
def trees(runs):
    """Per run: its tree and another tree of the same data (another seed's draws), as a user reads them."""
    out = {}
    for name in LIKELIHOOD:
        run = open_run(runs / name)
        out[name] = tuple(run_datatree(run, num_draws=DRAWS, max_examples=EXAMPLES, seed=seed) for seed in (0, 1))
    return out


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_the_readme_block_names_the_calls_it_promises():
    codes = " ".join(code for code, _ in readme_calls())
    for call in ("az.summary(", "az.plot_dist(", "az.plot_ppc_pava(", "compare_heldout(", "az.compare(", "az.loo("):
        assert call in codes


@pytest.mark.filterwarnings("ignore::UserWarning")  # ArviZ's hints about discrete data
@pytest.mark.parametrize("name", list(LIKELIHOOD))
def test_every_readme_call_works_or_fails_as_it_says(trees, name):
    tree, other = trees[name]
    scope = {"az": az, "tree": tree, "other": other, "heldout_elpd": heldout_elpd, "compare_heldout": compare_heldout}
    scope["pooled_predictive"] = pooled_predictive
    ran = 0
    for code, comment in readme_calls():
        for kind in ("Bernoulli", "categorical"):
            if comment.startswith(f"{kind} y") and LIKELIHOOD[name] != kind.lower():
                break
        else:
            if comment.startswith("fails"):
                with pytest.raises(TypeError, match="log likelihood not found"):
                    eval(code, scope)
            else:
                eval(code, scope)
                ran += 1
            plt.close("all")
    assert ran >= 8


def test_loo_and_compare_of_trees_fail_and_the_tree_says_what_to_call(trees):
    tree, other = trees["strategies"]
    assert "log_likelihood" not in tree.children  # nothing for PSIS-LOO to misread as per-draw likelihoods
    with pytest.raises(TypeError, match="log likelihood not found"):
        az.loo(tree)
    with pytest.raises(Exception, match="ELPD"):
        az.compare({"a": tree, "b": other})
    assert tree.attrs["loo"] == NO_LOO and "compare_heldout" in NO_LOO
    # What to call instead gives the held-out comparison.
    table = compare_heldout({"a": tree, "b": other})
    assert set(table.index) == {"a", "b"}


def test_one_dimensional_ppc_plots_need_the_pooled_predictive(trees):
    tree, _ = trees["digits"]
    with pytest.raises(Exception):
        az.plot_ppc_pava(tree)
    pooled = pooled_predictive(tree)
    assert pooled["observed_data"]["y"].shape == (tree["observed_data"]["y"].size,)
    np.testing.assert_array_equal(pooled["observed_data"]["y"].values, tree["observed_data"]["y"].values.ravel())


def test_summary_of_a_discrete_latent_is_one_row_per_value(trees):
    tree, _ = trees["strategies"]
    K = tree["latent_parameters"]["posterior_probs"].shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        summary = az.summary(tree, kind="stats")
    assert list(summary.index) == [f"z[{k}]" for k in range(K)]
    # Each mean is the aggregate posterior probability of its value, to its Monte-Carlo error.
    full = az.summary(tree)
    exact = tree["latent_parameters"]["posterior_probs"].values.mean(0)
    means, mcse = full["mean"].to_numpy(float), full["mcse_mean"].to_numpy(float)
    assert np.all(np.abs(means - exact) <= 4 * mcse + 1e-3)
    prior = az.summary(tree, group="prior", kind="stats")["mean"].to_numpy(float)
    assert np.abs(prior - tree["latent_parameters"]["prior_probs"].values.mean(0)).max() < 0.05


def test_summary_of_a_gaussian_latent_is_one_row_per_dimension(trees):
    tree, _ = trees["gaussian"]
    summary = az.summary(tree, kind="stats")
    params = tree["latent_parameters"]
    assert len(summary) == params["posterior_loc"].shape[1]
    # The aggregate posterior's mean and spread: mean of the means; variance = spread of means + mean variance.
    loc, scale = params["posterior_loc"].values, params["posterior_scale"].values
    sd = np.sqrt(loc.var(0) + (scale**2).mean(0))
    np.testing.assert_allclose(summary["mean"].to_numpy(float), loc.mean(0), atol=4 * sd.max() / np.sqrt(DRAWS * EXAMPLES) + 1e-3)
    np.testing.assert_allclose(summary["sd"].to_numpy(float), sd, rtol=0.1, atol=1e-3)


def test_trees_of_infovae_0_2_still_compare(trees, tmp_path):
    """Files written before the held-out group was renamed keep working with compare_heldout."""
    tree, other = trees["strategies"]
    old = tree.copy()
    old["log_likelihood"] = old["heldout_log_likelihood"]
    del old["heldout_log_likelihood"]
    path = tmp_path / "old.nc"
    old.to_netcdf(path, engine="h5netcdf")
    np.testing.assert_allclose(heldout_elpd(read_datatree(path)).elpd, heldout_elpd(tree).elpd)
    assert len(compare_heldout({"old": path, "new": other})) == 2
