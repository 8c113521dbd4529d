"""Stop requests: Ctrl-C and SIGTERM ask the training loop to stop at its next chance (after the current
chunk of steps, with a checkpoint), so that a resumed run continues exactly."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["stop_requests"]


@contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """Ctrl-C (the first one) and SIGTERM ask the loop to stop after the current chunk; a second
    Ctrl-C stops at once. Only the main thread can receive signals; elsewhere nothing is installed."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def ask(signum, frame):
        requested.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
