"""Sweeps over config keys: a grid, a list or random draws, times seeds, on local processes, on Ray, or
vectorised into one compiled NumPyro program per group of trials."""

from infovae.sweeps.results import aggregate, markdown_table
from infovae.sweeps.spec import SweepSpec, SweepTrial, load_sweep
from infovae.sweeps.sweep import Sweep, open_sweep, run_sweep

__all__ = ["Sweep", "SweepSpec", "SweepTrial", "aggregate", "load_sweep", "markdown_table", "open_sweep", "run_sweep"]
