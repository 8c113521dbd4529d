"""The NumPyro (JAX) twin of the Pyro side, file for file: :mod:`infovae.numpyro.models`,
:mod:`infovae.numpyro.guides`, :mod:`infovae.numpyro.objectives`, and :mod:`infovae.numpyro.weights`
to move weights between the two backends (one call each way).

The subpackages are imported on demand, so that importing this package alone does not load JAX.
"""

__all__ = ["guides", "models", "objectives", "weights"]
