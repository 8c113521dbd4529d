"""The bad-input matrix's machinery: the tiny config every case starts from, the workspace a case builds
its input in, the registry of cases (:func:`bad_input`) and the one-line check (the package docstring
says how to add a case)."""

import hashlib
import io
import json
import os
import pickle
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from infovae.files import FolderLock

TINY = {
    "data": {"kind": "strategies", "num_examples": 120, "horizon": 3, "num_strategies": 2, "similar_pairs": 0},
    "model": {"latent": "discrete", "latent_size": 3, "hidden": 8},
    "objective": {"beta": 1.0, "marginal": "kl"},
    "train": {"steps": 4, "batch_size": 16, "eval_every": 2, "eval_examples": 20},
}
# Every subprocess: one thread each (the machine is shared), JAX on the CPU.
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "JAX_PLATFORMS": "cpu",
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
}
ONE_LINE_ERROR = "infovae: error: "
LOCK = ".lock"


def copy_run(runs, dest, finished=True, name="finished"):
    """A copy of a trained run at ``dest``; unless ``finished``, one that stopped at its last checkpoint
    (step 4) with two steps to go, as a run interrupted there looks."""
    shutil.copytree(runs / name, dest, ignore=shutil.ignore_patterns(LOCK))
    if not finished:
        (dest / "summary.json").unlink()
        config = yaml.safe_load((dest / "config.yaml").read_text())
        config["train"]["steps"] = 6
        (dest / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def snapshot(path):
    """What ``path`` holds, to compare before and after: ``None`` if nothing, else every file's hash."""
    path = Path(path)
    if not path.exists():
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        str(p.relative_to(path)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.name != LOCK
    }


class _Evil:
    """Unpickling this writes ``marker``: what a crafted pickle can do (anything)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code from a pickle ran')",))


def npy_claiming(shape, dtype="<f4"):
    """An ``.npy`` file whose header claims ``shape`` but that holds 64 bytes."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (64 - (10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 64


def npz_bytes(meta=None, **arrays):
    """An ``.npz`` archive as bytes: NumPy arrays (pickled where they are object arrays) or raw ``.npy`` bytes."""
    buffer = io.BytesIO()
    members = ({"__tree__": np.array(meta)} if meta is not None else {}) | arrays
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, value in members.items():
            if isinstance(value, bytes):
                archive.writestr(f"{name}.npy", value)
            else:
                member = io.BytesIO()
                np.save(member, value, allow_pickle=True)
                archive.writestr(f"{name}.npy", member.getvalue())
    return buffer.getvalue()


def checkpoint_meta(tree):
    return json.dumps({"format": "infovae-checkpoint", "version": 2, "tree": tree})


# -- the workspace of one case ----------------------------------------------------------------------


class Workspace:
    """A case's own folder and the things a case makes there (see the module docstring)."""

    def __init__(self, root, runs):
        self.dir, self._runs = Path(root), runs
        self.out = self.dir / "out"  # the new folder a refused command must not leave behind
        self.marker = self.dir / "CODE-RAN"
        self._watched, self._locks = [self.out, self.dir / "runs"], []

    def text(self, name, text):
        path = self.dir / name
        path.write_text(text)
        return path

    def binary(self, name, data):
        path = self.dir / name
        path.write_bytes(data)
        return path

    def config(self, raw=None, name="c.yaml", **sections):
        raw = {**(TINY if raw is None else raw), **sections}
        return self.text(name, yaml.safe_dump(raw))

    def npz_config(self, likelihood="gaussian", **arrays):
        """A config whose data is an ``.npz`` made of ``arrays`` (or raw bytes, under ``file=``)."""
        path = self.dir / "data.npz"
        if "file" in arrays:
            path.write_bytes(arrays["file"])
        else:
            path.write_bytes(npz_bytes(**arrays))
        return self.text("c.yaml", f"data: {{kind: npz, path: {path}}}\nmodel: {{likelihood: {likelihood}}}\n")

    def run(self, name="run", finished=False, source="finished"):
        """A copy of a trained run (see :func:`copy_run`), watched: it must come out unchanged."""
        return self.watch(copy_run(self._runs, self.dir / name, finished, source))

    def sweep_file(self, name="s.yaml", **extra):
        return self.text(name, yaml.safe_dump({"base": TINY, "grid": {"objective.beta": [1.0, 0.5]}, "seeds": [0], **extra}))

    def sweep_dir(self, sweep_file, name="sweep"):
        """A sweep folder prepared for ``sweep_file`` (its trials not run yet), watched."""
        from infovae.sweeps.spec import load_sweep
        from infovae.sweeps.sweep import _prepare

        folder = self.dir / name
        folder.mkdir()
        _prepare(load_sweep(sweep_file), folder)
        return self.watch(folder)

    def folder(self, name):
        """An empty folder, watched."""
        (self.dir / name).mkdir()
        return self.watch(self.dir / name)

    def watch(self, path):
        self._watched.append(Path(path))
        return Path(path)

    def hold_lock(self, folder, what="run folder"):
        """Hold ``folder``'s lock in this (the test's) process while the command runs."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._locks.append(FolderLock(folder, what).acquire())
        return self.watch(folder)

    def release(self):
        for lock in self._locks:
            lock.release()

    def evil_pickle(self):
        return pickle.dumps({"step": _Evil(self.marker)})

    def evil_object_array(self):
        return np.array([_Evil(self.marker)], dtype=object)

    def snapshots(self):
        return {str(p): snapshot(p) for p in self._watched}


@dataclass(frozen=True)
class Case:
    prepare: object  # (Workspace) -> argv after "infovae"
    fragment: str  # what the one line must contain
    xfail: str | None = None  # "file: function: what happens instead", for a promise not yet kept
    absent: str | None = None  # what the line must not say


BAD_INPUT = {}


def bad_input(case_id, fragment, xfail=None, absent=None):
    """Register a command-line case (module docstring)."""

    def register(prepare):
        assert case_id not in BAD_INPUT, case_id
        BAD_INPUT[case_id] = Case(prepare, fragment, xfail, absent)
        return prepare

    return register


def _unwritable(w):
    """A folder path whose making is refused for lack of permission."""
    if os.geteuid() != 0:
        parent = w.dir / "read-only"
        parent.mkdir()
        parent.chmod(0o500)
        return parent / "run"
    if Path("/sys/kernel").is_dir():  # as root, permissions do not stop mkdir; sysfs still does
        return Path("/sys/infovae-faults-test/run")
    pytest.skip("running as root without /sys: no folder refuses to be written")


def _refusing_mkdir(w):
    """A path where mkdir fails with an errno other than 'exists', 'not a folder' or 'permission'."""
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    return Path("/proc/infovae-faults-test/run")


LONG_NAME = "y" * 300


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def assert_one_line_error(result, fragment=""):
    """Exit code 2 and exactly one line on stderr, ``infovae: error: ...`` containing ``fragment``."""
    shown = f"exit code {result.code}; stderr:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr + result.stdout, shown
    assert result.code == 2, shown
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ONE_LINE_ERROR), shown
    assert fragment in lines[0], shown
