"""The NumPyro twin of ``tests/objectives/test_factor_sites.py`` and of the Pyro side's refusals of a
global latent's undeclared batch dims within the plate nesting and of plates of different sizes: a
``numpyro.factor`` site is the term ``factor``, with TraceEnum_ELBO's loss and the Pyro twin's terms, and
the refusals say what the Pyro side says."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from numpyro.infer import TraceEnum_ELBO

from infovae import objectives as pt
from infovae.numpyro import objectives as jx

N, B, K = 20, 5, 3
KEY = jax.random.PRNGKey(0)
Y = np.random.default_rng(0).normal(size=(B, 3))


def model(y):
    with numpyro.plate("data", N, subsample_size=B):
        z = numpyro.sample("z", dist.Categorical(logits=jnp.zeros(K)))
        loc = jnp.broadcast_to(z[..., None].astype(y.dtype), z.shape + (3,))
        numpyro.sample("y", dist.Normal(loc, 1.0).to_event(1), obs=y)
        numpyro.factor("f", -0.3 * z.astype(y.dtype) ** 2)


def guide(y):
    with numpyro.plate("data", N, subsample_size=B):
        numpyro.sample("z", dist.Categorical(logits=y[:, :K]), infer={"enumerate": "parallel"})


def torch_model(y):
    with pyro.plate("data", N, subsample=torch.arange(B)):
        z = pyro.sample("z", pdist.Categorical(logits=torch.zeros(K)))
        pyro.sample("y", pdist.Normal(z.to(y.dtype).unsqueeze(-1).expand(z.shape + (3,)), 1.0).to_event(1), obs=y)
        pyro.factor("f", -0.3 * z.to(y.dtype) ** 2)


def torch_guide(y):
    with pyro.plate("data", N, subsample=torch.arange(B)):
        pyro.sample("z", pdist.Categorical(logits=y[:, :K]))


def test_a_factor_is_its_own_term_with_trace_enum_elbos_loss_and_the_pyro_twins_terms():
    y = jnp.asarray(Y)
    ours = jx.InfoVAE_ELBO().loss_terms(KEY, {}, model, guide, y)
    expected = TraceEnum_ELBO(max_plate_nesting=1).loss(KEY, {}, model, guide, y)
    np.testing.assert_allclose(float(ours["loss"]), float(expected), rtol=1e-12)
    theirs = pt.InfoVAE_ELBO().loss_terms(torch_model, torch_guide, torch.as_tensor(Y))
    assert set(theirs) == set(ours)
    for name, value in theirs.items():
        if name == "jsd":  # a Normal decoder's JSD is a Monte-Carlo estimate, from each backend's own draws
            continue
        np.testing.assert_allclose(float(ours[name]), value, rtol=1e-10, atol=1e-12, err_msg=name)
    jitted = jax.jit(lambda y: jx.InfoVAE_ELBO(beta=0.5).loss(KEY, {}, model, guide, y))(y)
    half = jx.InfoVAE_ELBO(beta=0.5).loss_terms(KEY, {}, model, guide, y)
    np.testing.assert_allclose(float(jitted), float(-N * (half["recon"] + half["factor"] - 0.5 * half["kl"])), rtol=1e-12)


def global_pair(shape, size_model=N, size_guide=N):
    def numpyro_model(y):
        numpyro.sample("w", dist.Normal(jnp.zeros(shape), 1.0))  # no .to_event()
        with numpyro.plate("data", size_model, subsample_size=B):
            z = numpyro.sample("z", dist.Normal(jnp.zeros((B, 2)), 1.0).to_event(1))
            numpyro.sample("y", dist.Normal(jnp.broadcast_to(z.sum(-1, keepdims=True), (B, 3)), 1.0).to_event(1), obs=y)

    def numpyro_guide(y):
        numpyro.sample("w", dist.Normal(jnp.zeros(shape) + 0.2, 1.0))
        with numpyro.plate("data", size_guide, subsample_size=B):
            numpyro.sample("z", dist.Normal(jnp.zeros((B, 2)) + 0.1, 1.0).to_event(1))

    def pyro_model(y):
        pyro.sample("w", pdist.Normal(torch.zeros(shape), 1.0))
        with pyro.plate("data", size_model, subsample=torch.arange(B)):
            z = pyro.sample("z", pdist.Normal(torch.zeros(B, 2), 1.0).to_event(1))
            pyro.sample("y", pdist.Normal(z.sum(-1, keepdim=True).expand(B, 3), 1.0).to_event(1), obs=y)

    def pyro_guide(y):
        pyro.sample("w", pdist.Normal(torch.zeros(shape) + 0.2, 1.0))
        with pyro.plate("data", size_guide, subsample=torch.arange(B)):
            pyro.sample("z", pdist.Normal(torch.zeros(B, 2) + 0.1, 1.0).to_event(1))

    return (numpyro_model, numpyro_guide), (pyro_model, pyro_guide)


@pytest.mark.parametrize(
    "pair, fragment",
    [
        (global_pair((2,)), "global latent site 'w' gives log-probabilities of shape (2,), but a site outside every plate"),
        (global_pair((), 50, 100), "plate 'data' has size 50 (subsample size 5) at model site 'z' but size 100"),
    ],
    ids=["global-dims-within-nesting", "plate-sizes"],
)
def test_the_pyro_message(pair, fragment):
    (numpyro_model, numpyro_guide), (pyro_model, pyro_guide) = pair
    with pytest.raises(jx.UnsupportedModelError) as error:
        jx.InfoVAE_ELBO().loss(KEY, {}, numpyro_model, numpyro_guide, jnp.asarray(Y))
    with pytest.raises(pt.UnsupportedModelError) as pyro_error:
        pt.InfoVAE_ELBO().loss(pyro_model, pyro_guide, torch.as_tensor(Y, dtype=torch.float32))
    assert str(error.value) == str(pyro_error.value)
    assert fragment in str(error.value)


def test_without_validation_a_global_latents_dims_are_summed():
    (numpyro_model, numpyro_guide), _ = global_pair((2,))
    with numpyro.validation_enabled(False):
        ours = jx.InfoVAE_ELBO().loss(KEY, {}, numpyro_model, numpyro_guide, jnp.asarray(Y))
        expected = numpyro.infer.Trace_ELBO().loss(KEY, {}, numpyro_model, numpyro_guide, jnp.asarray(Y))
    np.testing.assert_allclose(float(ours), float(expected), rtol=1e-5)
