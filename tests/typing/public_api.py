"""Read by the type checker (``make lint``), never run: the public API as a user's editor sees it. Each
``assert_type`` fails the check if a name turns invisible (``Any``) or changes its type."""

from pathlib import Path
from typing import Any, assert_type

import pandas as pd

import infovae
from infovae.core.marginals import MARGINALS, Marginal
from infovae.sweeps.sweep import Sweep
from infovae.training.config import RunConfig, load_config
from infovae.training.runs import Run


def notebook(config: Path) -> None:
    run = infovae.train(config, train__steps=100)
    assert_type(run, Run)
    assert_type(run.config, RunConfig)
    assert_type(run.summary, dict[str, Any] | None)
    assert_type(run.metrics, pd.DataFrame)
    assert_type(infovae.resume(run.dir, train__steps=200), Run)
    assert_type(infovae.open_run(run.dir), Run)
    sweep = infovae.sweep({"base": {}, "grid": {"objective.beta": [0.0, 1.0]}}, executor="vectorized")
    assert_type(sweep, Sweep)
    assert_type(infovae.open_sweep(sweep.dir).results, pd.DataFrame)
    assert_type(infovae.report(run.dir), dict[str, Any])
    assert_type(load_config(config, ["train.steps=5"]), RunConfig)
    assert_type(MARGINALS["mmd"], Marginal)
