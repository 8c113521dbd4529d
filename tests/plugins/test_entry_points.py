"""A third-party package adds a marginal divergence and a data set through entry points alone, and a run
trains with both from a YAML file on the command line.

The package (``tests/plugins/infovae_energy``) is installed for real, with pip, into a scratch folder
that the command line's processes find on ``PYTHONPATH``; nothing in this process registers its names.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).parents[2]
PACKAGE = Path(__file__).parent / "infovae_energy"
CONFIG = {
    "data": {"kind": "rings", "num_examples": 300, "num_rings": 2},
    "model": {"latent": "gaussian", "latent_size": 2, "hidden": 16},
    "objective": {"beta": 0.0, "marginal": "energy", "marginal_weight": 10.0},
    "train": {"steps": 20, "batch_size": 32, "eval_every": 10, "eval_examples": 60, "importance_samples": 4},
}


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """The plug-in installed with pip (no network, no build isolation) into a folder of its own."""
    scratch = tmp_path_factory.mktemp("plugin")
    source, target = scratch / "source", scratch / "site"
    shutil.copytree(PACKAGE, source)  # the build writes beside the sources: not into the repository
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--target", str(target), str(source)],
        check=True,
        timeout=120,
    )
    return target


# Run as one process with the plug-in on its path: what starting the command line reads, the divergence
# in both backends on the same float64 draws, then `infovae train energy.yaml`.
SCRIPT = r"""
import json, sys
import numpy as np
from infovae.cli import main
from infovae.core.marginals import MARGINALS
from infovae.data.registry import DATA_KINDS
from infovae.training.config import parse_config

parse_config({"objective": {"marginal": "kl"}})
facts = {"read_at_start": [r._pending is not None for r in (MARGINALS, DATA_KINDS)]}
facts["marginals"], facts["data_kinds"] = list(MARGINALS), list(DATA_KINDS)
facts["frameworks_after_listing"] = sorted(m for m in ("torch", "jax") if m in sys.modules)
rng = np.random.default_rng(0)
x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.5, size=(6, 3))
import jax, torch
jax.config.update("jax_enable_x64", True)
facts["numpyro"] = float(MARGINALS["energy"].function("numpyro")(jax.numpy.asarray(x), jax.numpy.asarray(y)))
facts["pyro"] = float(MARGINALS["energy"].function("pyro")(torch.as_tensor(x), torch.as_tensor(y)))
facts["x"], facts["y"] = x.tolist(), y.tolist()
print(json.dumps(facts), flush=True)
main(["train", "energy.yaml", "--out", "run", "--no-progress"])
"""


def energy_reference(x, y):
    """2 E|x - y| - E|x - x'| - E|y - y'| by explicit loops over pairs, in float64."""

    def mean_distance(a, b, distinct):
        pairs = [(i, j) for i in range(len(a)) for j in range(len(b)) if not (distinct and i == j)]
        return sum(np.linalg.norm(a[i] - b[j]) for i, j in pairs) / len(pairs)

    return 2 * mean_distance(x, y, False) - mean_distance(x, x, True) - mean_distance(y, y, True)


def test_a_run_trains_with_a_plugin_divergence_and_data_set_from_a_yaml_file(plugin_path, tmp_path):
    pytest.importorskip("numpyro")
    (tmp_path / "energy.yaml").write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.splitlines()[0])
    # Starting the command line and parsing a config of built-in names reads no entry point...
    assert facts["read_at_start"] == [False, False]
    # ...listing the names does, and imports neither torch nor JAX (the functions are strings).
    assert "energy" in facts["marginals"] and "rings" in facts["data_kinds"]
    assert facts["frameworks_after_listing"] == []
    expected = energy_reference(np.array(facts["x"]), np.array(facts["y"]))
    assert facts["pyro"] == pytest.approx(expected, rel=1e-12) and facts["numpyro"] == pytest.approx(expected, rel=1e-12)

    # The run: the config as recorded, an evaluation every 10 steps, a summary.
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert recorded["data"] == {**recorded["data"], **CONFIG["data"]} and recorded["objective"]["marginal"] == "energy"
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    # The divergence was computed on every step (it has a weight): the running mean of its term.
    assert all(np.isfinite(r["train_marginal"]) for r in records)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert np.isfinite(summary["test_loss"]) and 0.0 <= summary["probe_accuracy"] <= 1.0  # the rings are labels
