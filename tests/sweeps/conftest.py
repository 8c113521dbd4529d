"""Fixtures shared by the sweep tests."""

import threading
from contextlib import contextmanager

import pytest


@pytest.fixture
def stop_after_second_chunk(monkeypatch):
    """Makes the NumPyro training loop stop after its second chunk of steps, as Ctrl-C stops it (in this
    process, where the patches act); undone with ``monkeypatch.undo()`` or at the test's end."""
    pytest.importorskip("numpyro")
    from infovae.training import loop_group
    from infovae.training.numpyro_backend import NumPyroBackend

    asked = threading.Event()

    @contextmanager
    def stop_requests():
        yield asked

    real = NumPyroBackend.train_steps
    calls = {"n": 0}

    def counting(self, indices, active):
        calls["n"] += 1
        if calls["n"] == 2:
            asked.set()
        return real(self, indices, active)

    monkeypatch.setattr(loop_group, "stop_requests", stop_requests)
    monkeypatch.setattr(NumPyroBackend, "train_steps", counting)
