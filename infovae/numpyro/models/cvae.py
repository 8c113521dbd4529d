"""The CVAE's generative side as a NumPyro model: prior ``p(z|x)`` and decoder ``p(y|x,z)``; the twin
of :mod:`infovae.models.cvae`."""

from contextlib import contextmanager

import flax.linen as nn
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import flax_module

from infovae.architecture import CVAEConfig
from infovae.numpyro.models.layers import MLP, split_loc_scale

__all__ = ["CVAEModel", "Decoder", "data_plate"]


@contextmanager
def data_plate(batch_size, num_data=None):
    """The data plate ``"data"`` over a batch; with ``num_data`` the batch is a minibatch of that many
    examples and every site in the plate is scaled by ``num_data / batch_size``."""
    if num_data is None or num_data == batch_size:
        with numpyro.plate("data", batch_size):
            yield
        return
    if num_data < batch_size:
        raise ValueError(f"num_data={num_data} is smaller than the batch ({batch_size} examples)")
    # The batch is already the minibatch: fix the plate's indices rather than draw num_data of them.
    with handlers.substitute(data={"data": jnp.arange(batch_size)}), numpyro.plate("data", num_data, subsample_size=batch_size):
        yield


class Decoder(nn.Module):
    """``p(y|x,z)``'s network: the first layer split into an x part and a z part, as the torch twin."""

    config: CVAEConfig

    @nn.compact
    def __call__(self, x, z):
        c = self.config
        x_part = nn.Dense(c.hidden, name="decoder_x")(x)
        # [latent_size, hidden], the layout of a Dense kernel: row z is the response to one-hot z.
        z_kernel = self.param("decoder_z", nn.initializers.lecun_normal(), (c.latent_size, c.hidden))
        z_part = z_kernel[z] if c.latent == "discrete" else z @ z_kernel
        h = nn.relu(x_part + z_part)
        h = nn.relu(nn.Dense(c.hidden, name="decoder_rest_1")(h))
        return nn.Dense(c.decoder_output_dim, name="decoder_rest_3")(h)


class CVAEModel:
    """NumPyro model ``z ~ p(z|x)``, ``y ~ p(y|x,z)`` inside the data plate, sites ``"z"`` and ``"y"``.

    Call it as ``model(x, y=None, num_data=None)``. Its parameters are the NumPyro params
    ``"decoder$params"`` and, for a learned prior, ``"prior_net$params"``; :meth:`prior` and
    :meth:`decoder` evaluate the distributions from such a params dict outside any trace.
    """

    def __init__(self, config: CVAEConfig):
        self.config = config
        self.decoder_net = Decoder(config)
        self.prior_net = MLP(config.hidden, config.latent_param_dim) if config.prior == "learned" else None

    def _prior(self, prior_apply, x):
        c = self.config
        batch = x.shape[:-1]
        if c.latent == "discrete":
            logits = prior_apply(x) if prior_apply else jnp.zeros(batch + (c.latent_size,), x.dtype)
            return dist.Categorical(logits=logits)
        if prior_apply is None:
            shape = batch + (c.latent_size,)
            return dist.Normal(jnp.zeros(shape, x.dtype), jnp.ones(shape, x.dtype)).to_event(1)
        loc, scale = split_loc_scale(prior_apply(x))
        return dist.Normal(loc, scale).to_event(1)

    def _decoder(self, decoder_apply, x, z):
        c = self.config
        out = decoder_apply(x, z)
        batch = out.shape[:-1]
        if c.likelihood == "categorical":
            return dist.Categorical(logits=out.reshape(batch + (c.y_dim, c.num_classes))).to_event(1)
        if c.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(1)
        loc, scale = split_loc_scale(out)
        return dist.Normal(loc, scale).to_event(1)

    def prior(self, params, x):
        """``p(z|x)`` from a params dict, batch shape ``x.shape[:-1]``."""
        net = self.prior_net
        return self._prior(None if net is None else lambda h: net.apply({"params": params["prior_net$params"]}, h), x)

    def decoder(self, params, x, z):
        """``p(y|x,z)`` from a params dict, batch shape ``broadcast(x.shape[:-1], z's batch shape)``."""
        return self._decoder(lambda h, v: self.decoder_net.apply({"params": params["decoder$params"]}, h, v), x, z)

    def __call__(self, x, y=None, num_data=None):
        c = self.config
        z_example = jnp.zeros((1,), jnp.int32) if c.latent == "discrete" else jnp.zeros((1, c.latent_size), x.dtype)
        decoder = flax_module("decoder", self.decoder_net, x[:1], z_example)
        prior_net = None if self.prior_net is None else flax_module("prior_net", self.prior_net, x[:1])
        with data_plate(x.shape[0], num_data):
            z = numpyro.sample("z", self._prior(prior_net, x))
            return numpyro.sample("y", self._decoder(decoder, x, z), obs=y)
