"""A run's latent and predictions as ArviZ data: an :class:`xarray.DataTree` (ArviZ 1.x).

Groups and dims (``chain`` is 1: the draws come from the amortised posterior, not a sampler):

- ``posterior``: ``z`` (chain, draw, example[, latent_dim]): draws of ``q(z|x,y)`` per held-out example;
- ``posterior_predictive``: ``y`` (chain, draw, example, factor): ``y ~ p(y|x,z)`` at those draws;
- ``log_likelihood``: ``y`` (chain, draw, example, factor): ``log p(y|x,z)`` per factor, the same dims
  as the observed data, so that ArviZ's pointwise functions (``loo``, PPC plots) line up;
- ``observed_data``: ``y`` (example, factor);
- ``constant_data``: ``x`` (example, x_dim) and, where known, ``label`` (example).
"""

import numpy as np

from infovae.diagnostics.metrics import sample_latents

__all__ = ["pooled_predictive", "read_datatree", "to_datatree", "write_datatree"]


def _arviz():
    try:
        import arviz
    except ImportError:
        raise ImportError("ArviZ data needs ArviZ 1.x: pip install 'infovae[arviz]'") from None
    return arviz


def to_datatree(backend, data, num_draws=100, max_examples=500, seed=0):
    """Posterior, posterior-predictive and pointwise log-likelihood draws for up to ``max_examples``
    examples of ``data`` (a :class:`~infovae.data.Dataset`), from a trained backend."""
    az = _arviz()
    rng = np.random.default_rng(seed)
    held = data.subset(slice(0, max_examples))
    x, y = held.x, held.y
    z = sample_latents(backend.posterior(x, y), rng, num_draws)  # [S, n(, d)]
    _, y_rep = backend.generate(x, seed, z=z)
    if data.likelihood == "bernoulli":
        # Binary outcomes as integers, so that ArviZ treats them as discrete.
        y, y_rep = y.astype(np.int64), y_rep.astype(np.int64)
    log_lik = backend.log_likelihood(x, held.y, z, pointwise=True)  # [S, n, F]
    z_dims = ["example"] + (["latent_dim"] if z.ndim == 3 else [])
    constant = {"x": x}
    if held.labels is not None:
        constant["label"] = held.labels
    tree = az.from_dict(
        {
            "posterior": {"z": z[None]},
            "posterior_predictive": {"y": y_rep[None]},
            "log_likelihood": {"y": log_lik[None]},
            "observed_data": {"y": y},
            "constant_data": constant,
        },
        dims={"z": z_dims, "y": ["example", "factor"], "x": ["example", "x_dim"], "label": ["example"]},
        coords={"example": np.arange(len(x))},
    )
    tree.attrs.update(backend=backend.name, data=data.name, likelihood=data.likelihood)
    return tree


def pooled_predictive(tree):
    """The posterior predictive and observed ``y`` with examples and factors pooled into one
    ``observation`` dim, as ArviZ's one-dimensional PPC plots want them."""
    az = _arviz()
    predicted = tree["posterior_predictive"]["y"].values
    observed = tree["observed_data"]["y"].values
    return az.from_dict(
        {
            "posterior_predictive": {"y": predicted.reshape(predicted.shape[:2] + (-1,))},
            "observed_data": {"y": observed.reshape(-1)},
        },
        dims={"y": ["observation"]},
    )


def write_datatree(tree, path):
    """Save as netCDF (h5netcdf engine)."""
    tree.to_netcdf(path, engine="h5netcdf")


def read_datatree(path):
    import xarray

    return xarray.open_datatree(path, engine="h5netcdf").load()
