"""The CVAE's generative side as a Pyro model: prior ``p(z|x)`` and decoder ``p(y|x,z)``."""

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from infovae.core.architecture import CVAEConfig
from infovae.core.conv import conv_geometry
from infovae.core.cvae import (
    MODEL_NAME,
    fixed_prior,
    initial_raw_decoder_scale,
    latent_distribution,
    likelihood_distribution,
)
from infovae.models.layers import deconv_pixels, image_deconvs, linear, mlp, positive_scale, split_loc_scale

__all__ = ["CVAEModel", "data_plate"]


def data_plate(batch_size, num_data=None, device=None):
    """The data plate ``"data"`` over a batch; with ``num_data`` the batch is a minibatch of that many
    examples and every site in the plate is scaled by ``num_data / batch_size``."""
    if num_data is None or num_data == batch_size:
        return pyro.plate("data", batch_size, device=device)
    if num_data < batch_size:
        raise ValueError(f"num_data={num_data} is smaller than the batch ({batch_size} examples)")
    return pyro.plate("data", num_data, subsample=torch.arange(batch_size, device=device))


class CVAEModel(nn.Module):
    """Pyro model ``z ~ p(z|x)``, ``y ~ p(y|x,z)`` inside the data plate, sites ``"z"`` and ``"y"``.

    A discrete ``z`` is an integer in ``[0, latent_size)``; a Gaussian ``z`` a vector. The decoder
    broadcasts any leading dims of ``z`` against the batch, so the model supports parallel enumeration
    and :class:`~infovae.objectives.InfoVAE_ELBO`'s stacked latent values.

    Call it as ``model(x, y=None, num_data=None)``: with ``y=None`` it generates.
    """

    def __init__(self, config: CVAEConfig):
        super().__init__()
        self.config = config
        c = config
        z_width = c.latent_size
        if c.prior == "learned":
            self.prior_net = mlp(c.x_dim, c.hidden, c.latent_param_dim)
        # The decoder's first layer is split into an x part and a z part, so the x part is computed once
        # per example rather than once per latent value.
        self.decoder_x = linear(c.x_dim, c.hidden)
        self.decoder_z = nn.Linear(z_width, c.hidden, bias=False)
        if c.network == "conv":
            # A feature map that transposed convolutions draw the image from (infovae.core.conv).
            geometry = conv_geometry(c)
            self.decoder_rest = nn.Sequential(nn.ReLU(), nn.Linear(c.hidden, geometry.decoder_start_size), nn.ReLU())
            self.decoder_deconv = image_deconvs(geometry.output_channels)
        else:
            self.decoder_rest = nn.Sequential(
                nn.ReLU(), nn.Linear(c.hidden, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.decoder_output_dim)
            )
        if c.learned_scale:
            # One standard deviation per output dimension, shared by all examples.
            self.decoder_scale = nn.Parameter(torch.full((c.y_dim,), initial_raw_decoder_scale(c)))

    def prior(self, x):
        """``p(z|x)`` with batch shape ``x.shape[:-1]``."""
        c = self.config
        if c.prior == "learned":
            return latent_distribution(dist, c, self.prior_net(x), split_loc_scale)
        return fixed_prior(dist, c, x.new_zeros(x.shape[:-1] + (c.latent_size,)))

    def decoder(self, x, z):
        """``p(y|x,z)`` with batch shape ``broadcast(x.shape[:-1], z's batch shape)``."""
        c = self.config
        if c.latent == "discrete":
            # Row z of the z part's weight is the layer's response to the one-hot vector of z.
            z_part = self.decoder_z.weight.T[z]
        else:
            z_part = self.decoder_z(z)
        out = self.decoder_rest(self.decoder_x(x) + z_part)
        if c.network == "conv":
            out = deconv_pixels(self.decoder_deconv, conv_geometry(c), out)
        if c.amortized_scale:
            return likelihood_distribution(dist, c, *split_loc_scale(out, c.min_scale))
        scale = positive_scale(self.decoder_scale, c.min_scale) if c.learned_scale else c.decoder_scale
        return likelihood_distribution(dist, c, out, scale)

    def forward(self, x, y=None, num_data=None):
        pyro.module(MODEL_NAME, self)
        with data_plate(x.shape[0], num_data, x.device):
            z = pyro.sample("z", self.prior(x))
            return pyro.sample("y", self.decoder(x, z), obs=y)
