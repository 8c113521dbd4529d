"""infovae: conditional VAEs whose latent carries a hidden factor of the data, trained with InfoVAE
objectives that control how much, and what kind of, information flows through the latent.

Pyro side: :mod:`infovae.models`, :mod:`infovae.guides`, :mod:`infovae.objectives`; NumPyro twin:
:mod:`infovae.numpyro`.
"""

__version__ = "0.1.0"
