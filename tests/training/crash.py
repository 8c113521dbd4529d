"""A Pyro run that stops as a crash would, partway through: its last checkpoint is kept."""

import pytest

from infovae.training.pyro_backend import PyroBackend


def start_and_crash(monkeypatch, start, step):
    """Run ``start()`` with the Pyro backend's ``step``-th optimisation step raising KeyboardInterrupt, then
    put the backend's step back."""
    real_step, calls = PyroBackend._step, {"n": 0}

    def crashing_step(self, x, y):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return real_step(self, x, y)

    with monkeypatch.context() as patch:
        patch.setattr(PyroBackend, "_step", crashing_step)
        with pytest.raises(KeyboardInterrupt):
            start()
