"""The CVAE's generative side (prior and decoder) as Pyro models."""

from infovae.core.architecture import CVAEConfig
from infovae.models.cvae import CVAEModel, data_plate

__all__ = ["CVAEConfig", "CVAEModel", "data_plate"]
