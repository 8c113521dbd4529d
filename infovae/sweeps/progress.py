"""A sweep's progress as plain lines, for output that is not a terminal (a log file, a pipe, a batch
job), where a progress bar prints nothing: one line per finished trial and, while none finishes (a
vectorised chunk trains its trials together for minutes), one a minute that says the sweep is alive."""

import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from infovae.sweeps.trial import Outcome

__all__ = ["HEARTBEAT_SECONDS", "ProgressLines", "wants_lines"]

HEARTBEAT_SECONDS = 60.0


def wants_lines(progress: bool | None, stream: TextIO | None = None) -> bool:
    """Whether a sweep prints progress lines: when ``progress`` is left to the output (``None``, as a
    progress bar's) and the output (``stream``, default standard error) is not a terminal, where the bar
    shows nothing."""
    return progress is None and not (stream or sys.stderr).isatty()


class ProgressLines:
    """Lines on ``stream`` as the sweep's ``total`` trials finish (``done`` had finished before it
    started), and one every ``every`` seconds in which nothing else was printed."""

    def __init__(self, total: int, done: int, stream: TextIO | None = None, every: float = HEARTBEAT_SECONDS):
        self.total, self.done, self.failed = total, done, 0
        # Standard error as it is when the sweep starts (a test or a notebook may have replaced it).
        self.stream, self.every = stream or sys.stderr, every
        self.started = self.last = time.monotonic()
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="sweep-progress")

    def __enter__(self) -> "ProgressLines":
        self._print(f"{self.total - self.done} of {self.total} trials to run")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def finished(self, trial_dir: Path, outcome: Outcome) -> None:
        """Report one finished trial (its status, and the first line of its error if it failed)."""
        with self._lock:
            self.done += 1
            self.failed += outcome["status"] != "ok"
            error = f": {outcome['error']}" if outcome["status"] != "ok" and outcome["error"] else ""
            trial = f"{Path(trial_dir).name} {outcome['status']}{error}"
            self._print(f"{self.done}/{self.total} trials finished ({self.failed} failed); {trial}")

    def heartbeat(self, now: float) -> None:
        """At time ``now`` (``time.monotonic``), a line if nothing was printed for ``every`` seconds."""
        with self._lock:
            if now - self.last >= self.every:
                self._print(f"{self.done}/{self.total} trials finished ({self.failed} failed); the others are training", now)

    def _beat(self):
        while not self._stop.wait(self.every / 4):
            self.heartbeat(time.monotonic())

    def _print(self, text, now=None):
        now = time.monotonic() if now is None else now
        minutes = (now - self.started) / 60
        print(f"sweep [{minutes:.1f} min]: {text}", file=self.stream, flush=True)
        self.last = now
