"""The ArviZ data of a run: its groups mean what their names say, and the ArviZ 1.x calls that apply to
an amortised VAE work on it (those that do not apply are documented in infovae.reports.arviz)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.special import logsumexp

import infovae.reports.arviz as ivz
from infovae.reports.arviz import compare_heldout, heldout_elpd, read_datatree, run_datatree, write_datatree
from infovae.training.runs import open_run

pytestmark = pytest.mark.slow
az = pytest.importorskip("arviz")

DRAWS, EXAMPLES = 40, 25


@pytest.fixture(scope="module")
def trees(runs, tmp_path_factory):
    """Each run's tree, written to netCDF and read back (what a user of inference.nc gets)."""
    folder = tmp_path_factory.mktemp("trees")
    out = {}
    for name in ("strategies", "strategies_beta0", "gaussian", "digits"):
        tree = run_datatree(open_run(runs / name), num_draws=DRAWS, max_examples=EXAMPLES, seed=0)
        write_datatree(tree, folder / f"{name}.nc")
        out[name] = read_datatree(folder / f"{name}.nc")
    return out


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_groups_dims_and_example_coordinate(runs, trees):
    run = open_run(runs / "strategies")
    tree = trees["strategies"]
    assert {
        "posterior",
        "prior",
        "posterior_predictive",
        "reconstruction",
        "observed_data",
        "constant_data",
        "heldout_log_likelihood",
        "latent_parameters",
    } <= set(tree.children)
    # The example coordinate maps back to the full data set through splits.npz.
    np.testing.assert_array_equal(tree["observed_data"]["example"].values, run.splits.indices["test"][:EXAMPLES])
    assert tree.attrs["split"] == "test" and tree.attrs["draws"] == DRAWS and tree.attrs["examples"] == EXAMPLES
    # A discrete latent as one-hot indicators, the draws of every example interleaved: one value per draw.
    z = tree["posterior"]["z"]
    assert z.dims == ("chain", "draw", "z_value") and z.shape == (1, DRAWS * EXAMPLES, 4)
    np.testing.assert_array_equal(z.values.sum(-1), 1)
    np.testing.assert_array_equal(tree["posterior"]["example"].values, np.tile(run.splits.indices["test"][:EXAMPLES], DRAWS))
    assert tree["posterior_predictive"]["y"].dims == ("chain", "draw", "example", "factor")
    assert (
        tree["reconstruction"]["y"].shape
        == tree["posterior_predictive"]["y"].shape
        == (1, DRAWS) + tree["observed_data"]["y"].shape
    )
    np.testing.assert_array_equal(tree["observed_data"]["y"].values, run.splits.test.y[:EXAMPLES])
    np.testing.assert_array_equal(tree["constant_data"]["label"].values, run.splits.test.labels[:EXAMPLES])
    assert tree["heldout_log_likelihood"]["y"].dims == ("example",)
    gaussian = trees["gaussian"]["posterior"]["z"]
    assert gaussian.dims == ("chain", "draw", "latent_dim") and gaussian.shape == (1, DRAWS * EXAMPLES, 2)


def test_log_likelihood_is_the_exact_held_out_predictive_density(runs, trees):
    """log p(y|x) = logsumexp_k log p(z=k|x) + log p(y|x,z=k), and the summary's test nll is its mean."""
    run = open_run(runs / "strategies")
    test = run.splits.test.subset(slice(0, EXAMPLES))
    prior = run.backend.prior(test.x).probs
    log_lik = run.backend.log_likelihood(test.x, test.y, np.arange(prior.shape[1])[:, None])  # [K, n]
    expected = logsumexp(log_lik + np.log(prior).T, axis=0)
    tree = trees["strategies"]
    np.testing.assert_allclose(tree["heldout_log_likelihood"]["y"].values, expected, rtol=1e-5)
    assert tree["heldout_log_likelihood"].attrs["method"] == "exact"
    # On the whole test split (it is smaller than eval_examples) the elpd is -n * nll.
    full = run_datatree(run, num_draws=2, max_examples=10_000)
    elpd = heldout_elpd(full)
    assert elpd.n_data_points == len(run.splits.test)
    np.testing.assert_allclose(elpd.elpd, -len(run.splits.test) * run.summary["nll"], rtol=1e-4)
    assert trees["gaussian"]["heldout_log_likelihood"].attrs["method"] == "importance_weighted"


def test_predictive_draws_from_the_prior_and_reconstruction_from_the_posterior(runs, trees):
    """The posterior group's draws follow q(z|x,y), the prior group's p(z|x); the two y groups use them."""
    run = open_run(runs / "strategies")
    tree = trees["strategies"]
    test = run.splits.test.subset(slice(0, EXAMPLES))
    q, p = run.backend.posterior(test.x, test.y).probs, run.backend.prior(test.x).probs
    np.testing.assert_allclose(tree["latent_parameters"]["posterior_probs"].values, q, rtol=1e-6)
    np.testing.assert_allclose(tree["latent_parameters"]["prior_probs"].values, p, rtol=1e-6)
    # Means over draws and examples against the exact probabilities (40 x 25 draws: s.e. < 0.016).
    np.testing.assert_allclose(tree["posterior"]["z"].values.mean(axis=(0, 1)), q.mean(0), atol=0.06)
    np.testing.assert_allclose(tree["prior"]["z"].values.mean(axis=(0, 1)), p.mean(0), atol=0.06)
    # y values are integers in range, so ArviZ treats them as discrete.
    for group in ("posterior_predictive", "reconstruction", "observed_data"):
        y = tree[group]["y"].values
        assert np.issubdtype(y.dtype, np.integer) and y.min() >= 0 and y.max() < run.backend.arch.num_classes


def test_summary_is_the_aggregate_posterior_probabilities(trees):
    tree = trees["strategies"]
    summary = az.summary(tree, kind="stats")
    assert len(summary) == 4
    # The mean of a one-hot indicator is the estimated aggregate posterior probability of that value.
    means = summary["mean"].to_numpy(dtype=float)
    exact = tree["latent_parameters"]["posterior_probs"].values.mean(0)
    assert np.abs(means - exact).max() < 0.05  # 1000 draws: a few standard errors
    full = az.summary(tree)  # diagnostics too: ESS near the number of independent draws
    assert {"ess_bulk", "mcse_mean", "r_hat"} <= set(full.columns)
    assert len(az.summary(trees["gaussian"])) == 2


@pytest.mark.parametrize("name", ["strategies", "gaussian"])
def test_latent_plots_default_to_few_panels_and_select_examples(trees, name):
    tree = trees[name]
    panels = tree["posterior"]["z"].shape[-1]
    # Pooled over examples: the aggregate posterior, one panel per value or dimension.
    az.plot_dist(tree, backend="matplotlib")
    assert len(plt.gcf().axes) <= 2 * panels
    plt.close("all")
    az.plot_forest(tree, backend="matplotlib")
    plt.close("all")
    az.plot_prior_posterior(tree, backend="matplotlib")


def _class_frequencies(y, num_classes):
    return np.bincount(y.reshape(-1), minlength=num_classes) / y.size


@pytest.mark.filterwarnings("ignore::UserWarning")  # ArviZ's hints: pava suits binary data better
def test_predictive_checks_compare_draws_of_the_model_with_the_data(runs, trees):
    """The predictive groups draw y from what the model says, p(y|x) = sum_k p(k|x) p(y|x,k) (and from
    q(k|x,y) for the reconstruction), and pooling keeps every value in its place, so that the
    rootogram and the calibration plot compare the model with the data."""
    run = open_run(runs / "strategies")
    tree = trees["strategies"]
    test = run.splits.test.subset(slice(0, EXAMPLES))
    K, C = tree["latent_parameters"]["prior_probs"].shape[1], run.backend.arch.num_classes
    decoder = run.backend.decoder_mean(test.x, np.arange(K)[:, None])  # [K, n, F, C]
    for group, weights in (("posterior_predictive", "prior_probs"), ("reconstruction", "posterior_probs")):
        probs = np.einsum("nk,knfc->c", tree["latent_parameters"][weights].values, decoder) / np.prod(decoder.shape[1:3])
        drawn = _class_frequencies(tree[group]["y"].values, C)
        # 40 draws of 25 examples x 4 factors: a standard error below 0.02 per class.
        np.testing.assert_allclose(drawn, probs, atol=0.06, err_msg=group)
        pooled = ivz.pooled_predictive(tree, group)
        y = tree[group]["y"].values
        np.testing.assert_array_equal(pooled["posterior_predictive"]["y"].values, y.reshape(y.shape[:2] + (-1,)))
        np.testing.assert_array_equal(pooled["observed_data"]["y"].values, tree["observed_data"]["y"].values.reshape(-1))
        az.plot_ppc_rootogram(pooled, backend="matplotlib")
        assert plt.gcf().axes
        plt.close("all")
    # Bernoulli y (digits): every drawn pixel is 0 or 1, as the calibration plot needs.
    digits = ivz.pooled_predictive(trees["digits"])
    assert set(np.unique(digits["posterior_predictive"]["y"].values)) <= {0, 1}
    az.plot_ppc_pava(digits, backend="matplotlib")
    assert plt.gcf().axes


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_ppc_dist_on_gaussian_y(runs, tmp_path):
    tree = run_datatree(open_run(runs / "nolabels"), num_draws=20, max_examples=15)
    assert "label" not in tree["constant_data"]
    assert np.issubdtype(tree["observed_data"]["y"].dtype, np.floating)
    az.plot_ppc_dist(tree, backend="matplotlib")
    write_datatree(tree, tmp_path / "t.nc")


def test_compare_two_runs_on_held_out_predictive_density(trees, tmp_path):
    a, b = trees["strategies"], trees["strategies_beta0"]
    table = compare_heldout({"beta=1": a, "beta=0": b})
    assert set(table.index) == {"beta=1", "beta=0"}
    diff = float(a["heldout_log_likelihood"]["y"].sum() - b["heldout_log_likelihood"]["y"].sum())
    worse = table.index[table["rank"] == 1][0]
    assert worse == ("beta=0" if diff > 0 else "beta=1")
    np.testing.assert_allclose(abs(table.loc[worse, "elpd_diff"]), abs(diff), rtol=0.05, atol=0.05)
    # az.compare itself takes the held-out ELPDs, and plot_compare draws them.
    direct = az.compare({"a": heldout_elpd(a), "b": heldout_elpd(b)})
    az.plot_compare(direct, backend="matplotlib")
    # A file written by the report works too, and other data is refused.
    write_datatree(a, tmp_path / "a.nc")
    assert len(compare_heldout({"file": tmp_path / "a.nc", "tree": b})) == 2
    with pytest.raises(ValueError, match="different data"):
        compare_heldout({"strategies": a, "digits": trees["digits"]})


def test_what_does_not_apply_to_an_amortised_vae_fails_or_is_empty(trees):
    """As the module docstring says: one chain and no Markov chain, so r_hat is NaN; no draws of the
    network weights to reweight, so the tree holds no log_likelihood group and PSIS-LOO fails on it,
    alone or inside az.compare."""
    tree = trees["strategies"]
    assert az.summary(tree)["r_hat"].isna().all()
    assert "log_likelihood" not in tree.children and "heldout_log_likelihood" in tree.children
    with pytest.raises(Exception):  # noqa: B017 (ArviZ's own error, whichever it raises)
        az.loo(tree)
    with pytest.raises(Exception):  # noqa: B017
        az.compare({"a": tree, "b": tree})
