"""An infovae plug-in: the energy distance as a marginal divergence, and points on noisy rings as a
data set, each declared here and registered by infovae through this package's entry points.

Importing this module imports neither torch nor JAX: each backend's function is named by a string and
imported when a run first uses it.
"""

from typing import Literal

from pydantic import Field

from infovae.core.marginals import Marginal
from infovae.data.registry import DataKind, DataSection

__all__ = ["ENERGY", "RINGS", "RingsData"]

ENERGY = Marginal(
    name="energy",
    latent="continuous",
    inputs="draws",
    functions={
        "pyro": "infovae_energy.torch_energy:energy_distance",
        "numpyro": "infovae_energy.jax_energy:energy_distance",
    },
    description="energy distance between posterior and prior draws (no kernel)",
)


class RingsData(DataSection):
    """Points on concentric noisy rings in the plane; the ring is the hidden label (infovae_energy)."""

    kind: Literal["rings"] = "rings"
    num_examples: int = Field(600, ge=10, le=1_000_000, description="Points drawn.")
    num_rings: int = Field(3, ge=1, le=100, description="Rings, of radius 1, 2, ..., num_rings.")
    noise: float = Field(0.1, gt=0, description="Standard deviation of the radial noise.")


RINGS = DataKind("rings", RingsData, "infovae_energy.rings:load", likelihood="gaussian")
