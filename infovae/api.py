"""Everything the command line does, as Python functions for notebooks and scripts.

.. code-block:: python

    import infovae

    run = infovae.train("examples/strategies/infovae.yaml", train__steps=500)   # or a dict, or a RunConfig
    run.summary["probe_accuracy"], run.metrics.tail()                        # metrics: a pandas DataFrame
    sweep = infovae.sweep("examples/quickstart.yaml", set={"train.steps": 300})
    sweep.results                                                            # results.csv as a DataFrame
    infovae.report(run.dir)                                                  # figures and report.md

Overrides are dotted keys, given as ``**{"train.steps": 500}`` or, as Python keywords allow,
``train__steps=500``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infovae.errors import UserInputError

if TYPE_CHECKING:  # for type checkers only: the modules themselves load when first used
    from infovae.sweeps.sweep import Sweep
    from infovae.training.config import RunConfig
    from infovae.training.runs import Run

__all__ = ["default_out", "open_run", "open_sweep", "report", "resume", "sweep", "train"]


def default_out(name: str | Path) -> Path:
    """``runs/NAME-TIMESTAMP-XXXXXX``: readable, and two runs started in the same second never share it."""
    return Path("runs") / f"{Path(str(name)).stem}-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def _config(config: str | Path | Mapping[str, Any] | RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
    from infovae.training.config import (
        RunConfig,
        apply_overrides,
        load_config,
        parse_config,
    )

    if isinstance(config, (str, Path)):
        return load_config(config, overrides)
    if isinstance(config, RunConfig):
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise UserInputError(f"config must be a path, a mapping or a RunConfig, got {type(config).__name__}")
    return parse_config(apply_overrides(dict(config), overrides))


def _callbacks(callbacks: Iterable[Any]) -> list[Any]:
    from infovae.training.callbacks import make_callbacks

    return make_callbacks(callbacks)


def train(
    config: str | Path | Mapping[str, Any] | RunConfig,
    out: str | Path | None = None,
    backend: str | None = None,
    progress: bool | None = None,
    callbacks: Iterable[Any] = (),
    **overrides: Any,
) -> Run:
    """Train one CVAE and return its :class:`~infovae.training.runs.Run`.

    :param config: a YAML file's path, a config mapping, or a :class:`~infovae.training.config.RunConfig`.
    :param out: the new run folder (default :func:`default_out`).
    :param backend: ``"pyro"`` or ``"numpyro"``, overriding the config's.
    :param progress: show a progress bar (default: on a terminal).
    :param callbacks: objects with ``on_evaluation(run_dir, step, record)`` and
        ``on_summary(run_dir, summary)``, or ``"tensorboard"``.
    :param overrides: dotted config keys and their values.
    """
    if backend is not None:
        overrides["backend"] = backend
    run_config = _config(config, overrides)
    # After the config is read: a rejected one costs no import of the training loop.
    from infovae.training.loop import start_run
    from infovae.training.runs import open_run as _open

    out = Path(out) if out is not None else default_out(config if isinstance(config, (str, Path)) else "run")
    start_run(run_config, out, progress=progress, callbacks=_callbacks(callbacks))
    return _open(out)


def resume(run_dir: str | Path, progress: bool | None = None, callbacks: Iterable[Any] = (), **overrides: Any) -> Run:
    """Continue the run in ``run_dir`` from its last checkpoint; ``train__steps=N`` (or
    ``**{"train.steps": N}``) extends a finished run to N steps. Returns the :class:`Run`.

    A trial of a sweep is the run folder ``SWEEP/trials/NAME/run``; it resumes as running the sweep again
    would (from its group's checkpoint where a vectorised sweep left it there), and its outcome and the
    sweep's results tables are recorded when it ends."""
    from infovae.sweeps.sweep import resume_trial, trial_sweep
    from infovae.training.loop import resume_run
    from infovae.training.runs import open_run as _open

    keys = {str(k).replace("__", ".") for k in overrides}
    if keys - {"train.steps"}:
        raise UserInputError(f"a resumed run keeps its config; only train.steps may change (to extend it), got {sorted(keys)}")
    steps = overrides.get("train.steps", overrides.get("train__steps"))

    def resume_here() -> dict[str, Any]:
        return resume_run(run_dir, steps=steps, progress=progress, callbacks=_callbacks(callbacks))

    sweep_dir = trial_sweep(run_dir)
    if sweep_dir is None:
        resume_here()
    else:
        resume_trial(sweep_dir, run_dir, resume_here)
    return _open(run_dir)


def sweep(
    sweep_file: str | Path | Mapping[str, Any],
    out: str | Path | None = None,
    executor: str = "local",
    progress: bool | None = None,
    overrides: Mapping[str, Any] | None = None,
    **options: Any,
) -> Sweep:
    """Run a sweep and return its :class:`~infovae.sweeps.sweep.Sweep`.

    :param sweep_file: a sweep file's path, or a sweep mapping (``base``, ``grid``/``list``/``random``,
        ``seeds``, ``set``).
    :param out: the sweep folder (default ``runs/SWEEP_FILE``); re-running resumes.
    :param executor: ``"local"`` (processes), ``"ray"`` or ``"vectorized"`` (NumPyro, one compiled
        program per group of trials).
    :param overrides: dotted keys set on every trial, as the sweep file's ``set:``.
    :param options: ``workers``, ``address``, ``trials_per_program``, ``retry_failed``.
    """
    from infovae.sweeps.sweep import run_sweep

    return run_sweep(sweep_file, out, executor=executor, progress=progress, overrides=overrides or {}, **options)


def report(path: str | Path, draws: int = 100, examples: int = 500) -> dict[str, Any]:
    """Write the figures and ``report.md`` of a run or sweep folder; returns their paths
    (``{"report": ..., "figures": [...], "inference": ...}``)."""
    from infovae.reports import write_report

    return write_report(path, draws=draws, examples=examples)


def open_run(run_dir: str | Path) -> Run:
    """A finished (or running) run folder read back: :class:`~infovae.training.runs.Run`."""
    from infovae.training.runs import open_run as _open

    return _open(run_dir)


def open_sweep(sweep_dir: str | Path) -> Sweep:
    """A sweep folder read back: :class:`~infovae.sweeps.sweep.Sweep`."""
    from infovae.sweeps.sweep import open_sweep as _open

    return _open(sweep_dir)
