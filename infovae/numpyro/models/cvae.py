"""The CVAE's generative side as a NumPyro model: prior ``p(z|x)`` and decoder ``p(y|x,z)``; the twin
of :mod:`infovae.models.cvae`.

The networks are one flax module, :class:`GenerativeNetworks`, with the torch model's submodules
under the same names; it is registered as ``"cvae_model"`` (NumPyro param ``"cvae_model$params"``)
as the torch model is with ``pyro.module("cvae_model", ...)``.
"""

from contextlib import contextmanager
from functools import partial

import flax.linen as nn
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import flax_module

from infovae.core.architecture import CVAEConfig
from infovae.core.conv import conv_geometry
from infovae.core.cvae import (
    MODEL_NAME,
    fixed_prior,
    initial_raw_decoder_scale,
    latent_distribution,
    likelihood_distribution,
)
from infovae.numpyro.models.layers import (
    LatentLinear,
    deconv_pixels,
    image_deconvs,
    mlp,
    positive_scale,
    split_loc_scale,
)
from infovae.numpyro.weights import MODEL_PARAMS

__all__ = ["NAME", "PARAMS", "CVAEModel", "GenerativeNetworks", "data_plate"]

# The name the model's networks are registered under, as the torch model's with pyro.module, and the
# NumPyro param that flax_module makes of it to hold their weights.
NAME = MODEL_NAME
PARAMS = MODEL_PARAMS


@contextmanager
def data_plate(batch_size, num_data=None):
    """The data plate ``"data"`` over a batch; with ``num_data`` the batch is a minibatch of that many
    examples and every site in the plate is scaled by ``num_data / batch_size``.

    ``num_data`` must be a Python int (static under :func:`jax.jit`).
    """
    if num_data is None or num_data == batch_size:
        with numpyro.plate("data", batch_size):
            yield
        return
    if num_data < batch_size:
        raise ValueError(f"num_data={num_data} is smaller than the batch ({batch_size} examples)")
    # The batch is the minibatch already: giving the plate its indices keeps NumPyro from drawing
    # batch_size of num_data indices at random, an O(num_data) shuffle in every step.
    with handlers.substitute(data={"data": jnp.arange(batch_size)}):
        with numpyro.plate("data", num_data, subsample_size=batch_size):
            yield


class GenerativeNetworks(nn.Module):
    """The networks of ``p(z|x)`` and ``p(y|x,z)``, named as the torch :class:`~infovae.models.CVAEModel`'s
    submodules: ``prior_net`` (learned prior only), the decoder ``decoder_x``, ``decoder_z``,
    ``decoder_rest``, and ``decoder_scale`` (a Gaussian decoder's learned scale, unconstrained)."""

    config: CVAEConfig

    def setup(self):
        c = self.config
        if c.prior == "learned":
            self.prior_net = mlp(c.hidden, c.latent_param_dim)
        # The decoder's first layer is split into an x part and a z part, so the x part is computed
        # once per example rather than once per latent value.
        self.decoder_x = nn.Dense(c.hidden)
        self.decoder_z = LatentLinear(c.latent_size, c.hidden, discrete=c.latent == "discrete")
        if c.network == "conv":
            # A feature map that transposed convolutions draw the image from (infovae.core.conv).
            geometry = conv_geometry(c)
            self.decoder_rest = nn.Sequential([nn.relu, nn.Dense(geometry.decoder_start_size), nn.relu])
            self.decoder_deconv = image_deconvs(geometry.output_channels)
        else:
            self.decoder_rest = nn.Sequential([nn.relu, nn.Dense(c.hidden), nn.relu, nn.Dense(c.decoder_output_dim)])
        if c.learned_scale:
            # One standard deviation per output dimension, shared by all examples.
            self.decoder_scale = self.param("decoder_scale", nn.initializers.constant(initial_raw_decoder_scale(c)), (c.y_dim,))

    def prior_params(self, x):
        """The learned prior's logits, or its loc and raw scale, ``[..., latent_param_dim]``."""
        return self.prior_net(x)

    def decoder_params(self, x, z):
        """The decoder's output ``[*broadcast(x.shape[:-1], z's batch shape), decoder_output_dim]``."""
        out = self.decoder_rest(self.decoder_x(x) + self.decoder_z(z))
        if self.config.network == "conv":
            out = deconv_pixels(self.decoder_deconv, conv_geometry(self.config), out)
        return out

    def learned_decoder_scale(self):
        """The Gaussian decoder's learned scale per output dimension, unconstrained."""
        return self.decoder_scale

    def __call__(self, x, z):
        """Every network once: flax creates parameters by running a method, and this one reaches all."""
        prior = self.prior_params(x) if self.config.prior == "learned" else None
        return prior, self.decoder_params(x, z)


class CVAEModel:
    """NumPyro model ``z ~ p(z|x)``, ``y ~ p(y|x,z)`` inside the data plate, sites ``"z"`` and ``"y"``.

    A discrete ``z`` is an integer in ``[0, latent_size)``; a Gaussian ``z`` a vector. The decoder
    broadcasts any leading dims of ``z`` against the batch, so the model supports parallel enumeration
    and :class:`~infovae.numpyro.objectives.InfoVAE_ELBO`'s stacked latent values.

    Call it as ``model(x, y=None, num_data=None)``: with ``y=None`` it generates. :meth:`prior` and
    :meth:`decoder` give the same distributions from a params dict, outside any trace.
    """

    def __init__(self, config: CVAEConfig):
        self.config = config
        self.networks = GenerativeNetworks(config)

    def _prior(self, networks, x):
        c = self.config
        if c.prior == "learned":
            return latent_distribution(dist, c, networks(x, method="prior_params"), split_loc_scale)
        return fixed_prior(dist, c, jnp.zeros(x.shape[:-1] + (c.latent_size,), x.dtype))

    def _decoder(self, networks, x, z):
        c = self.config
        out = networks(x, z, method="decoder_params")
        if c.amortized_scale:
            return likelihood_distribution(dist, c, *split_loc_scale(out, c.min_scale))
        scale = positive_scale(networks(method="learned_decoder_scale"), c.min_scale) if c.learned_scale else c.decoder_scale
        return likelihood_distribution(dist, c, out, scale)

    def _bind(self, params):
        # The callable that flax_module returns inside a trace, built from a params dict instead.
        return partial(self.networks.apply, {"params": params[PARAMS]})

    def prior(self, params, x):
        """``p(z|x)`` with batch shape ``x.shape[:-1]``, from a NumPyro params dict."""
        return self._prior(self._bind(params), x)

    def decoder(self, params, x, z):
        """``p(y|x,z)`` with batch shape ``broadcast(x.shape[:-1], z's batch shape)``, from a NumPyro params dict."""
        return self._decoder(self._bind(params), x, z)

    def __call__(self, x, y=None, num_data=None):
        c = self.config
        # Example inputs, only used to create the weights when no params are given.
        z_example = jnp.zeros((1,), jnp.int32) if c.latent == "discrete" else jnp.zeros((1, c.latent_size), x.dtype)
        networks = flax_module(NAME, self.networks, x[:1], z_example)
        with data_plate(x.shape[0], num_data):
            z = numpyro.sample("z", self._prior(networks, x))
            return numpyro.sample("y", self._decoder(networks, x, z), obs=y)
