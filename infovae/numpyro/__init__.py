"""The NumPyro (JAX) twin of the Pyro side, file for file: :mod:`infovae.numpyro.models`,
:mod:`infovae.numpyro.guides`, :mod:`infovae.numpyro.objectives`, and :mod:`infovae.numpyro.weights`
to move weights between the two backends."""
