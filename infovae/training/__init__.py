"""Training: the run config (:mod:`~infovae.training.config`), the backends (:mod:`~infovae.training.backends`),
the one training loop (:mod:`~infovae.training.loop`), checkpoints and run folders."""

from infovae.training.config import RunConfig, load_config, parse_config
from infovae.training.loop import resume_run, start_run
from infovae.training.runs import Run, open_run

__all__ = ["Run", "RunConfig", "load_config", "open_run", "parse_config", "resume_run", "start_run"]
