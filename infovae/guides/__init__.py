"""The CVAE's encoder as Pyro guides."""

from infovae.guides.cvae import CVAEGuide, encode_targets

__all__ = ["CVAEGuide", "encode_targets"]
