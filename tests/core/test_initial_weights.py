"""The initial weights drawn with NumPy: torch's default distribution, the networks' layout, and the
same starting point for both backends."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from infovae.core.architecture import CVAEConfig
from infovae.core.cvae import initial_raw_decoder_scale
from infovae.core.initial_weights import Layer, cvae_initial_weights, cvae_layers, fan_in, initial_weights
from infovae.data.registry import load_splits
from infovae.guides import CVAEGuide
from infovae.models import CVAEModel
from infovae.training.config import parse_config
from infovae.training.loop import build_backend

CONFIGS = [
    CVAEConfig(x_dim=3, y_dim=4, num_classes=5, latent="discrete", latent_size=6, hidden=7),
    CVAEConfig(x_dim=3, y_dim=4, latent="gaussian", latent_size=2, prior="learned", likelihood="gaussian", hidden=7),
    CVAEConfig(x_dim=0, y_dim=4, latent="gaussian", latent_size=2, likelihood="gaussian", decoder_scale="amortized", hidden=7),
    CVAEConfig(x_dim=2, y_dim=9, latent="discrete", latent_size=3, prior="learned", likelihood="bernoulli", hidden=5),
]


@pytest.mark.parametrize("shape", [(5, 3), (4, 0), (8, 3, 5, 5), (2, 6, 3)])
def test_fan_in_is_torchs(shape):
    """Inputs per output as torch counts them: ``in`` for a dense weight, ``in * kh * kw`` for a kernel."""
    expected, _ = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert fan_in(shape) == expected


def test_draws_are_uniform_within_torchs_bound():
    layers = [Layer("dense", (300, 40)), Layer("conv", (50, 4, 3, 3)), Layer("head", (7, 40), bias=False)]
    state = initial_weights(layers, np.random.default_rng(0))
    assert set(state) == {"dense.weight", "dense.bias", "conv.weight", "conv.bias", "head.weight"}
    for layer in layers:
        bound = 1 / math.sqrt(fan_in(layer.weight_shape))
        weight = state[layer.name + ".weight"]
        assert weight.shape == layer.weight_shape and weight.dtype == np.float64
        assert np.abs(weight).max() <= bound
        # Uniform on [-bound, bound]: a Kolmogorov-Smirnov test that a wrong bound or family fails.
        assert stats.kstest(weight.ravel(), stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    assert np.abs(state["dense.bias"]).max() <= 1 / math.sqrt(40) and state["dense.bias"].shape == (300,)
    # torch's own default draw of the same layer has the same spread (its variance is bound**2 / 3).
    torch_weight = torch.nn.Linear(40, 300).weight.detach().numpy().ravel()
    assert stats.ks_2samp(state["dense.weight"].ravel(), torch_weight).pvalue > 1e-3


def test_a_layer_without_inputs_has_an_empty_weight_and_a_zero_bias():
    state = initial_weights([Layer("x", (4, 0))], np.random.default_rng(0))
    assert state["x.weight"].shape == (4, 0) and np.array_equal(state["x.bias"], np.zeros(4))


def test_the_seed_fixes_the_weights():
    config = CONFIGS[1]
    first, again, other = cvae_initial_weights(config, 3), cvae_initial_weights(config, 3), cvae_initial_weights(config, 4)
    for part in range(2):
        for name, value in first[part].items():
            np.testing.assert_array_equal(value, again[part][name])
            if name.endswith("weight"):
                assert not np.array_equal(value, other[part][name]), name


@pytest.mark.parametrize("config", CONFIGS)
def test_the_layout_is_the_torch_modules(config):
    model, guide = cvae_initial_weights(config, 0)
    for module, state in ((CVAEModel(config), model), (CVAEGuide(config), guide)):
        expected = {name: tuple(value.shape) for name, value in module.state_dict().items()}
        assert {name: value.shape for name, value in state.items()} == expected
    if config.learned_scale:
        assert np.all(model["decoder_scale"] == initial_raw_decoder_scale(config))
    assert [layer.name for layer in cvae_layers(config)[1]] == ["encoder.0", "encoder.2", "encoder.4"]


@pytest.mark.parametrize("config", CONFIGS)
def test_the_layout_is_the_flax_networks(config):
    jax = pytest.importorskip("jax")
    from infovae.numpyro.guides.cvae import EncoderNetworks
    from infovae.numpyro.models.cvae import GenerativeNetworks
    from infovae.numpyro.weights import state_dicts_to_numpyro

    x = jax.numpy.zeros((1, config.x_dim))
    z = jax.numpy.zeros((1,), int) if config.latent == "discrete" else jax.numpy.zeros((1, config.latent_size))
    key = jax.random.PRNGKey(0)
    expected = [
        jax.eval_shape(GenerativeNetworks(config).init, key, x, z)["params"],
        jax.eval_shape(EncoderNetworks(config).init, key, jax.numpy.zeros((1, config.x_dim + config.y_input_dim)))["params"],
    ]
    params = state_dicts_to_numpyro(*cvae_initial_weights(config, 0))
    for tree, shapes in zip(params.values(), expected):
        assert jax.tree.map(lambda a: a.shape, tree) == jax.tree.map(lambda a: a.shape, shapes)


def test_both_backends_start_from_the_same_weights():
    pytest.importorskip("numpyro")
    from infovae.numpyro.weights import numpyro_to_state_dicts

    raw = {
        "data": {"kind": "strategies", "num_examples": 120, "horizon": 4, "num_strategies": 3},
        "model": {"latent": "gaussian", "latent_size": 2, "prior": "learned", "hidden": 16},
        "train": {"steps": 10, "batch_size": 16, "seed": 7},
    }
    backends = {}
    for backend in ("pyro", "numpyro"):
        config = parse_config({**raw, "backend": backend})
        backends[backend] = build_backend([config], load_splits(config.data, config.likelihood))
    pyro_backend = backends["pyro"]
    numpyro_states = numpyro_to_state_dicts(backends["numpyro"]._trial_params)
    for module, state in zip((pyro_backend.model, pyro_backend.guide), numpyro_states):
        torch_state = module.state_dict()
        assert set(state) == set(torch_state)
        for name, value in state.items():
            np.testing.assert_array_equal(value, torch_state[name].numpy(), err_msg=name)
