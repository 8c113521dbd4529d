"""The runs the fault tests start from, trained once per session."""

import pytest

from .matrix import TINY


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Two finished tiny runs, trained once for the session: ``finished`` (hidden 8) and ``wide``
    (hidden 16, whose checkpoint has other shapes)."""
    from infovae.training.config import parse_config
    from infovae.training.loop import start_run

    root = tmp_path_factory.mktemp("runs")
    start_run(parse_config(TINY), root / "finished", progress=False)
    start_run(parse_config({**TINY, "model": {**TINY["model"], "hidden": 16}}), root / "wide", progress=False)
    return root
