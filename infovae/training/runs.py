"""A run folder read back: :func:`open_run` gives a :class:`Run`, its config, summary and metrics read at
once, its data and trained model when first used (the folder's files: :mod:`infovae.training.run_folder`).

The training engine loads only when a run's data or model is asked for (imports inside the two
properties), so that reading runs back does not import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infovae.data.base import DataSplits
from infovae.errors import RunDirError
from infovae.training.config import RunConfig
from infovae.training.run_folder import CONFIG, METRICS, SPLITS, SUMMARY, RunFolder

if TYPE_CHECKING:
    import pandas as pd

    from infovae.training.backends import Backend

__all__ = ["CONFIG", "METRICS", "SPLITS", "SUMMARY", "Run", "RunFolder", "open_run"]


@dataclass
class Run:
    """A run folder read back: its config, summary and metrics, and (on demand) its data and trained model.

    :ivar dir: the run folder.
    :ivar config: the run's :class:`~infovae.training.config.RunConfig`.
    :ivar summary: ``summary.json`` as a dict, or ``None`` for a run that has not finished.
    """

    dir: Path
    config: RunConfig
    summary: dict[str, Any] | None
    records: list[dict[str, Any]] = field(repr=False)

    @property
    def metrics(self) -> pd.DataFrame:
        """``metrics.jsonl`` as a pandas DataFrame, one row per evaluation."""
        import pandas as pd

        return pd.DataFrame.from_records(self.records)

    @cached_property
    def splits(self) -> DataSplits:
        """The run's data, split as recorded in ``splits.npz`` (a changed data set is refused)."""
        from infovae.training.loop_runs import load_run_splits

        return load_run_splits(self.config, RunFolder(self.dir))

    @cached_property
    def backend(self) -> Backend:
        """The trained model: a backend holding the checkpoint's weights (the selected ones where
        ``train.select`` is ``best``)."""
        from infovae.training.loop_runs import restore_backend

        return restore_backend(self.config, self.splits, RunFolder(self.dir))


def open_run(run_dir: str | Path) -> Run:
    """Read the run folder ``run_dir`` back (its model and data load when first used)."""
    folder = RunFolder(run_dir)
    if not folder.path.is_dir():
        raise RunDirError(f"{folder.path} is not a folder")
    return Run(folder.path, folder.read_config(), folder.read_summary(), folder.read_metrics())
