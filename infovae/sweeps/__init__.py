"""Sweeps over config keys: a grid, a list or random draws, times seeds, on local processes, on Ray, or
vectorised into one compiled NumPyro program per group of trials.

The names below load their modules when first used, so that the command line lists the executors
without importing the sweep machinery.
"""

from typing import TYPE_CHECKING

from infovae.registry import lazy_exports

if TYPE_CHECKING:
    from infovae.sweeps.results import aggregate, markdown_table
    from infovae.sweeps.spec import SweepSpec, SweepTrial, load_sweep
    from infovae.sweeps.sweep import Sweep, open_sweep, run_sweep

__all__ = ["Sweep", "SweepSpec", "SweepTrial", "aggregate", "load_sweep", "markdown_table", "open_sweep", "run_sweep"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "aggregate": "infovae.sweeps.results",
    "markdown_table": "infovae.sweeps.results",
    "SweepSpec": "infovae.sweeps.spec",
    "SweepTrial": "infovae.sweeps.spec",
    "load_sweep": "infovae.sweeps.spec",
    "Sweep": "infovae.sweeps.sweep",
    "open_sweep": "infovae.sweeps.sweep",
    "run_sweep": "infovae.sweeps.sweep",
})  # fmt: skip
