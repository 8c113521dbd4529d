"""The NumPyro twin of ``tests/objectives/test_user_pair_errors.py``: an autoguide's auxiliary site is
refused as such (NumPyro's AutoNormal, which samples the latent itself, is Trace_ELBO at beta=1), and a
global latent's undeclared batch dims and a guessed plate nesting kept from another pair raise the Pyro
side's messages."""

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDiagonalNormal, AutoNormal
from numpyro.optim import Adam

from infovae import objectives as pt
from infovae.numpyro import objectives as jx

N, D = 6, 2
KEY = jax.random.PRNGKey(0)
Y = jax.random.normal(jax.random.PRNGKey(1), (N, 3))


def model(y, dim=-1, global_dims=False):
    if global_dims:
        numpyro.sample("w", dist.Normal(jnp.zeros((3, 2)), 1.0))  # no .to_event(2)
    with numpyro.plate("data", N, dim=dim):
        z = numpyro.sample("z", dist.Normal(jnp.zeros(D), 1.0).to_event(1))
        loc = jnp.broadcast_to(z.sum(-1, keepdims=True), z.shape[:-1] + (3,))
        numpyro.sample("y", dist.Normal(loc, 1.0).to_event(1), obs=y.reshape(loc.shape))


def guide(y, dim=-1, global_dims=False):
    if global_dims:
        numpyro.sample("w", dist.Normal(jnp.zeros((3, 2)), 1.0))
    shape = (N, D) if dim == -1 else (N,) + (1,) * (-dim - 1) + (D,)
    with numpyro.plate("data", N, dim=dim):
        numpyro.sample("z", dist.Normal(jnp.zeros(shape), 1.0).to_event(1))


def torch_pair():
    def torch_model(y, dim=-1, global_dims=False):
        if global_dims:
            pyro.sample("w", pdist.Normal(torch.zeros(3, 2), 1.0))
        with pyro.plate("data", N, dim=dim):
            z = pyro.sample("z", pdist.Normal(torch.zeros(D), 1.0).to_event(1))
            loc = z.sum(-1, keepdim=True).expand(z.shape[:-1] + (3,))
            pyro.sample("y", pdist.Normal(loc, 1.0).to_event(1), obs=y.reshape(loc.shape))

    def torch_guide(y, dim=-1, global_dims=False):
        if global_dims:
            pyro.sample("w", pdist.Normal(torch.zeros(3, 2), 1.0))
        shape = (N, D) if dim == -1 else (N,) + (1,) * (-dim - 1) + (D,)
        with pyro.plate("data", N, dim=dim):
            pyro.sample("z", pdist.Normal(torch.zeros(shape), 1.0).to_event(1))

    return torch_model, torch_guide


def test_an_autoguide_with_an_auxiliary_site_is_refused_as_such():
    auto = AutoDiagonalNormal(model)
    svi = SVI(model, auto, Adam(0.01), jx.InfoVAE_ELBO())
    params = svi.get_params(svi.init(KEY, Y))  # init runs no loss
    with pytest.raises(jx.UnsupportedModelError) as error:
        jx.InfoVAE_ELBO().loss(KEY, params, model, auto, Y)
    message = str(error.value)
    assert "auxiliary site(s) ['_auto_latent']" in message and "is_auxiliary" in message
    assert "samples the model's latent sites themselves" in message


def test_numpyros_autonormal_samples_the_latent_itself_and_is_trace_elbo_at_beta_one():
    auto = AutoNormal(model)
    svi = SVI(model, auto, Adam(0.01), jx.InfoVAE_ELBO())
    params = svi.get_params(svi.init(KEY, Y))
    ours = jx.InfoVAE_ELBO().loss(KEY, params, model, auto, Y)
    assert float(ours) == pytest.approx(float(Trace_ELBO().loss(KEY, params, model, auto, Y)), rel=1e-12)


def pyro_error(*args, **kwargs):
    torch_model, torch_guide = torch_pair()
    elbo = pt.InfoVAE_ELBO()
    with pytest.raises(pt.UnsupportedModelError) as error:
        for call in args:
            elbo.loss(torch_model, torch_guide, torch.as_tensor(Y.tolist()), **call)
    return str(error.value)


def numpyro_error(*args):
    elbo = jx.InfoVAE_ELBO()
    with pytest.raises(jx.UnsupportedModelError) as error:
        for call in args:
            elbo.loss(KEY, {}, model, guide, Y, **call)
    return str(error.value)


@pytest.mark.parametrize(
    "calls, fragment",
    [
        (({"global_dims": True},), "global latent site 'w' gives log-probabilities of shape (3, 2)"),
        (({}, {"dim": -2}), "it was guessed from the first model/guide pair this InfoVAE_ELBO ran"),
    ],
    ids=["global-dims", "reused-instance"],
)
def test_the_pyro_message(calls, fragment):
    message = numpyro_error(*calls)
    assert message == pyro_error(*calls)
    assert fragment in message
