"""What happened to the latent, as numbers: the quantities a run records
(:mod:`~infovae.diagnostics.quantities`), their NumPy and JAX computations
(:mod:`~infovae.diagnostics.metrics`, :mod:`~infovae.diagnostics.jax_metrics`), one evaluation on the
host (:mod:`~infovae.diagnostics.evaluate`), and calibrated tests of what the numbers show: whether a
validation curve decayed (:func:`decay_test`), whether the aggregate posterior matches the prior
(:func:`marginal_fit`), how far generated data's label mix is from the true one
(:func:`coverage_bounds`), and intervals of means over seeds (:func:`t_interval`,
:func:`seed_binomial_interval`).

The public functions load their modules when first used, so that importing the quantities' names (as
the config does) stays light.
"""

import importlib

__all__ = ["coverage_bounds", "decay_test", "marginal_fit", "seed_binomial_interval", "t_interval"]

_MODULES = {
    "coverage_bounds": "infovae.diagnostics.coverage",
    "decay_test": "infovae.diagnostics.decay",
    "marginal_fit": "infovae.diagnostics.two_sample",
    "seed_binomial_interval": "infovae.diagnostics.intervals",
    "t_interval": "infovae.diagnostics.intervals",
}


def __getattr__(name):
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'infovae.diagnostics' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
