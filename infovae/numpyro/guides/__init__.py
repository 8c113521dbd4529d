"""The CVAE's encoder as NumPyro guides: the twin of :mod:`infovae.guides`."""

from infovae.numpyro.guides.cvae import CVAEGuide, EncoderNetworks, encode_targets

__all__ = ["CVAEGuide", "EncoderNetworks", "encode_targets"]
