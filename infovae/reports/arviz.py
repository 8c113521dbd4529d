"""A run's latent, predictions and held-out predictive density as ArviZ 1.x data (an :class:`xarray.DataTree`).

``infovae report RUN --draws S --examples N`` writes it to ``RUN/report/inference.nc``;
:func:`run_datatree` builds it in a notebook, :func:`read_datatree` reads the file back. Defaults: the
first ``N = 500`` examples of the test split, ``S = 100`` draws per example.

Groups (``chain`` has length 1: the draws are independent draws from the amortised networks, not a
Markov chain):

- ``posterior`` — draws of the *aggregate* posterior ``q(z) = mean_i q(z|x_i,y_i)``, the distribution the
  InfoVAE objective matches to the prior: ``S`` draws ``z ~ q(z|x_i,y_i)`` for each of the ``N`` held-out
  examples, interleaved along ``draw`` (draw ``s * N + i`` comes from example ``i``, named by the
  coordinate ``example (draw)``). A discrete latent is stored as one-hot indicators
  ``z (chain, draw, z_value)`` (0/1), so that a mean is the probability of that value; a Gaussian one as
  ``z (chain, draw, latent_dim)``. One example's exact posterior is in ``latent_parameters``.
- ``prior`` — draws of the aggregate prior ``mean_i p(z|x_i)``, the same layout: the latents behind
  ``posterior_predictive``.
- ``posterior_predictive`` — a true predictive: ``z ~ p(z|x)``, then ``y ~ p(y|x,z)`` (what generation
  does; it has not seen ``y``). ``y (chain, draw, example, factor)``.
- ``reconstruction`` — a *reconstruction check*, not a predictive one: ``z ~ q(z|x,y)`` (the encoder has
  seen ``y``), then ``y ~ p(y|x,z)``. Same layout as ``posterior_predictive``.
- ``observed_data`` — ``y (example, factor)``; ``constant_data`` — ``x (example, x_dim)`` and, where the
  data has them, ``label (example)``.
- ``heldout_log_likelihood`` — ``y (example)``: the pointwise held-out predictive density
  ``log p(y_i|x_i)``, exact for a discrete latent (``logsumexp_k log p(z=k|x) + log p(y|x,z=k)``),
  importance-weighted with draws from ``q`` for a Gaussian one (attribute ``method``; the estimate is a
  lower bound in expectation). It has no sample dims: ``z`` is summed out, and the network weights are
  one point estimate, not posterior draws. It is not named ``log_likelihood``: that group means per-draw
  likelihoods of posterior draws of global parameters, which PSIS-LOO reweights, and these are not.
- ``latent_parameters`` — the exact distributions the draws come from, per example: ``posterior_probs``
  / ``prior_probs (example, z_value)``, or ``posterior_loc``, ``posterior_scale``, ``prior_loc``,
  ``prior_scale (example, latent_dim)``.

The ``example`` coordinate holds the split's row indices into the full data set (the indices in the
run's ``splits.npz``); the root's attribute ``split`` names the split. The ``y``'s of a categorical or
Bernoulli likelihood are integers, so ArviZ treats them as discrete.

What works (``import arviz as az``; the README's ArviZ section lists these calls, and
``tests/reports/test_arviz_calls.py`` runs every call it lists):

- ``az.summary(tree)``: one row per latent value (discrete: the mean is the aggregate posterior
  probability ``q(z=k)``, its ``mcse_mean`` the Monte-Carlo error of that estimate) or per latent
  dimension (Gaussian: the aggregate posterior's mean and spread). ``r_hat`` is NaN: there is one chain,
  and no Markov chain to converge. A latent value never drawn is a constant column, whose ``mcse_sd``
  ArviZ cannot compute (it warns); ``az.summary(tree, kind="stats")`` leaves the diagnostics out.
  ``az.summary(tree, group="prior")`` summarises the aggregate prior the same way.
- ``az.plot_dist(tree)``, ``az.plot_forest(tree)`` and ``az.plot_prior_posterior(tree)``: the aggregate
  posterior (against the aggregate prior), one panel per latent value or dimension.
- Predictive checks: ``az.plot_ppc_dist(tree)`` (it pools examples and factors; for a Gaussian ``y``);
  for a categorical ``y`` a rootogram of the counts per class, of one factor
  (``az.plot_ppc_rootogram(tree, coords={"factor": 0})``) or of all factors pooled
  (``az.plot_ppc_rootogram(pooled_predictive(tree))``: ArviZ's rootogram and PAVA calibration plot take
  one-dimensional observations, so on the tree itself they fail); for a Bernoulli ``y`` the calibration
  plot ``az.plot_ppc_pava(pooled_predictive(tree))``. ``group="reconstruction"`` (or
  ``pooled_predictive(tree, "reconstruction")``) gives the same plots for the reconstruction.
- Model comparison on held-out predictive density: :func:`heldout_elpd` turns a tree's
  ``heldout_log_likelihood`` into an ``ELPDData`` (``elpd = sum_i log p(y_i|x_i)``, its standard error
  ``sqrt(n var_i)``), which ``az.compare`` takes, and ``az.plot_compare`` draws;
  :func:`compare_heldout` does both for several runs or sweep trials, on the examples their trees share.

What does not apply to an amortised VAE, and why:

- PSIS-LOO (``az.loo``, ``az.compare`` given trees, ``az.loo_pit``, ``az.plot_khat``, ``az.plot_loo_pit``):
  leave-one-out reweights posterior draws of *global* parameters to drop one observation. Here the
  network weights are one point estimate (there are no draws of them), ``z`` is local to each example
  (its draws are not shared across observations), and the held-out examples were never used to fit
  the model: their ``log p(y_i|x_i)`` already is an out-of-sample predictive density, and there is
  nothing to leave out. So the tree has no ``log_likelihood`` group: ``az.loo(tree)`` fails at once
  ("log likelihood not found"), and ``az.compare`` of trees with it; call :func:`compare_heldout` (or
  ``az.compare`` on :func:`heldout_elpd` of each tree) instead.
- Convergence diagnostics (``r_hat``, ``az.plot_trace``, ``az.plot_rank``, ``az.plot_ess``): the draws
  are exact independent draws from ``q``, not a Markov chain; there is nothing to converge.
- Prior sensitivity (``az.psense``): needs ``log_prior`` over parameters, which a trained network has not.
"""

from functools import cache

import numpy as np

from infovae.core.latents import CategoricalLatent
from infovae.diagnostics.evaluate import log_marginal_likelihood
from infovae.diagnostics.metrics import sample_latents

__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_EXAMPLES",
    "compare_heldout",
    "heldout_elpd",
    "pooled_predictive",
    "read_datatree",
    "run_datatree",
    "to_datatree",
    "write_datatree",
]

DEFAULT_DRAWS, DEFAULT_EXAMPLES = 100, 500
IMPORTANCE_SAMPLES = 64
HELDOUT = "heldout_log_likelihood"
# What an amortised model's tree says to a reader who looks for PSIS-LOO (the root's attribute "loo").
NO_LOO = (
    "PSIS-LOO does not apply: the held-out log p(y|x) in heldout_log_likelihood is already out-of-sample and there "
    "are no posterior draws of global parameters to reweight; compare runs with "
    "infovae.reports.arviz.compare_heldout (or az.compare on heldout_elpd of each tree)"
)


def _arviz():
    try:
        import arviz
    except ImportError:
        raise ImportError("ArviZ data needs ArviZ 1.x: pip install 'infovae[arviz]'") from None
    return arviz


def _discrete_dtype(num_classes):
    return np.int8 if num_classes <= np.iinfo(np.int8).max else np.int64


def to_datatree(
    backend,
    data,
    num_draws=DEFAULT_DRAWS,
    max_examples=DEFAULT_EXAMPLES,
    seed=0,
    indices=None,
    split="test",
    importance_samples=IMPORTANCE_SAMPLES,
):
    """The groups of the module's docstring for the first ``max_examples`` examples of ``data`` (a
    :class:`~infovae.data.Dataset`), ``num_draws`` draws each, from a trained backend.

    :param indices: the rows of ``data`` in the full data set (``splits.indices[split]``), for the
        ``example`` coordinate; default ``0..n-1``.
    :param split: the split's name, stored as the attribute ``split``.
    :param importance_samples: draws of the importance-weighted ``log p(y|x)`` (Gaussian latent).
    """
    az = _arviz()
    rng = np.random.default_rng(seed)
    held = data.subset(slice(0, max_examples))
    x, y, n = held.x, held.y, len(held)
    example = np.arange(n) if indices is None else np.asarray(indices)[:n]
    q, p = backend.posterior(x, y), backend.prior(x)
    discrete = isinstance(q, CategoricalLatent)
    z_q = sample_latents(q, rng, num_draws)  # [S, n(, d)]
    z_p = sample_latents(p, rng, num_draws)
    _, y_pred = backend.generate(x, seed, z=z_p)  # the true predictive
    _, y_rec = backend.generate(x, seed + 1, z=z_q)  # the reconstruction
    if data.likelihood in ("categorical", "bernoulli"):
        dtype = _discrete_dtype(max(data.num_classes, 2))
        y, y_pred, y_rec = (np.asarray(a).astype(dtype) for a in (y, y_pred, y_rec))
    log_pred = log_marginal_likelihood(backend, x, held.y, q, p, importance_samples, rng)  # [n]

    if discrete:
        K = q.probs.shape[-1]
        latent_dim, latent_coords = "z_value", {"z_value": np.arange(K)}
        z_q, z_p = np.eye(K, dtype=np.int8)[z_q], np.eye(K, dtype=np.int8)[z_p]
        params = {"posterior_probs": q.probs, "prior_probs": p.probs}
    else:
        latent_dim, latent_coords = "latent_dim", {"latent_dim": np.arange(q.loc.shape[-1])}
        params = {"posterior_loc": q.loc, "posterior_scale": q.scale, "prior_loc": p.loc, "prior_scale": p.scale}
    coords = {"example": example, "factor": np.arange(y.shape[1]), "x_dim": np.arange(x.shape[1]), **latent_coords}
    y_dims = ["example", "factor"]

    def group(variables, dims, sample_dims=("chain", "draw"), **attrs):
        return az.dict_to_dataset(variables, coords=coords, dims=dims, sample_dims=list(sample_dims), attrs=attrs)

    def aggregate(z, description):
        """Draws ``[S, n, ...]`` of each example's latent as draws of the aggregate, ``s * n + i`` from example ``i``."""
        draws = group({"z": z.reshape((1, -1) + z.shape[2:])}, {"z": [latent_dim]}, description=description)
        return draws.assign_coords(example=("draw", np.tile(example, num_draws)))

    constant = {"x": x}
    if held.labels is not None:
        constant["label"] = held.labels
    method = "exact" if discrete else "importance_weighted"
    groups = {
        "posterior": aggregate(z_q, "the aggregate posterior: z ~ q(z|x_i,y_i) for each held-out example i, interleaved"),
        "prior": aggregate(z_p, "the aggregate prior: z ~ p(z|x_i) for each held-out example i, interleaved"),
        "posterior_predictive": group(
            {"y": y_pred[None]}, {"y": y_dims}, description="predictive: z ~ p(z|x), then y ~ p(y|x,z)"
        ),
        "reconstruction": group(
            {"y": y_rec[None]},
            {"y": y_dims},
            description="reconstruction check (not predictive): z ~ q(z|x,y), which has seen y, then y ~ p(y|x,z)",
        ),
        "observed_data": group({"y": y}, {"y": y_dims}, sample_dims=()),
        "constant_data": group(constant, {"x": ["example", "x_dim"], "label": ["example"]}, sample_dims=()),
        HELDOUT: group(
            {"y": log_pred},
            {"y": ["example"]},
            sample_dims=(),
            description="held-out log predictive density log p(y_i|x_i), z summed out",
            method=method,
            importance_samples=0 if discrete else int(importance_samples),
        ),
        "latent_parameters": group(
            params,
            {name: ["example", latent_dim] for name in params},
            sample_dims=(),
            description="the exact q(z|x,y) and p(z|x) the draws come from",
        ),
    }
    import xarray

    tree = xarray.DataTree.from_dict(groups)
    tree.attrs.update(
        backend=backend.name,
        data=data.name,
        likelihood=data.likelihood,
        latent="discrete" if discrete else "gaussian",
        split=split,
        draws=int(num_draws),
        examples=int(n),
        example_coordinate=f"row index into the full data set ({split} split; splits.npz)"
        if indices is not None
        else "position in the data given",
        loo=NO_LOO,
    )
    return tree


def run_datatree(run, num_draws=DEFAULT_DRAWS, max_examples=DEFAULT_EXAMPLES, seed=0, split="test"):
    """:func:`to_datatree` for a finished run (see :func:`infovae.open_run`) on one of its splits."""
    return to_datatree(
        run.backend,
        getattr(run.splits, split),
        num_draws=num_draws,
        max_examples=max_examples,
        seed=seed,
        indices=run.splits.indices[split],
        split=split,
        importance_samples=run.config.train.importance_samples,
    )


def pooled_predictive(tree, group="posterior_predictive"):
    """``group``'s ``y`` and the observed ``y`` with examples and factors pooled into one
    ``observation`` dim (what ArviZ's PPC plots do on their own; kept for plots of one flat variable)."""
    az = _arviz()
    predicted = tree[group]["y"].values
    observed = tree["observed_data"]["y"].values
    return az.from_dict(
        {
            "posterior_predictive": {"y": predicted.reshape(predicted.shape[:2] + (-1,))},
            "observed_data": {"y": observed.reshape(-1)},
        },
        dims={"y": ["observation"]},
    )


@cache
def _heldout_class():
    from dataclasses import dataclass
    from typing import ClassVar

    from arviz_stats.utils import ELPDData

    @dataclass(kw_only=True, repr=False)
    class ELPDDataHeldOut(ELPDData):
        """ELPD of held-out examples: the sum of their pointwise log predictive densities (no
        cross-validation: the examples were not used to fit the model). ``p`` is NaN: there is no
        optimism to estimate."""

        _kind: ClassVar[str] = "heldout"
        split: str = "test"
        method: str = "exact"

        def _header(self):
            how = "exactly" if self.method == "exact" else f"by importance sampling ({self.n_samples} draws)"
            return f"Computed from {self.n_data_points} held-out examples ({self.split} split), log p(y|x) {how}."

    return ELPDDataHeldOut


def _heldout(tree):
    """The tree's held-out log-density group (``log_likelihood`` in files of infovae 0.2)."""
    return tree[HELDOUT] if HELDOUT in tree.children else tree["log_likelihood"]


def heldout_elpd(tree, examples=None):
    """The held-out ELPD of ``tree`` (from :func:`to_datatree`) as an ArviZ ``ELPDData`` that
    ``az.compare`` and ``az.plot_compare`` accept: ``elpd = sum_i log p(y_i|x_i)`` over the held-out
    examples (or those of ``examples``, row indices), ``se = sqrt(n var_i log p(y_i|x_i))``, pointwise
    values in ``elpd_i``."""
    ll = _heldout(tree)["y"]
    if examples is not None:
        ll = ll.sel(example=np.asarray(examples))
    values = ll.values.astype(float)
    n = values.size
    attrs = _heldout(tree).attrs
    return _heldout_class()(
        elpd=float(values.sum()),
        se=float(np.sqrt(n * values.var())) if n > 1 else float("nan"),
        p=float("nan"),
        n_samples=int(attrs.get("importance_samples", 0)) or 1,
        n_data_points=int(n),
        scale="log",
        warning=False,
        good_k=None,
        elpd_i=ll.astype(float),
        split=str(tree.attrs.get("split", "test")),
        method=str(attrs.get("method", "exact")),
    )


def compare_heldout(trees, method="stacking", reference=None):
    """``az.compare`` of several runs (or sweep trials) on held-out predictive density.

    :param trees: ``{name: tree}`` (trees from :func:`to_datatree`, or paths of ``inference.nc`` files),
        all on the same data set and split.
    :returns: ArviZ's comparison table, computed on the examples every tree holds (pointwise
        differences need the same examples). A Gaussian latent's ``log p(y|x)`` is importance-weighted,
        a lower bound in expectation: against an exact (discrete) one the comparison is conservative
        for the Gaussian run.
    """
    az = _arviz()
    trees = {name: read_datatree(t) if not hasattr(t, "children") else t for name, t in trees.items()}
    if len(trees) < 2:
        raise ValueError("compare_heldout needs at least two trees")
    described = {(t.attrs.get("data"), t.attrs.get("split")) for t in trees.values()}
    if len(described) > 1:
        raise ValueError(f"the trees hold different data or splits: {sorted(map(str, described))}")
    shared = None
    for t in trees.values():
        ids = set(np.asarray(_heldout(t)["example"].values).tolist())
        shared = ids if shared is None else shared & ids
    if not shared:
        raise ValueError("the trees share no held-out example")
    shared = np.array(sorted(shared))
    return az.compare({name: heldout_elpd(t, shared) for name, t in trees.items()}, method=method, reference=reference)


def write_datatree(tree, path):
    """Save as netCDF (h5netcdf engine)."""
    tree.to_netcdf(path, engine="h5netcdf")


def read_datatree(path):
    import xarray

    return xarray.open_datatree(path, engine="h5netcdf").load()
