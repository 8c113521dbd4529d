"""Training: the run config (:mod:`~infovae.training.config`), the backends (:mod:`~infovae.training.backends`),
the one training loop (:mod:`~infovae.training.loop`), checkpoints and run folders.

The names below load their modules when first used, so that the command line reads a config without
importing the training loop (and with it NumPy's heavier users, torch or JAX).
"""

from typing import TYPE_CHECKING

from infovae.registry import lazy_exports

if TYPE_CHECKING:
    from infovae.training.config import RunConfig, load_config, parse_config
    from infovae.training.loop import resume_run, start_run
    from infovae.training.runs import Run, open_run

__all__ = ["Run", "RunConfig", "load_config", "open_run", "parse_config", "resume_run", "start_run"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "RunConfig": "infovae.training.config",
    "load_config": "infovae.training.config",
    "parse_config": "infovae.training.config",
    "resume_run": "infovae.training.loop",
    "start_run": "infovae.training.loop",
    "Run": "infovae.training.runs",
    "open_run": "infovae.training.runs",
})  # fmt: skip
