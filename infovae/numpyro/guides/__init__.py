"""The CVAE's encoder as NumPyro guides: the twin of :mod:`infovae.guides`."""

from infovae.numpyro.guides.cvae import CVAEGuide, encode_targets

__all__ = ["CVAEGuide", "encode_targets"]
