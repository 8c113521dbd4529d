"""Each command imports only what it runs: the help, the schema and a rejected config need neither
torch, JAX nor scikit-learn; the NumPyro backend trains without torch (and scikit-learn), the Pyro
backend without JAX; a NumPyro run whose programs an earlier run stored needs neither NumPyro nor flax.
A package that imports its names when first used says, as a module does, which name it does not have.

Each case runs in a fresh interpreter (a test process has imported everything already) and reports
the heavy packages in ``sys.modules`` when the command is done.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HEAVY = ("torch", "pyro", "jax", "numpyro", "flax", "sklearn", "scipy")
ROOT = Path(__file__).parents[1]

TINY = {
    "data": {"kind": "strategies", "num_examples": 120, "horizon": 4, "num_strategies": 3},
    "model": {"latent": "discrete", "latent_size": 4, "hidden": 8},
    "train": {"steps": 4, "batch_size": 16, "eval_every": 2, "eval_examples": 30},
}

SCRIPT = """
import json, sys
from infovae.cli import main
try:
    main(sys.argv[2:])
except SystemExit as done:
    code = done.code
print(json.dumps({"code": code, "loaded": [m for m in json.loads(sys.argv[1]) if m in sys.modules]}))
"""


def imported(*argv, cwd, env=None):
    """The exit code of ``infovae ARGV`` in a fresh interpreter (``env``: variables to set), and the
    heavy packages it imported."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(HEAVY), *map(str, argv)],
        capture_output=True, text=True, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    return result["code"], set(result["loaded"])


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["schema"]])
def test_help_and_schema_import_no_framework(argv, tmp_path):
    code, loaded = imported(*argv, cwd=tmp_path)
    assert code == 0 and loaded == set()


def test_a_rejected_config_imports_no_framework(tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "stepz": 3}}))
    code, loaded = imported("train", tmp_path / "bad.yaml", cwd=tmp_path)
    assert code == 2 and loaded == set()


DIGITS = {**TINY, "data": {"kind": "digits"}, "model": {**TINY["model"], "latent": "gaussian"}}


@pytest.mark.parametrize(
    "backend, framework, others, config",
    # The NumPyro backend's diagnostics run on the device: scikit-learn is the Pyro backend's. The
    # digits are read from scikit-learn's bundled file without importing scikit-learn.
    [
        ("pyro", "torch", {"jax", "numpyro", "flax"}, TINY),
        ("numpyro", "jax", {"torch", "pyro", "sklearn"}, TINY),
        ("numpyro", "jax", {"torch", "pyro", "sklearn"}, DIGITS),
    ],
)
def test_a_backend_trains_without_the_other_framework(backend, framework, others, config, tmp_path):
    pytest.importorskip(framework)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**config, "backend": backend}))
    code, loaded = imported("train", tmp_path / "tiny.yaml", "--out", tmp_path / "run", "--no-progress", cwd=tmp_path)
    assert code == 0 and framework in loaded
    assert not loaded & others


def test_a_numpyro_run_of_stored_programs_imports_neither_numpyro_nor_flax(tmp_path):
    """The second run of a config finds every program stored by the first (its compilation cache), so it
    traces nothing and needs neither the NumPyro model, guide and ELBO nor the libraries they import."""
    pytest.importorskip("jax")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**DIGITS, "backend": "numpyro"}))
    # JAX's own variable too: a cache folder the user set for JAX is the one a run uses.
    env = {"INFOVAE_JAX_CACHE": str(tmp_path / "cache"), "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "cache")}
    runs = [
        imported("train", tmp_path / "tiny.yaml", "--out", tmp_path / f"run{i}", "--no-progress", cwd=tmp_path, env=env)
        for i in range(2)
    ]
    assert [code for code, _ in runs] == [0, 0]
    assert {"numpyro", "flax"} <= runs[0][1]
    assert not runs[1][1] & {"numpyro", "flax", "torch", "sklearn"}
    first, second = (json.loads((tmp_path / f"run{i}" / "summary.json").read_text()) for i in range(2))
    assert {k: v for k, v in first.items() if "second" not in k} == {k: v for k, v in second.items() if "second" not in k}


HIDING = """
import importlib.util, json, sys
find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: None if name == sys.argv[1] else find_spec(name, package)
from infovae.cli import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize("library", ["numpyro", "flax"])
def test_a_missing_numpyro_library_is_named_before_the_run_folder_is_made(library, tmp_path):
    """The NumPyro backend imports NumPyro and flax only to trace; a missing one is still named when the
    backend is loaded, with the extra that installs it, and no run folder is left behind."""
    pytest.importorskip("jax")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**DIGITS, "backend": "numpyro"}))
    done = subprocess.run(
        [sys.executable, "-c", HIDING, library, "train", tmp_path / "tiny.yaml", "--out", tmp_path / "run"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == f"infovae: error: the numpyro backend needs {library}: pip install 'infovae[numpyro]'"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("package", ["infovae.training", "infovae.sweeps"])
def test_a_lazy_package_names_what_it_does_not_have_as_a_module_does(package):
    import importlib

    module = importlib.import_module(package)
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match=f"^module '{package}' has no attribute 'no_such_name'$") as raised:
        module.no_such_name  # noqa: B018
    assert raised.value.name == "no_such_name"
    assert not hasattr(module, "no_such_name")


def test_a_numpyro_that_is_there_but_fails_to_import_is_named_in_one_line(tmp_path):
    """A broken install passes the backend's look for the library and fails when a program is first
    traced: one line that names it and how to reinstall, exit code 2, no traceback."""
    pytest.importorskip("jax")
    broken = tmp_path / "site" / "numpyro"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('cannot import name jax_core from jax')\n")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**DIGITS, "backend": "numpyro"}))
    done = subprocess.run(
        [sys.executable, "-m", "infovae", "train", tmp_path / "tiny.yaml", "--out", tmp_path / "run", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        # An empty compilation cache, so that the programs are traced.
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)]),
             "INFOVAE_JAX_CACHE": str(tmp_path / "cache"), "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "infovae: error: the numpyro backend's libraries fail to import (cannot import name jax_core from jax): "
        "pip install --force-reinstall 'infovae[numpyro]'"
    )
