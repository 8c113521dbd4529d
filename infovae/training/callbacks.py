"""Where else a run's numbers go while it trains: a small callback interface, and TensorBoard.

A callback is any object with these two methods (both optional to act on, both called):

- ``on_evaluation(run_dir, step, record)``: after each evaluation, with the ``metrics.jsonl`` record;
- ``on_summary(run_dir, summary)``: once, with ``summary.json``.

Pass callbacks to :func:`infovae.train` (or ``"tensorboard"``, or ``--tensorboard`` on the command
line) to stream the numbers to the tools researchers watch runs with.
"""

from collections.abc import Iterable
from numbers import Real
from pathlib import Path
from typing import Any

from infovae.errors import UserInputError

__all__ = ["Callback", "TensorBoardLogger", "make_callbacks"]


class Callback:
    """The interface, doing nothing: subclass it and override what you need."""

    def on_evaluation(self, run_dir: Path, step: int, record: dict[str, Any]) -> None:
        pass

    def on_summary(self, run_dir: Path, summary: dict[str, Any]) -> None:
        pass


class TensorBoardLogger(Callback):
    """Every number of each evaluation as a TensorBoard scalar (``val/<name>``, ``train/<term>``), and
    the summary (``test/<name>``), in event files under ``RUN/tensorboard`` (or ``log_dir/RUN_NAME``).

    Uses tensorboardX's writer (``pip install 'infovae[tensorboard]'``); view with ``tensorboard --logdir runs``.
    """

    def __init__(self, log_dir: str | Path | None = None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise UserInputError("TensorBoard logging needs tensorboardX: pip install 'infovae[tensorboard]'") from None
        self._writer_class, self.log_dir = SummaryWriter, log_dir
        self._writers: dict[Path, Any] = {}

    def _writer(self, run_dir):
        run_dir = Path(run_dir)
        if run_dir not in self._writers:
            where = run_dir / "tensorboard" if self.log_dir is None else Path(self.log_dir) / run_dir.name
            self._writers[run_dir] = self._writer_class(str(where))
        return self._writers[run_dir]

    def on_evaluation(self, run_dir: Path, step: int, record: dict[str, Any]) -> None:
        writer = self._writer(run_dir)
        for name, value in record.items():
            if name != "step" and isinstance(value, Real) and not isinstance(value, bool):
                tag = f"train/{name.removeprefix('train_')}" if name.startswith("train_") else f"val/{name}"
                writer.add_scalar(tag, value, step)
        writer.flush()

    def on_summary(self, run_dir: Path, summary: dict[str, Any]) -> None:
        writer = self._writer(run_dir)
        for name, value in summary.items():
            if isinstance(value, Real) and not isinstance(value, bool):
                writer.add_scalar(f"test/{name.removeprefix('test_')}", value, summary.get("steps", 0))
        writer.close()
        self._writers.pop(Path(run_dir), None)


def make_callbacks(callbacks: Iterable[Any] | None) -> list[Any]:
    """Callback objects from objects and names (``"tensorboard"``)."""
    made = []
    for callback in callbacks or ():
        if callback == "tensorboard":
            made.append(TensorBoardLogger())
        elif isinstance(callback, str) or not (hasattr(callback, "on_evaluation") and hasattr(callback, "on_summary")):
            raise UserInputError(f"a callback needs on_evaluation and on_summary, or the name 'tensorboard'; got {callback!r}")
        else:
            made.append(callback)
    return made
