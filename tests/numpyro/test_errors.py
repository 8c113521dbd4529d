"""Bad input to the NumPyro InfoVAE_ELBO raises the Pyro side's errors, naming the argument or site."""

from contextlib import nullcontext

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
import pytest

from infovae import objectives as pt
from infovae.numpyro import objectives as jx

from .twins import make_twins

KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(beta=-1.0),
        dict(beta=float("nan")),
        dict(beta="1"),
        dict(beta=True),
        dict(marginal="kl", marginal_weight=-0.1),
        dict(marginal="kl", marginal_weight=float("inf")),
        dict(jsd_weight=-2.0),
        dict(marginal="wasserstein"),
        dict(marginal_weight=1.0),
        dict(kernel="gaussian"),
        dict(kernel_scales=(0.0, 1.0)),
        dict(bandwidth=-1.0),
        dict(jsd_mixture="data"),
        dict(num_particles=0),
        dict(max_plate_nesting=0),
        dict(jsd_samples=1),
        dict(latent_site=""),
        dict(latent_site="y", obs_site="y"),
        dict(mmd_features=0),
    ],
    ids=str,
)
def test_invalid_arguments_raise_the_pyro_error(kwargs):
    with pytest.raises(ValueError) as torch_error:
        pt.InfoVAE_ELBO(**kwargs)
    with pytest.raises(ValueError) as jax_error:
        jx.InfoVAE_ELBO(**kwargs)
    assert str(jax_error.value) == str(torch_error.value)
    for name in ("beta", "marginal", "kernel", "bandwidth", "jsd_mixture", "num_particles", "latent_site"):
        if name in kwargs:
            assert name in str(jax_error.value)


def test_from_alpha_lambda_is_the_pyro_one():
    ours, theirs = (
        pt.InfoVAE_ELBO.from_alpha_lambda(0.25, 3.0, marginal="kl"),
        jx.InfoVAE_ELBO.from_alpha_lambda(0.25, 3.0, marginal="kl"),
    )
    assert (theirs.beta, theirs.marginal_weight) == (ours.beta, ours.marginal_weight) == (0.75, 2.25)
    with pytest.raises(ValueError, match="alpha=2 gives beta = 1 - alpha < 0"):
        jx.InfoVAE_ELBO.from_alpha_lambda(2, 0)


@pytest.mark.parametrize(
    "latent, kwargs",
    [
        ("discrete", dict(marginal="mmd", marginal_weight=1.0)),
        ("discrete", dict(marginal="moment", marginal_weight=1.0)),
        ("gaussian", dict(marginal="kl", marginal_weight=1.0)),
        ("gaussian", dict(jsd_weight=1.0, jsd_mixture="uniform")),
    ],
)
def test_a_divergence_that_does_not_fit_the_latent_raises_the_pyro_error(latent, kwargs):
    twins = make_twins(latent, "categorical", "fixed")
    with pytest.raises(ValueError) as torch_error:
        pt.InfoVAE_ELBO(**kwargs).loss(twins.torch_model, twins.torch_guide, *twins.torch_data)
    with pytest.raises(ValueError) as jax_error:
        jx.InfoVAE_ELBO(**kwargs).loss(KEY, twins.params, twins.model, twins.guide, *twins.jax_data)
    assert str(jax_error.value) == str(torch_error.value)
    assert "site 'z'" in str(jax_error.value)


def test_a_misnamed_site_raises_the_pyro_error():
    twins = make_twins("discrete", "categorical", "fixed")
    for kwargs in (dict(latent_site="w"), dict(obs_site="obs")):
        with pytest.raises(pt.UnsupportedModelError) as torch_error:
            pt.InfoVAE_ELBO(**kwargs).loss(twins.torch_model, twins.torch_guide, *twins.torch_data)
        with pytest.raises(jx.UnsupportedModelError) as jax_error:
            jx.InfoVAE_ELBO(**kwargs).loss(KEY, twins.params, twins.model, twins.guide, *twins.jax_data)
        assert str(jax_error.value) == str(torch_error.value)


# -- model/guide pairs written here, with the shapes InfoVAE_ELBO refuses ---------------------------


def _model(second_latent=False, observed_z=False, extra_obs=False, in_plate=True):
    def model(x, y):
        with numpyro.plate("data", len(x)) if in_plate else nullcontext():
            obs_z = jnp.zeros(len(x), jnp.int32) if observed_z else None
            z = numpyro.sample("z", dist.Categorical(logits=jnp.zeros((len(x), 2))), obs=obs_z)
            if second_latent:
                numpyro.sample("w", dist.Normal(0.0, 1.0).expand([len(x)]))
            logits = jnp.broadcast_to(jnp.stack([z, -z], -1)[..., None, :], z.shape + (3, 2)).astype(float)
            numpyro.sample("y", dist.Categorical(logits=logits).to_event(1), obs=y)
            if extra_obs:
                numpyro.sample("x_obs", dist.Normal(0.0, 1.0).expand([len(x)]), obs=x[:, 0])

    return model


def _guide(second_latent=False, latent=None, in_plate=True, name="z"):
    def guide(x, y):
        with numpyro.plate("data", len(x)) if in_plate else nullcontext():
            numpyro.sample(name, latent(len(x)) if latent else dist.Categorical(logits=jnp.zeros((len(x), 2))))
            if second_latent:
                numpyro.sample("w", dist.Normal(0.0, 1.0).expand([len(x)]))

    return guide


class _NoRsampleNormal(dist.Normal):
    reparametrized_params = []


@pytest.mark.parametrize(
    "model, guide, match",
    [
        (_model(), _guide(second_latent=True), "latent site 'w' has distribution Normal with event_dim 0"),
        (
            _model(second_latent=True),
            _guide(),
            "the model has sample site\\(s\\) \\['w'\\] besides .*sample \\['w'\\] in the guide",
        ),
        (_model(observed_z=True), _guide(), "site 'z' is observed in the model but the guide samples it as a latent"),
        (_model(), _guide(name="u"), "the guide samples site 'u', which the model does not"),
        (_model(), _guide(in_plate=False), "site 'z' must be inside exactly one vectorised data plate"),
        (
            _model(),
            _guide(latent=lambda n: _NoRsampleNormal(jnp.zeros((n, 2)), 1.0).to_event(1)),
            "latent site 'z' has distribution _NoRsampleNormal .* has_rsample=False",
        ),
        (_model(), _guide(latent=lambda n: dist.Poisson(jnp.ones(n))), "latent site 'z' has distribution Poisson"),
    ],
)
def test_unsupported_model_shapes_name_the_site(model, guide, match):
    x, y = jnp.zeros((5, 1)), jnp.zeros((5, 3), jnp.int32)
    with pytest.raises(jx.UnsupportedModelError, match=match):
        jx.InfoVAE_ELBO().loss(KEY, {}, model, guide, x, y)


def test_batch_dims_beyond_the_data_plate_are_refused():
    def model(x, y):
        with numpyro.plate("data", len(x)):
            z = numpyro.sample("z", dist.Normal(jnp.zeros((len(x), 2)), 1.0).to_event(1))
            # y's factors left as batch dims (no .to_event) on the left of the plate.
            numpyro.sample("y", dist.Normal(jnp.broadcast_to(z.sum(-1), (3, len(x))), 1.0), obs=y.T)

    def guide(x, y):
        with numpyro.plate("data", len(x)):
            numpyro.sample("z", dist.Normal(jnp.zeros((len(x), 2)), 1.0).to_event(1))

    with pytest.raises(jx.UnsupportedModelError, match="site 'y' gives log-probabilities of shape \\(3, 8\\).*to_event"):
        jx.InfoVAE_ELBO().loss(KEY, {}, model, guide, jnp.zeros((8, 2)), jnp.zeros((8, 3)))


def test_an_unobserved_obs_site_is_refused():
    def model(x, y):
        with numpyro.plate("data", len(x)):
            numpyro.sample("z", dist.Categorical(logits=jnp.zeros(2)))
            numpyro.sample("y", dist.Normal(0.0, 1.0))

    with pytest.raises(jx.UnsupportedModelError, match="site 'y' is not observed in the model"):
        jx.InfoVAE_ELBO(obs_site="y").loss(KEY, {}, model, _guide(), jnp.zeros((4, 1)), None)
