"""The CVAE's encoder as a NumPyro guide: ``q(z|x,y)``; the twin of :mod:`infovae.guides.cvae`.

The network is one flax module, :class:`EncoderNetworks`, registered as ``"cvae_guide"`` (NumPyro
param ``"cvae_guide$params"``) as the torch guide is with ``pyro.module("cvae_guide", ...)``.
"""

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.module import flax_module

from infovae.core.architecture import CVAEConfig
from infovae.core.conv import conv_geometry
from infovae.core.cvae import GUIDE_NAME, latent_distribution
from infovae.numpyro.models.cvae import data_plate
from infovae.numpyro.models.layers import conv_features, image_convs, mlp, split_loc_scale
from infovae.numpyro.weights import GUIDE_PARAMS

__all__ = ["NAME", "PARAMS", "CVAEGuide", "EncoderNetworks", "encode_targets"]

# The name the guide's networks are registered under, as the torch guide's with pyro.module, and the
# NumPyro param that flax_module makes of it to hold their weights.
NAME = GUIDE_NAME
PARAMS = GUIDE_PARAMS


def encode_targets(y, config: CVAEConfig):
    """``y`` as the encoder sees it: one-hot and flattened for categorical factors, as it is otherwise."""
    if config.likelihood == "categorical":
        return jax.nn.one_hot(y, config.num_classes).reshape(y.shape[:-1] + (-1,))
    return y


class EncoderNetworks(nn.Module):
    """The network of ``q(z|x,y)``, named as the torch :class:`~infovae.guides.CVAEGuide`'s submodules
    ``encoder`` (and ``encoder_conv`` for images): logits, or loc and raw scale, ``[..., latent_param_dim]``
    from ``[x, encoded y]``."""

    config: CVAEConfig

    def setup(self):
        if self.config.network == "conv":
            self.encoder_conv = image_convs()
        self.encoder = mlp(self.config.hidden, self.config.latent_param_dim)

    def __call__(self, h):
        c = self.config
        if c.network == "conv":
            h = conv_features(self.encoder_conv, conv_geometry(c), h[..., : c.x_dim], h[..., c.x_dim :])
        return self.encoder(h)


class CVAEGuide:
    """NumPyro guide ``z ~ q(z|x,y)`` inside the data plate, site ``"z"``.

    Call it as ``guide(x, y, num_data=None)`` with the model's arguments. :meth:`posterior` gives the
    same distribution from a params dict, outside any trace.
    """

    def __init__(self, config: CVAEConfig):
        self.config = config
        self.networks = EncoderNetworks(config)

    def _posterior(self, networks, x, y):
        y_in = encode_targets(y, self.config).astype(x.dtype)
        return latent_distribution(dist, self.config, networks(jnp.concatenate([x, y_in], axis=-1)), split_loc_scale)

    def _bind(self, params):
        # The callable that flax_module returns inside a trace, built from a params dict instead.
        return partial(self.networks.apply, {"params": params[PARAMS]})

    def posterior(self, params, x, y):
        """``q(z|x,y)`` with batch shape ``x.shape[:-1]``, from a NumPyro params dict."""
        return self._posterior(self._bind(params), x, y)

    def __call__(self, x, y, num_data=None):
        c = self.config
        networks = flax_module(NAME, self.networks, input_shape=(1, c.x_dim + c.y_input_dim))
        with data_plate(x.shape[0], num_data):
            return numpyro.sample("z", self._posterior(networks, x, y))
