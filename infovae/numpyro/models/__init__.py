"""The CVAE's generative side (prior and decoder) as NumPyro models: the twin of :mod:`infovae.models`."""

from infovae.core.architecture import CVAEConfig
from infovae.numpyro.models.cvae import CVAEModel, GenerativeNetworks, data_plate

__all__ = ["CVAEConfig", "CVAEModel", "GenerativeNetworks", "data_plate"]
