r"""The networks' initial weights, drawn with NumPy from a run's seed, the same for both backends.

Each layer's weight ``W`` (torch's layout: ``[out, in]`` for a dense layer, ``[out, in, kh, kw]``
for a 2-d convolution) and bias ``b`` are drawn as torch's ``nn.Linear`` and ``nn.Conv2d`` draw them
by default (Kaiming-uniform with :math:`a = \sqrt 5`):

.. math::

    W_{ij\ldots},\ b_i \sim \mathrm{Uniform}\bigl(-1/\sqrt{n_\text{in}},\ 1/\sqrt{n_\text{in}}\bigr),
    \qquad n_\text{in} = \texttt{shape[1]} \cdot \prod \texttt{shape[2:]},

the fan-in being the inputs that reach one output: ``in`` for a dense layer, ``in * kh * kw`` for a
convolution's kernel. A layer with no inputs (an unconditional model's condition) has an empty
weight and a zero bias. The values are drawn in float64, in the order the layers are listed, from one
:class:`numpy.random.Generator`; each backend casts them to its own dtype. The Pyro backend loads
them into its torch modules, the NumPyro backend transposes them into its flax trees
(:mod:`infovae.numpyro.weights`), so that a seed gives both backends the same starting point and the
NumPyro backend never imports torch.

:func:`cvae_layers` lists the CVAE's layers in torch's names (the names both backends' networks
carry); :func:`cvae_initial_weights` draws them.
"""

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from infovae.core.architecture import CVAEConfig
from infovae.core.cvae import initial_raw_decoder_scale

__all__ = ["Layer", "cvae_initial_weights", "cvae_layers", "fan_in", "initial_weights"]


class Layer(NamedTuple):
    """One layer: its name (``"decoder_rest.3"``; the weights are ``name + ".weight"`` and
    ``name + ".bias"``), its weight's shape in torch's layout ``[out, in, *kernel]``, and whether it
    has a bias (of shape ``[out]``)."""

    name: str
    weight_shape: tuple[int, ...]
    bias: bool = True


def fan_in(weight_shape: Sequence[int]) -> int:
    """The inputs that reach one output of a layer with a weight of ``weight_shape`` (torch's layout):
    ``in`` for ``[out, in]``, ``in * kh * kw`` for a convolution's ``[out, in, kh, kw]``."""
    if len(weight_shape) < 2:
        raise ValueError(f"a layer's weight has at least two dims [out, in, ...], got shape {tuple(weight_shape)}")
    return math.prod(weight_shape[1:])


def initial_weights(layers: Sequence[Layer], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A state dict (name -> float64 array, torch's layout) of the ``layers``, drawn from ``rng`` in
    their order: each layer's weight, then its bias."""
    state = {}
    for layer in layers:
        n = fan_in(layer.weight_shape)
        bound = 1.0 / math.sqrt(n) if n > 0 else 0.0
        state[layer.name + ".weight"] = rng.uniform(-bound, bound, layer.weight_shape)
        if layer.bias:
            state[layer.name + ".bias"] = rng.uniform(-bound, bound, layer.weight_shape[:1])
    return state


def _mlp(name: str, inputs: int, hidden: int, outputs: int) -> list[Layer]:
    # The layers of models.layers.mlp: Linear, ReLU, Linear, ReLU, Linear (the ReLUs are numbered too).
    return [Layer(f"{name}.0", (hidden, inputs)), Layer(f"{name}.2", (hidden, hidden)), Layer(f"{name}.4", (outputs, hidden))]


def cvae_layers(config: CVAEConfig) -> tuple[list[Layer], list[Layer]]:
    """The layers of the CVAE's model (``p(z|x)``'s network when learned, the decoder) and of its
    guide (the encoder), as :class:`~infovae.models.CVAEModel` and :class:`~infovae.guides.CVAEGuide`
    name them."""
    c, h = config, config.hidden
    model = _mlp("prior_net", c.x_dim, h, c.latent_param_dim) if c.prior == "learned" else []
    model += [
        Layer("decoder_x", (h, c.x_dim)),
        Layer("decoder_z", (h, c.latent_size), bias=False),
        Layer("decoder_rest.1", (h, h)),
        Layer("decoder_rest.3", (c.decoder_output_dim, h)),
    ]
    return model, _mlp("encoder", c.x_dim + c.y_input_dim, h, c.latent_param_dim)


def cvae_initial_weights(config: CVAEConfig, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The initial state dicts ``(model, guide)`` of the CVAE for ``seed`` (float64, torch's layout):
    every layer drawn by :func:`initial_weights`, the model's then the guide's from one generator, and
    a learned decoder scale at :func:`~infovae.core.cvae.initial_raw_decoder_scale`."""
    rng = np.random.default_rng(seed)
    model_layers, guide_layers = cvae_layers(config)
    model = initial_weights(model_layers, rng)
    if config.learned_scale:
        model["decoder_scale"] = np.full(config.y_dim, initial_raw_decoder_scale(config))
    return model, initial_weights(guide_layers, rng)
