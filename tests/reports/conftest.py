"""Tiny trained runs shared by the report tests (trained once per session)."""

import numpy as np
import pytest

import infovae

STRATEGIES = {
    "data": {"kind": "strategies", "num_examples": 300, "horizon": 4, "num_strategies": 3},
    "model": {"latent": "discrete", "latent_size": 4, "hidden": 16},
    "train": {"steps": 20, "batch_size": 32, "eval_every": 10, "eval_examples": 80},
}
CONFIGS = {
    "strategies": STRATEGIES,
    # The same data and split as "strategies", another model: a comparison on held-out density.
    "strategies_beta0": {**STRATEGIES, "objective": {"beta": 0.0, "marginal": "kl", "marginal_weight": 5.0}},
    "digits": {**STRATEGIES, "data": {"kind": "digits"}},
    "gaussian": {**STRATEGIES, "model": {"latent": "gaussian", "latent_size": 2, "hidden": 16, "prior": "learned"}},
    "numpyro": {**STRATEGIES, "backend": "numpyro"},
    "nolabels": None,  # npz without labels, Gaussian y: written in the fixture
}


class Runs:
    """Trains a run the first time a test asks for it."""

    def __init__(self, root):
        self.root = root

    def __truediv__(self, name):
        path = self.root / name
        if not (path / "summary.json").exists():
            config = CONFIGS[name]
            if name == "nolabels":
                rng = np.random.default_rng(0)
                data = self.root / "nolabels.npz"
                np.savez(data, x=rng.normal(size=(200, 3)).astype("float32"), y=rng.normal(size=(200, 5)).astype("float32"))
                config = {
                    **STRATEGIES,
                    "data": {"kind": "npz", "path": str(data)},
                    "model": {**STRATEGIES["model"], "likelihood": "gaussian"},
                }
            infovae.train(config, out=path, progress=False)
        return path


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("runs"))
