"""The CVAE's encoder as a Pyro guide: ``q(z|x,y)``."""

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from infovae.core.architecture import CVAEConfig
from infovae.core.cvae import latent_distribution
from infovae.models.cvae import data_plate
from infovae.models.layers import mlp, split_loc_scale

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
        self.encoder = mlp(config.x_dim + config.y_input_dim, config.hidden, config.latent_param_dim)

    def posterior(self, x, y):
        """``q(z|x,y)`` with batch shape ``x.shape[:-1]``."""
        y_in = encode_targets(y, self.config).to(x.dtype)
        return latent_distribution(dist, self.config, self.encoder(torch.cat([x, y_in], dim=-1)), split_loc_scale)

    def forward(self, x, y, num_data=None):
        pyro.module("cvae_guide", self)
        with data_plate(x.shape[0], num_data, x.device):
            return pyro.sample("z", self.posterior(x, y))
