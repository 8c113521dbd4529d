"""infovae: conditional VAEs whose latent carries a hidden factor of the data, trained with InfoVAE
objectives that control how much, and what kind of, information flows through the latent.

The notebook API (:mod:`infovae.api`): :func:`train`, :func:`sweep`, :func:`report`, :func:`open_run`,
:func:`open_sweep`. Pyro side: :mod:`infovae.models`, :mod:`infovae.guides`, :mod:`infovae.objectives`;
NumPyro twin: :mod:`infovae.numpyro`. The API's modules load when first used, so that ``import
infovae`` stays light; type checkers read them from the imports below, which run for them only.
"""

import os
from typing import TYPE_CHECKING

# OpenMP threads (torch's, on a CPU) that wait for work sleep rather than spin. A spinning thread holds
# a core another process, or the other thread of the same step, needs: on two loaded cores a Pyro step
# ran many times slower (docs/performance.md). Read when OpenMP starts, so only if torch is imported
# after infovae; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from infovae.api import open_run, open_sweep, report, resume, sweep, train

__version__ = "0.2.0"
__all__ = ["open_run", "open_sweep", "report", "resume", "sweep", "train"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from infovae import api

        return getattr(api, name)
    raise AttributeError(f"module 'infovae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
