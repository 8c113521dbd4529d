"""The conv networks (``network: conv``) in both backends: the same weights under the same names, the
same distributions and loss terms and gradients on them, and images put together as the data's layout
says, in float64."""

import math
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pyro
import pytest
import torch

from infovae import objectives as pt
from infovae.core.architecture import CVAEConfig
from infovae.core.conv import conv_geometry, conv_parameters
from infovae.data.images import ImageLayout
from infovae.errors import UserInputError
from infovae.guides import CVAEGuide as TorchGuide
from infovae.models import CVAEModel as TorchModel
from infovae.numpyro import objectives as jx
from infovae.numpyro.guides import CVAEGuide
from infovae.numpyro.models import CVAEModel
from infovae.numpyro.weights import numpyro_to_torch, torch_to_numpyro

from .test_networks import _distribution_params, _initial_params
from .twins import BATCH, NUM_DATA, Twins, close, make_targets

KEY = jax.random.PRNGKey(0)
# Completion: x the left half of a 6x6 image (the decoder's 8x8 map is cut to 6x6). Generation: y a
# whole 2-channel 5x7 image, x a condition of width 3.
HALF = np.zeros((6, 6), bool)
HALF[:, :3] = True
LAYOUTS = {
    "completion": (ImageLayout.from_mask((1, 6, 6), HALF), 18),
    "generation": (ImageLayout.whole((2, 5, 7)), 3),
}


def conv_config(layout_name, latent="discrete", likelihood="bernoulli", prior="fixed", **options):
    layout, x_dim = LAYOUTS[layout_name]
    return CVAEConfig(
        x_dim=x_dim,
        y_dim=len(layout.y_pixels),
        latent=latent,
        latent_size=3,
        prior=prior,
        likelihood=likelihood,
        hidden=8,
        network="conv",
        image_shape=layout.shape,
        x_pixels=tuple(int(i) for i in layout.x_pixels),
        **options,
    )


def conv_twins(config, seed=0):
    pyro.set_rng_seed(seed)
    torch_model, torch_guide = TorchModel(config), TorchGuide(config)
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(BATCH, config.x_dim))
    y = make_targets(rng, config.likelihood, (BATCH, config.y_dim))
    params = torch_to_numpyro(torch_model, torch_guide)
    return Twins(config, torch_model, torch_guide, CVAEModel(config), CVAEGuide(config), params, x, y)


CASES = [
    ("completion", "discrete", "bernoulli", "fixed", {}),
    ("completion", "gaussian", "gaussian", "learned", {"decoder_scale": "amortized"}),
    ("generation", "discrete", "gaussian", "learned", {}),
    ("generation", "gaussian", "bernoulli", "fixed", {}),
]


@pytest.mark.parametrize("layout, latent, likelihood, prior, options", CASES)
def test_prior_decoder_and_posterior_agree(layout, latent, likelihood, prior, options):
    twins = conv_twins(conv_config(layout, latent, likelihood, prior, **options))
    (tx, ty), (x, y) = twins.torch_data, twins.jax_data
    pairs = [(twins.torch_guide.posterior(tx, ty), twins.guide.posterior(twins.params, x, y))]
    if latent == "discrete":
        z = np.arange(twins.config.latent_size)[:, None]
    else:
        z = np.random.default_rng(1).normal(size=(2, BATCH, twins.config.latent_size))
    torch_decoder = twins.torch_model.decoder(tx, torch.as_tensor(z))
    jax_decoder = twins.model.decoder(twins.params, x, jnp.asarray(z))
    assert tuple(torch_decoder.batch_shape) == jax_decoder.batch_shape == (z.shape[0], BATCH)
    close(torch_decoder.log_prob(ty).detach(), jax_decoder.log_prob(y))
    pairs.append((torch_decoder, jax_decoder))
    for torch_fn, jax_fn in pairs:
        for a, b in zip(_distribution_params(torch_fn), _distribution_params(jax_fn)):
            close(a, b)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_numpyro_creates_the_tree_that_torch_weights_map_to_and_back(layout):
    twins = conv_twins(conv_config(layout, prior="learned"))
    created = _initial_params(twins)
    shapes = lambda tree: jax.tree.map(jnp.shape, tree)  # noqa: E731
    assert shapes(created) == shapes(twins.params)
    numpyro_to_torch(created, twins.torch_model, twins.torch_guide)
    twins.assert_same_weights(created)
    # The size check counts what the modules hold (the prior network aside: the MLP's).
    held = sum(p.numel() for m in (twins.torch_model, twins.torch_guide) for n, p in m.named_parameters() if "prior" not in n)
    assert conv_parameters(twins.config) == held


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_size_check_counts_the_widest_layer_the_networks_make(layout):
    twins = conv_twins(conv_config(layout, prior="learned"))
    widths, ran = [], set()

    def record(module, inputs, output):
        # Values per example (and latent value): a conv layer's C x H x W, a linear layer's width.
        convolves = isinstance(module, torch.nn.modules.conv._ConvNd)
        widths.append(math.prod(output.shape[-3:]) if convolves else output.shape[-1])
        ran.add(module)

    layers = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)
    modules = [m for net in (twins.torch_model, twins.torch_guide) for m in net.modules() if isinstance(m, layers)]
    hooks = [m.register_forward_hook(record) for m in modules]
    tx, ty = twins.torch_data
    twins.torch_guide.posterior(tx, ty)
    twins.torch_model.decoder(tx, torch.arange(twins.config.latent_size)[:, None])
    for hook in hooks:
        hook.remove()
    assert all(m in ran for m in modules if isinstance(m, torch.nn.modules.conv._ConvNd))
    assert max(widths) == twins.config.widest_layer > max(twins.config.hidden, twins.config.decoder_output_dim)


@pytest.mark.parametrize("latent", ["discrete", "gaussian"])
def test_loss_terms_and_gradients_agree(latent):
    twins = conv_twins(conv_config("completion", latent, "bernoulli", "learned"))
    kwargs = dict(beta=0.4, marginal="kl" if latent == "discrete" else "moment", marginal_weight=3.0)
    torch_guide, guide = twins.torch_guide, twins.guide
    if latent == "gaussian":
        from .twins import TorchNoise, jax_noise

        eps = np.random.default_rng(2).normal(size=(BATCH, twins.config.latent_size))
        torch_guide, guide = TorchNoise(torch.as_tensor(eps))(torch_guide), jax_noise(guide, jnp.asarray(eps))
    pyro_terms = pt.InfoVAE_ELBO(**kwargs).loss_terms(twins.torch_model, torch_guide, *twins.torch_data, num_data=NUM_DATA)
    numpyro_terms = jx.InfoVAE_ELBO(**kwargs).loss_terms(
        KEY, twins.params, twins.model, guide, *twins.jax_data, num_data=NUM_DATA
    )
    for name in ("loss", "recon", "kl", "marginal", "mi"):
        close(numpyro_terms[name], pyro_terms[name], err_msg=name)
    pt.InfoVAE_ELBO(**kwargs).loss_and_grads(twins.torch_model, torch_guide, *twins.torch_data, num_data=NUM_DATA)
    elbo = jx.InfoVAE_ELBO(**kwargs)
    grad = jax.grad(lambda p: elbo.loss(KEY, p, twins.model, guide, *twins.jax_data, num_data=NUM_DATA))
    twins.assert_same_grads(grad(twins.params))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_encoder_sees_the_image_the_layout_makes(layout):
    config = conv_config(layout)
    geometry, (image_layout, _) = conv_geometry(config), LAYOUTS[layout]
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, config.x_dim)), rng.normal(size=(2, config.y_dim))
    flat = np.concatenate([x, y], axis=-1) if geometry.completes else y
    np.testing.assert_array_equal(flat[:, geometry.image_order].reshape(2, *config.image_shape), image_layout.to_images(x, y))
    assert geometry.condition_dim == (0 if image_layout.completes else config.x_dim)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"image_shape": None}, "needs images"),
        ({"likelihood": "categorical"}, "bernoulli or gaussian"),
        ({"image_shape": (1, 3, 12), "x_pixels": tuple(range(18)), "y_dim": 18}, "at least 4x4"),
        ({"y_dim": 17}, "does not fit"),
    ],
)
def test_conv_configs_that_cannot_be_built_are_refused(change, message):
    with pytest.raises(UserInputError, match=message):
        replace(conv_config("completion"), **change)
