"""Sweeps over config keys: a grid, a list or random draws, times seeds, on local processes or Ray."""

from infovae.sweeps.results import aggregate, markdown_table
from infovae.sweeps.spec import SweepSpec, Trial, load_sweep
from infovae.sweeps.sweep import SweepResult, run_sweep

__all__ = ["SweepResult", "SweepSpec", "Trial", "aggregate", "load_sweep", "markdown_table", "run_sweep"]
