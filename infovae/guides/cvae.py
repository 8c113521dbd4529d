"""The CVAE's encoder as a Pyro guide: ``q(z|x,y)``."""

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from infovae.core.architecture import CVAEConfig
from infovae.core.conv import conv_geometry
from infovae.core.cvae import GUIDE_NAME, latent_distribution
from infovae.models.cvae import data_plate
from infovae.models.layers import conv_features, image_convs, mlp, split_loc_scale

__all__ = ["CVAEGuide", "encode_targets"]


def encode_targets(y, config: CVAEConfig):
    """``y`` as the encoder sees it: one-hot and flattened for categorical factors, as floats otherwise."""
    if config.likelihood == "categorical":
        return F.one_hot(y.long(), config.num_classes).flatten(-2)
    return y


class CVAEGuide(nn.Module):
    """Pyro guide ``z ~ q(z|x,y)`` inside the data plate, site ``"z"``.

    Call it as ``guide(x, y, num_data=None)`` with the model's arguments.
    """

    def __init__(self, config: CVAEConfig):
        super().__init__()
        self.config = config
        inputs = config.x_dim + config.y_input_dim
        if config.network == "conv":
            # The image convolved (infovae.core.conv), then the MLP.
            geometry = conv_geometry(config)
            self.encoder_conv = image_convs(geometry.image_shape[0])
            inputs = geometry.encoder_features + geometry.condition_dim
        self.encoder = mlp(inputs, config.hidden, config.latent_param_dim)

    def posterior(self, x, y):
        """``q(z|x,y)`` with batch shape ``x.shape[:-1]``."""
        y_in = encode_targets(y, self.config).to(x.dtype)
        if self.config.network == "conv":
            h = conv_features(self.encoder_conv, conv_geometry(self.config), x, y_in)
        else:
            h = torch.cat([x, y_in], dim=-1)
        return latent_distribution(dist, self.config, self.encoder(h), split_loc_scale)

    def forward(self, x, y, num_data=None):
        pyro.module(GUIDE_NAME, self)
        with data_plate(x.shape[0], num_data, x.device):
            return pyro.sample("z", self.posterior(x, y))
