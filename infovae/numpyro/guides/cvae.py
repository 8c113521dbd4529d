"""The CVAE's encoder as a NumPyro guide: ``q(z|x,y)``; the twin of :mod:`infovae.guides.cvae`."""

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.module import flax_module

from infovae.architecture import CVAEConfig
from infovae.numpyro.models.cvae import data_plate
from infovae.numpyro.models.layers import MLP, split_loc_scale

__all__ = ["CVAEGuide", "encode_targets"]


def encode_targets(y, config: CVAEConfig):
    """``y`` as the encoder sees it: one-hot and flattened for categorical factors, as it is otherwise."""
    if config.likelihood == "categorical":
        return jax.nn.one_hot(y, config.num_classes).reshape(y.shape[:-1] + (-1,))
    return y


class CVAEGuide:
    """NumPyro guide ``z ~ q(z|x,y)`` inside the data plate, site ``"z"``; its parameters are the NumPyro
    param ``"encoder$params"``. Call it as ``guide(x, y, num_data=None)``."""

    def __init__(self, config: CVAEConfig):
        self.config = config
        self.encoder_net = MLP(config.hidden, config.latent_param_dim)

    def _posterior(self, encoder_apply, x, y):
        params = encoder_apply(jnp.concatenate([x, encode_targets(y, self.config).astype(x.dtype)], axis=-1))
        if self.config.latent == "discrete":
            return dist.Categorical(logits=params)
        loc, scale = split_loc_scale(params)
        return dist.Normal(loc, scale).to_event(1)

    def posterior(self, params, x, y):
        """``q(z|x,y)`` from a params dict, batch shape ``x.shape[:-1]``."""
        return self._posterior(lambda h: self.encoder_net.apply({"params": params["encoder$params"]}, h), x, y)

    def __call__(self, x, y, num_data=None):
        c = self.config
        encoder = flax_module("encoder", self.encoder_net, input_shape=(1, c.x_dim + c.y_input_dim))
        with data_plate(x.shape[0], num_data):
            return numpyro.sample("z", self._posterior(encoder, x, y))
