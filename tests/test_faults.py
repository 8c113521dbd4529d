"""Fault injection: bad input, hostile files, two writers, Ctrl-C and kill -9, tried as a hostile but fair
user would try them. Each case states what the library promises:

- bad input is exactly one line on stderr, ``infovae: error: ...``, with exit code 2 and no traceback;
  it leaves no partial folder behind and never changes an existing run or sweep folder;
- nothing the library reads (checkpoints, splits, data, config and sweep files) can run code;
- one writer per run or sweep folder; a second is refused on one line and the first loses nothing;
- Ctrl-C stops a sweep within seconds with its results written and nothing lost, and a rerun resumes.

How to add a case
-----------------
**Bad input on the command line** (the common case): write a function that builds the input inside the
case's own :class:`Workspace` ``w`` and returns the command line after ``infovae``; register it with
:func:`bad_input`, giving the fragment the one-line message must contain::

    @bad_input("config-is-a-list", "a config must be a mapping")
    def _(w):
        return ["train", w.text("c.yaml", "[1, 2]\\n"), "--out", w.out]

The table test then checks every promise above: ``w.out`` (and ``runs/`` in the case's folder) must
not exist afterwards, every folder made with :meth:`Workspace.run`, :meth:`Workspace.sweep_dir` or
passed to :meth:`Workspace.watch` must be unchanged file for file (``.lock`` aside), and
:attr:`Workspace.marker` (what :meth:`Workspace.evil_pickle` writes when unpickled) must not exist.
Where the library does not keep its promise yet, in code this module does not own, register the case
with ``xfail="file: function: what happens instead"``: the test is then a strict xfail, which reports
an unexpected pass as a failure once the code is fixed, the signal to delete the ``xfail``.

Each case runs twice: ``forked`` (the default run) runs it through the command line's entry point
(``infovae.cli.main``, what ``python -m infovae`` calls) in a process of its own, forked from one that
imported the library once, all cases at once, so that the whole table costs about one start of the
library; ``python-m`` (marked slow) runs it as ``[sys.executable, "-m", "infovae", ...]``, exactly as
a user would.

**Anything else** (a race, a signal, an objective's numerics) is a plain test below; mark it
``@pytest.mark.slow`` if it takes more than about five seconds.
"""

import hashlib
import io
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from infovae.errors import RunDirError, UserInputError
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


# -- runs the cases start from ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished tiny runs, trained once for the module: ``finished`` (hidden 8) and ``wide``
    (hidden 16, whose checkpoint has other shapes)."""
    from infovae.training.config import parse_config
    from infovae.training.loop import start_run

    root = tmp_path_factory.mktemp("runs")
    start_run(parse_config(TINY), root / "finished", progress=False)
    start_run(parse_config({**TINY, "model": {**TINY["model"], "hidden": 16}}), root / "wide", progress=False)
    return root


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

# -- the config file -----------------------------------------------------------------------------------


@bad_input("config-missing", "does not exist")
def _(w):
    return ["train", w.dir / "nope.yaml", "--out", w.out]


@bad_input("config-is-a-directory", "is a directory, not a YAML file")
def _(w):
    return ["train", w.dir, "--out", w.out]


@bad_input("config-is-a-list", "a config must be a mapping")
def _(w):
    return ["train", w.text("c.yaml", "[1, 2]\n"), "--out", w.out]


@bad_input("config-empty", "the config file is empty")
def _(w):
    return ["train", w.text("c.yaml", ""), "--out", w.out]


ALIAS_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, "a", "b", "c", "d", "e", "f"], "abcdefg")
)


@bad_input("config-alias-bomb", "expands to more than")
def _(w):
    assert len(ALIAS_BOMB) < 400
    return ["train", w.text("c.yaml", ALIAS_BOMB), "--out", w.out]


@bad_input("config-nested-deeply", "nested too deeply")
def _(w):
    return ["train", w.text("c.yaml", "[" * 100_000), "--out", w.out]


@bad_input("config-integer-of-5000-digits", "cannot be read")
def _(w):
    return ["train", w.text("c.yaml", "train: {steps: " + "9" * 5000 + "}\n"), "--out", w.out]


@bad_input("config-larger-than-a-megabyte", "is too large")
def _(w):
    return ["train", w.text("c.yaml", "# padding\n" * 200_000), "--out", w.out]


@bad_input("config-not-text", "not a text file")
def _(w):
    return ["train", w.binary("c.yaml", b"\xff\xfe\x00\x81 binary"), "--out", w.out]


@bad_input("config-name-too-long", "File name too long")
def _(w):
    return ["train", w.dir / f"{LONG_NAME}.yaml", "--out", w.out]


@bad_input("config-python-tag", "not valid YAML")
def _(w):
    return ["train", w.text("c.yaml", f"model: !!python/object/apply:os.system ['touch {w.marker}']\n"), "--out", w.out]


@bad_input("override-integer-of-5000-digits", "cannot be read")
def _(w):
    return ["train", w.config(), "train.steps=" + "9" * 5000, "--out", w.out]


@bad_input("override-without-equals", "must look like key.path=value")
def _(w):
    return ["train", w.config(), "train.steps", "--out", w.out]


# -- sizes and data ------------------------------------------------------------------------------------


@bad_input("hidden-1e9", "model.hidden")
def _(w):
    return ["train", w.config(), "model.hidden=1000000000", "--out", w.out]


@bad_input("parameters-too-many", "parameters")
def _(w):
    return ["train", w.config(), "model.hidden=1000000", "--out", w.out]


@bad_input("npz-class-id-1e9", "classes per factor")
def _(w):
    return ["train", w.npz_config("categorical", x=np.zeros((50, 2)), y=np.full((50, 1), 1e9)), "--out", w.out]


@bad_input("npz-1e300-overflows-float32", "too large for float32")
def _(w):
    return ["train", w.npz_config(x=np.full((50, 2), 1e300), y=np.zeros((50, 1))), "--out", w.out]


@bad_input("npz-object-array-is-a-pickle", "cannot be read")
def _(w):
    return ["train", w.npz_config(x=w.evil_object_array(), y=np.zeros((1, 1))), "--out", w.out]


@bad_input("npz-file-is-a-pickle", "not a readable .npz file")
def _(w):
    return ["train", w.npz_config(file=w.evil_pickle()), "--out", w.out]


@bad_input(
    "npz-header-claims-terabytes",
    "data.npz",
)
def _(w):
    return ["train", w.npz_config(file=npz_bytes(y=npy_claiming((10**12, 1)))), "--out", w.out]


# -- the output folder of train --------------------------------------------------------------------------


@bad_input("out-is-a-file", "is a file")
def _(w):
    w.text("out", "a file")
    return ["train", w.config(), "--out", w.watch(w.out)]


@bad_input("out-under-a-file", "a part of its path is a file")
def _(w):
    return ["train", w.config(), "--out", w.watch(w.text("file", "a file")) / "run"]


@bad_input("out-unwritable", "cannot make the folder")
def _(w):
    return ["train", w.config(), "--out", w.watch(_unwritable(w))]


@bad_input("out-name-too-long", "File name too long")
def _(w):
    return ["train", w.config(), "--out", w.dir / LONG_NAME]


@bad_input(
    "out-mkdir-refused",
    "cannot make the folder",
)
def _(w):
    return ["train", w.config(), "--out", w.watch(_refusing_mkdir(w))]


@bad_input("out-holds-a-finished-run", "already exists")
def _(w):
    return ["train", w.config(), "--out", w.run(finished=True)]


@bad_input("out-in-use", "is in use by another process")
def _(w):
    return ["train", w.config(), "--out", w.hold_lock(w.out)]


# -- sweeps ---------------------------------------------------------------------------------------


@bad_input("sweep-file-empty", "a sweep file must be a mapping")
def _(w):
    return ["sweep", w.text("s.yaml", ""), "--out", w.out]


@bad_input("sweep-file-alias-bomb", "expands to more than")
def _(w):
    return ["sweep", w.text("s.yaml", ALIAS_BOMB), "--out", w.out]


GRID_BOMB = yaml.safe_dump({"base": TINY, "grid": {f"objective.k{i}": list(range(10)) for i in range(10)}})


@bad_input("sweep-grid-of-10-keys-of-10-values", "a sweep runs at most")
def _(w):
    return ["sweep", w.text("s.yaml", GRID_BOMB), "--out", w.out]


@bad_input("sweep-random-num-trials-1e9", "a sweep runs at most")
def _(w):
    return [
        "sweep",
        w.sweep_file(random={"num_trials": 10**9, "space": {"objective.jsd_weight": {"uniform": [0, 1]}}}),
        "--out",
        w.out,
    ]


@bad_input("sweep-seed-of-5000-digits", "cannot be read")
def _(w):
    return ["sweep", w.text("s.yaml", "seeds: [" + "9" * 5000 + "]\n"), "--out", w.out]


@bad_input("sweep-out-is-a-file", "is a file")
def _(w):
    w.text("out", "a file")
    return ["sweep", w.sweep_file(), "--out", w.watch(w.out)]


@bad_input("sweep-out-under-a-file", "cannot make the sweep folder")
def _(w):
    return ["sweep", w.sweep_file(), "--out", w.watch(w.text("file", "a file")) / "sweep"]


@bad_input("sweep-out-unwritable", "cannot make the sweep folder")
def _(w):
    return ["sweep", w.sweep_file(), "--out", w.watch(_unwritable(w))]


@bad_input("sweep-out-mkdir-refused", "cannot make the sweep folder")
def _(w):
    return ["sweep", w.sweep_file(), "--out", w.watch(_refusing_mkdir(w))]


@bad_input("sweep-out-name-too-long", "File name too long")
def _(w):
    return ["sweep", w.sweep_file(), "--out", w.dir / LONG_NAME]


@bad_input("sweep-out-in-use", "is in use by another process")
def _(w):
    return ["sweep", w.sweep_file(), "--out", w.hold_lock(w.out, "sweep folder")]


@bad_input("sweep-trial-json-damaged", "is damaged")
def _(w):
    sweep = w.sweep_dir(w.sweep_file())
    next(sweep.glob("trials/*/trial.json")).write_text("garbage")
    return ["sweep", w.dir / "s.yaml", "--out", sweep]


# -- checkpoints that could run code ---------------------------------------------------------------------


def _legacy_pickle(w, finished):
    run = w.run(finished=finished)
    (run / "checkpoint.npz").unlink()
    (run / "checkpoint.pkl").write_bytes(w.evil_pickle())
    return run


def _object_array_npz(w, finished):
    run = w.run(finished=finished)
    (run / "checkpoint.npz").write_bytes(npz_bytes(checkpoint_meta({"array": 0}), a0=w.evil_object_array()))
    return run


def _pickle_named_npz(w, finished):
    run = w.run(finished=finished)
    (run / "checkpoint.npz").write_bytes(w.evil_pickle())
    return run


EVIL_CHECKPOINTS = {
    "legacy-pickle": (_legacy_pickle, "infovae convert-checkpoint"),
    "npz-object-array": (_object_array_npz, "cannot be read"),
    "pickle-named-npz": (_pickle_named_npz, "cannot be read"),
}

for _kind, (_make, _fragment) in EVIL_CHECKPOINTS.items():
    bad_input(f"resume-{_kind}", _fragment)(lambda w, make=_make: ["train", "--resume", make(w, finished=False)])
    bad_input(f"report-{_kind}", _fragment)(lambda w, make=_make: ["report", make(w, finished=True)])


@bad_input("convert-checkpoint-without-trust", "pass --trust")
def _(w):
    return ["convert-checkpoint", _legacy_pickle(w, finished=False)]


@bad_input("convert-checkpoint-damaged-pickle", "cannot be unpickled")
def _(w):
    run = w.run()
    (run / "checkpoint.pkl").write_bytes(b"\x80\x04garbage")
    return ["convert-checkpoint", run, "--trust"]


# -- damaged or foreign run folders ----------------------------------------------------------------------


def _damaged(change, finished=False):
    def prepare(w):
        run = w.run(finished=finished)
        change(w, run)
        return ["train", "--resume", run]

    return prepare


def _write(name, data):
    return lambda w, run: _changed(run, name, data)


def _changed(run, name, data):
    (run / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return run


def _edit_checkpoint(**changes):
    def change(w, run):
        from infovae.training.checkpoint import load_checkpoint, save_checkpoint

        save_checkpoint(run / "checkpoint.npz", {**load_checkpoint(run / "checkpoint.npz"), **changes})

    return change


def _deep_tree(w, run):
    (run / "checkpoint.npz").write_bytes(
        npz_bytes(checkpoint_meta(None).replace("null", '{"list": [' * 100_000 + "1" + "]}" * 100_000))
    )


bad_input("resume-checkpoint-other-shapes", "does not fit this run's model")(
    _damaged(lambda w, run: shutil.copy(w._runs / "wide" / "checkpoint.npz", run / "checkpoint.npz"))
)
bad_input("resume-checkpoint-wrong-structure", "wrong structure")(
    _damaged(lambda w, run: (run / "checkpoint.npz").write_bytes(npz_bytes(checkpoint_meta({"dict": {"step": 3}}))))
)
bad_input("resume-checkpoint-other-version", "format version")(
    _damaged(
        lambda w, run: (run / "checkpoint.npz").write_bytes(
            npz_bytes(json.dumps({"format": "infovae-checkpoint", "version": 99, "tree": None}))
        )
    )
)
bad_input("resume-checkpoint-truncated", "cannot be read")(
    _damaged(lambda w, run: (run / "checkpoint.npz").write_bytes((run / "checkpoint.npz").read_bytes()[:300]))
)
bad_input("resume-checkpoint-nested-deeply", "nested too deeply")(_damaged(_deep_tree))
bad_input("resume-checkpoint-claims-terabytes", "too large for memory")(
    _damaged(
        lambda w, run: (run / "checkpoint.npz").write_bytes(npz_bytes(checkpoint_meta({"array": 0}), a0=npy_claiming((10**12,))))
    )
)
bad_input(
    "resume-checkpoint-step-infinite",
    "checkpoint",
)(_damaged(_edit_checkpoint(step=math.inf)))
bad_input("resume-checkpoint-array-index-infinite", "cannot be read")(
    _damaged(lambda w, run: (run / "checkpoint.npz").write_bytes(npz_bytes(checkpoint_meta({"array": math.inf}))))
)
bad_input("resume-splits-garbage", "not a valid splits file", absent="pickle")(_damaged(_write("splits.npz", b"garbage " * 40)))
bad_input("resume-splits-a-pickle", "not a valid splits file")(
    _damaged(lambda w, run: (run / "splits.npz").write_bytes(w.evil_pickle()))
)
bad_input(
    "resume-splits-claim-terabytes",
    "splits.npz",
)(
    _damaged(
        lambda w, run: (run / "splits.npz").write_bytes(
            npz_bytes(train=npy_claiming((10**12,), "<i8"), val=np.arange(3), test=np.arange(3))
        )
    )
)
bad_input("resume-config-invalid", "is not a valid run config")(
    _damaged(_write("config.yaml", "model: {hidden: -1, latent_size: 0}\ntrain: {steps: x, batch_size: y}\nfoo: 1\n"))
)
bad_input(
    "resume-config-not-text",
    "config.yaml",
)(_damaged(_write("config.yaml", b"\xff\xfe\x00\x81 binary")))
bad_input("resume-metrics-damaged-mid-file", "is not JSON")(
    _damaged(lambda w, run: (run / "metrics.jsonl").write_text('{"step": 2, "lo\n' + (run / "metrics.jsonl").read_text()))
)
bad_input("resume-metrics-line-not-an-object", "is not a JSON object")(_damaged(_write("metrics.jsonl", "[1, 2]\n")))
bad_input(
    "resume-metrics-line-without-step",
    "metrics.jsonl",
)(_damaged(_write("metrics.jsonl", '{"loss": 1.0}\n')))
bad_input("resume-finished-run", "has finished already")(lambda w: ["train", "--resume", w.run(finished=True)])
bad_input("resume-not-a-run", "holds no run to resume")(lambda w: ["train", "--resume", w.folder("empty")])
bad_input("resume-a-file", "is a file")(lambda w: ["train", "--resume", w.watch(w.text("file", "a file"))])
bad_input("resume-in-use", "is in use by another process")(lambda w: ["train", "--resume", w.hold_lock(w.run())])
bad_input(
    "report-summary-not-an-object",
    "summary.json",
)(lambda w: ["report", _changed(w.run(finished=True), "summary.json", "[1, 2]")])
bad_input("report-neither-run-nor-sweep", "neither a run folder")(lambda w: ["report", w.watch(w.dir / "empty")])


# -- running the table -------------------------------------------------------------------------------

# Imports the library, then reads a JSON list of jobs on stdin and runs each command line through
# infovae.cli.main in a child forked from itself (module docstring); prints the exit codes.
_FORKED = r"""
import json, os, sys, traceback
from infovae.cli import main
import infovae.api, infovae.reports, infovae.sweeps.sweep, infovae.training.loop, infovae.training.pyro_backend
import torch
torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo: seconds
jobs = json.loads(sys.stdin.read())

def child(job):
    os.chdir(job["cwd"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, name in ((1, job["stdout"]), (2, job["stderr"])):
        handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, fd)
    code = 1
    try:
        main(job["argv"])
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

codes, running, waiting = [None] * len(jobs), {}, list(enumerate(jobs))
while waiting or running:
    while waiting and len(running) < 2 * (os.cpu_count() or 1):
        index, job = waiting.pop(0)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(job)
        running[pid] = index
    pid, status = os.wait()
    codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
print(json.dumps(codes))
"""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def _prepare_case(case_id, root, runs):
    w = Workspace(root, runs)
    argv = [str(a) for a in BAD_INPUT[case_id].prepare(w)]
    return w, argv, w.snapshots()


def _start_forked():
    """The process that forks the cases; it imports the library while the cases are prepared."""
    return subprocess.Popen(
        [sys.executable, "-c", _FORKED],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
    )


def _run_forked(process, jobs, timeout=300):
    try:
        stdout, stderr = process.communicate(json.dumps(jobs), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def forked_results(request, tmp_path_factory):
    """Every selected case of the table, prepared, run at once through forked processes, and checked
    against its own workspace: case id -> (workspace, argv, snapshots before, Result) or the exception
    its preparation raised (a skip, say)."""
    wanted = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module
        and getattr(item, "originalname", "") == "test_bad_input"
        and item.callspec.params.get("runner") == "forked"
    ]
    process = _start_forked()
    runs = request.getfixturevalue("runs")
    prepared, jobs = {}, []
    for case_id in dict.fromkeys(wanted):
        root = tmp_path_factory.mktemp(case_id)
        try:
            w, argv, before = _prepare_case(case_id, root, runs)
        except BaseException as error:  # noqa: BLE001 (a skip or a failure of that case alone)
            prepared[case_id] = error
            continue
        prepared[case_id] = (w, argv, before)
        jobs.append(
            {"id": case_id, "argv": argv, "cwd": str(root), "stdout": str(root / ".stdout"), "stderr": str(root / ".stderr")}
        )
    try:
        codes = _run_forked(process, jobs)
    finally:
        for entry in prepared.values():
            if not isinstance(entry, BaseException):
                entry[0].release()
    for job, code in zip(jobs, codes):
        w, argv, before = prepared[job["id"]]
        prepared[job["id"]] = (w, argv, before, Result(code, Path(job["stdout"]).read_text(), Path(job["stderr"]).read_text()))
    return prepared


def _run_python_m(argv, cwd, timeout=300):
    process = subprocess.run(
        [sys.executable, "-m", "infovae", *argv], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=timeout
    )
    return Result(process.returncode, process.stdout, process.stderr)


def assert_one_line_error(result, fragment=""):
    """Exit code 2 and exactly one line on stderr, ``infovae: error: ...`` containing ``fragment``."""
    shown = f"exit code {result.code}; stderr:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr + result.stdout, shown
    assert result.code == 2, shown
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ONE_LINE_ERROR), shown
    assert fragment in lines[0], shown


def _table():
    for case_id, case in BAD_INPUT.items():
        marks = [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []
        yield pytest.param(case_id, marks=marks, id=case_id)


@pytest.mark.parametrize("runner", ["forked", pytest.param("python-m", marks=pytest.mark.slow)])
@pytest.mark.parametrize("case", list(_table()))
def test_bad_input(case, runner, request, tmp_path):
    """Bad input: one line, exit 2, no traceback, no partial folder, existing folders unchanged, no code run."""
    if runner == "forked":
        entry = request.getfixturevalue("forked_results")[case]
        if isinstance(entry, BaseException):
            raise entry
        w, argv, before, result = entry
    else:
        w, argv, before = _prepare_case(case, tmp_path, request.getfixturevalue("runs"))
        try:
            result = _run_python_m(argv, tmp_path)
        finally:
            w.release()
    assert_one_line_error(result, BAD_INPUT[case].fragment)
    if BAD_INPUT[case].absent:
        assert BAD_INPUT[case].absent not in result.stderr
    assert w.snapshots() == before, "a folder was left behind or changed"
    assert not w.marker.exists(), "code from a pickle ran"


def test_the_alias_bomb_is_small_and_fails_fast(tmp_path):
    """(6) The 300-byte YAML alias bomb and its cousins (brackets a million deep, an integer of 5000
    digits, a sweep grid of 10**10 trials) are refused in well under 2 s, with one line."""
    from infovae.errors import ConfigError
    from infovae.files import load_yaml
    from infovae.sweeps.spec import load_sweep

    cases = {"bomb": ALIAS_BOMB, "deep": "[" * 1_000_000, "digits": "seeds: [" + "9" * 5000 + "]\n"}
    for name, text in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        for load in (load_yaml, load_sweep):
            started = time.perf_counter()
            with pytest.raises(ConfigError) as error:
                load(path)
            assert time.perf_counter() - started < 2.0, (name, load.__name__)
            assert "\n" not in str(error.value)
    (tmp_path / "grid.yaml").write_text(GRID_BOMB)  # a grid multiplies as aliases do: 10**10 trials
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="a sweep runs at most"):
        load_sweep(tmp_path / "grid.yaml")
    assert time.perf_counter() - started < 2.0


# -- files the library reads and writes -----------------------------------------------------------------


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_on_resume_and_report(runs, tmp_path):
    """(7) A crash mid-append leaves half a line; --resume and the readers drop it with a warning."""
    from infovae.training.loop import resume_run
    from infovae.training.runs import open_run

    run = copy_run(runs, tmp_path / "run", finished=False)
    whole = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(whole + '{"step": 6, "train_loss": 1.2')
    with pytest.warns(UserWarning, match="cut short by a crash"):
        assert [r["step"] for r in open_run(run).records] == [2, 4]
    with pytest.warns(UserWarning, match="cut short by a crash"):
        summary = resume_run(run, progress=False)
    assert summary["steps"] == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the resumed run rewrote the file whole
        records = open_run(run).records
    assert [r["step"] for r in records] == [2, 4, 6]
    assert (run / "metrics.jsonl").read_text().startswith(whole)


def test_temporary_files_left_by_a_kill_are_removed_on_resume(runs, tmp_path):
    """(8) A process killed mid-write leaves ``.NAME.XXXXXXXX.tmp``; resuming removes them."""
    from infovae.training.loop import resume_run

    run = copy_run(runs, tmp_path / "run", finished=False)
    litter = [run / ".checkpoint.npz.0badf00d.tmp", run / ".summary.json.deadbeef.tmp"]
    for path in litter:
        path.write_bytes(b"half a file")
    assert resume_run(run, progress=False)["steps"] == 6
    assert not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/tmp/infovae-evil-absolute", "link/evil", ".", "a/.."])
def test_ray_results_cannot_write_outside_their_trial_folder(tmp_path, name):
    """(8) A Ray task's files come back by name; a name that leaves the trial folder is refused."""
    from infovae.sweeps.executors import _unpack

    trial, outside = tmp_path / "trial", tmp_path / "outside"
    trial.mkdir()
    outside.mkdir()
    (trial / "link").symlink_to(outside)
    before = snapshot(tmp_path)
    with pytest.raises(RunDirError, match="refused to write"):
        _unpack({name: b"evil"}, trial)
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/infovae-evil-absolute").exists()


def test_ray_results_inside_their_folder_are_written(tmp_path):
    from infovae.sweeps.executors import _pack, _unpack

    files = {"run/metrics.jsonl": b"{}\n", "outcome.json": b"{}", "run/deeper/x": b"x"}
    _unpack(files, tmp_path)
    assert _pack(tmp_path) == files


def test_batch_size_larger_than_the_data_is_refused_or_clamped_and_recorded(tmp_path):
    """(8) batch_size above the training examples: either one line of error, or the batch used is the
    one config.yaml records (never a silent clamp with the request kept)."""
    from infovae.training.config import parse_config
    from infovae.training.loop import start_run
    from infovae.training.runs import open_run

    config = parse_config({**TINY, "train": {**TINY["train"], "batch_size": 10_000, "steps": 2}})
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            start_run(config, tmp_path / "run", progress=False)
    except UserInputError as error:
        assert "batch_size" in str(error) and "\n" not in str(error)
        assert not (tmp_path / "run").exists()
        return
    run = open_run(tmp_path / "run")
    num_train = len(run.splits.train)
    assert num_train < 10_000
    assert run.config.train.batch_size == num_train
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["batch_size"] == num_train


def test_a_folder_lock_admits_one_writer(tmp_path):
    """(2) The second writer of a folder is refused on one line; the lock is free once released; a lock
    that cannot be made is a one-line error, not a traceback."""
    first = FolderLock(tmp_path, "run folder").acquire()
    with pytest.raises(RunDirError, match="in use by another process"):
        FolderLock(tmp_path, "run folder").acquire()
    first.release()
    FolderLock(tmp_path).acquire().release()
    (tmp_path / "file").write_text("a file")
    with pytest.raises(RunDirError, match="cannot lock"):
        FolderLock(tmp_path / "file" / "run").acquire()


def test_the_python_api_refuses_an_out_that_is_a_file(tmp_path):
    from infovae.training.config import parse_config
    from infovae.training.loop import start_run

    (tmp_path / "file").write_text("a file")
    with pytest.raises(RunDirError, match="is a file"):
        start_run(parse_config(TINY), tmp_path / "file", progress=False)


# -- sweep bookkeeping -------------------------------------------------------------------------------


def _trial_dir(root, runs, config=None, finished=False, outcome=None):
    trial = root / "trial"
    trial.mkdir()
    (trial / "trial.json").write_text(json.dumps({"config": config or TINY, "overrides": {}, "seed": 0}))
    copy_run(runs, trial / "run", finished=finished)
    if outcome is not None:
        (trial / "outcome.json").write_text(json.dumps(outcome) if not isinstance(outcome, str) else outcome)
    return trial


def test_a_trial_with_a_summary_is_never_recorded_failed(runs, tmp_path):
    """(3) A trial process that wrote summary.json and then crashed or was stopped finished all the same."""
    from infovae.sweeps.executors import settle

    trial = _trial_dir(tmp_path, runs, finished=True, outcome={"status": "failed", "error": "killed", "summary": {}})
    for stopping in (False, True):
        outcome = settle(trial, "exit code -9", stopping)
        assert outcome["status"] == "ok" and outcome["summary"]["steps"] == 4


def test_a_trial_that_ended_without_an_outcome_is_interrupted_when_the_sweep_stops(runs, tmp_path):
    from infovae.sweeps.executors import settle

    trial = _trial_dir(tmp_path, runs)
    assert settle(trial, "exit code -15", stopping=True)["status"] == "interrupted"
    (trial / "outcome.json").unlink()
    assert settle(trial, "exit code -11", stopping=False)["status"] == "failed"


@pytest.mark.parametrize("damaged", ['{"status": 1}', "[1, 2]", '{"status": "ok"}', "{"])
def test_a_damaged_outcome_counts_as_none(runs, tmp_path, damaged):
    """A damaged outcome.json is no outcome: the trial runs (or resumes) again instead of a traceback."""
    from infovae.sweeps.trial import read_outcome

    assert read_outcome(_trial_dir(tmp_path, runs, outcome=damaged)) is None


def test_retry_failed_resumes_a_failed_trial_from_its_checkpoint(runs, tmp_path):
    """(3) --retry-failed runs a failed trial again from its checkpoint: its run folder is kept."""
    from infovae.sweeps.spec import load_sweep
    from infovae.sweeps.sweep import _pending
    from infovae.sweeps.trial import run_trial

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": TINY, "seeds": [0]}))
    spec = load_sweep(sweep)
    out = tmp_path / "sweep"
    (out / "trials").mkdir(parents=True)
    trial = out / "trials" / spec.trials[0].name
    shutil.move(_trial_dir(tmp_path, runs, outcome={"status": "failed", "error": "diverged", "summary": {}}), trial)
    config_inode = (trial / "run" / "config.yaml").stat().st_ino
    assert _pending(spec, out, retry_failed=False) == []
    assert _pending(spec, out, retry_failed=True) == [trial]
    outcome = run_trial(trial)
    assert outcome["status"] == "ok" and outcome["summary"]["steps"] == 6
    assert (trial / "run" / "config.yaml").stat().st_ino == config_inode, "the run folder was made anew"
    assert [json.loads(line)["step"] for line in (trial / "run" / "metrics.jsonl").read_text().splitlines()] == [2, 4, 6]


# -- the objectives' numerics ----------------------------------------------------------------------------


def test_jax_mmd_of_50000_draws_with_random_features_is_finite_under_jit():
    """(9) n(n-1) overflows int32 from n = 46,341; the statistic divides by floats."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from infovae.numpyro.objectives import mmd

    n = 50_000
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 2))
    y = jax.random.normal(jax.random.PRNGKey(1), (n, 2)) + 1.0
    value = jax.jit(lambda x, y, key: mmd(x, y, num_features=16, rng_key=key))(x, y, jax.random.PRNGKey(2))
    assert value.shape == () and math.isfinite(float(value)) and float(value) > 0.1  # the samples differ
    same = jax.jit(lambda x, y, key: mmd(x, y, num_features=16, rng_key=key))(x, x[::-1], jax.random.PRNGKey(2))
    assert abs(float(same)) < 0.01
    # The exact statistic would need 10 GB at this size: trace it only, which is where the overflow was.
    for size in (46_341, 65_536):
        shape = jax.ShapeDtypeStruct((size, 2), jnp.float32)
        assert jax.eval_shape(lambda a, b: mmd(a, b), shape, shape).shape == ()


def test_torch_mmd_of_50000_draws_with_random_features_is_finite():
    import torch

    from infovae.objectives import mmd

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(50_000, 2, generator=generator)
    torch.manual_seed(1)
    assert math.isfinite(mmd(x, x + 1.0, num_features=16).item())


def _one_draw_pyro_pair(W, guard=False):
    """A Gaussian latent whose decoder is written for one draw ``[B, d]``: ``z @ W`` then a reshape to
    ``[B, out]`` (or an assert on the shape), as a user might write it."""
    import pyro
    import pyro.distributions as dist
    import torch

    def decoder(z, B):
        if guard:
            assert z.dim() == 2, "the decoder takes one draw"
        return (z @ W).reshape(B, W.shape[1])

    def model(x, y):
        B = len(x)
        with pyro.plate("data", B):
            z = pyro.sample("z", dist.Normal(torch.zeros(B, W.shape[0]), 1.0).to_event(1))
            pyro.sample("y", dist.Normal(decoder(z, B), 1.0).to_event(1), obs=y)

    def guide(x, y):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(y[:, : W.shape[0]] * 0.5, 0.7).to_event(1))

    return model, guide


def _one_draw_numpyro_pair(W):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model(x, y):
        B = x.shape[0]
        with numpyro.plate("data", B):
            z = numpyro.sample("z", dist.Normal(jnp.zeros((B, W.shape[0])), 1.0).to_event(1))
            numpyro.sample("y", dist.Normal((z @ W).reshape(B, W.shape[1]), 1.0).to_event(1), obs=y)

    def guide(x, y):
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("z", dist.Normal(y[:, : W.shape[0]] * 0.5, 0.7).to_event(1))

    return model, guide


def _check_terms(terms, num_data, beta, marginal_weight, jsd_weight):
    terms = {k: float(v) for k, v in terms.items()}
    assert all(math.isfinite(v) for v in terms.values()), terms
    expected = -(terms["recon"] - beta * terms["kl"] - marginal_weight * terms["marginal"] + jsd_weight * terms["jsd"])
    assert terms["loss"] / num_data == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("options", [{}, {"marginal": "mmd", "marginal_weight": 1.0, "jsd_weight": 0.5, "num_particles": 2}])
def test_pyro_loss_terms_of_a_decoder_written_for_one_draw(options):
    """(9) ``.loss`` works for such a model and so does ``loss_terms`` (the JSD replays once per draw)."""
    import torch

    from infovae.objectives import InfoVAE_ELBO

    torch.manual_seed(0)
    B = 6
    W, x, y = torch.randn(2, 3), torch.randn(B, 1), torch.randn(B, 3)
    model, guide = _one_draw_pyro_pair(W)
    elbo = InfoVAE_ELBO(**options)
    assert math.isfinite(elbo.loss(model, guide, x, y))
    _check_terms(elbo.loss_terms(model, guide, x, y), B, 1.0, options.get("marginal_weight", 0.0), options.get("jsd_weight", 0.0))


def test_numpyro_loss_terms_of_a_decoder_written_for_one_draw():
    """(9) The NumPyro twin, eagerly and under jit (few JSD draws: each is a replay to compile)."""
    jax = pytest.importorskip("jax")
    pytest.importorskip("numpyro")

    from infovae.numpyro.objectives import InfoVAE_ELBO

    B = 6
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    W, x, y = jax.random.normal(keys[0], (2, 3)), jax.random.normal(keys[1], (B, 1)), jax.random.normal(keys[2], (B, 3))
    model, guide = _one_draw_numpyro_pair(W)
    elbo = InfoVAE_ELBO(marginal="mmd", marginal_weight=1.0, jsd_samples=3)
    assert math.isfinite(float(elbo.loss(keys[3], {}, model, guide, x, y)))
    _check_terms(elbo.loss_terms(keys[3], {}, model, guide, x, y), B, 1.0, 1.0, 0.0)
    _check_terms(jax.jit(lambda key: elbo.loss_terms(key, {}, model, guide, x, y))(keys[3]), B, 1.0, 1.0, 0.0)


def test_pyro_loss_terms_of_a_decoder_that_asserts_one_draw():
    import torch

    from infovae.errors import UnsupportedModelError
    from infovae.objectives import InfoVAE_ELBO

    torch.manual_seed(0)
    W, x, y = torch.randn(2, 3), torch.randn(6, 1), torch.randn(6, 3)
    model, guide = _one_draw_pyro_pair(W, guard=True)
    elbo = InfoVAE_ELBO()
    assert math.isfinite(elbo.loss(model, guide, x, y))
    try:
        _check_terms(elbo.loss_terms(model, guide, x, y), 6, 1.0, 0.0, 0.0)
    except UnsupportedModelError:
        pass


# -- whole processes: races, Ctrl-C, kill -9 (slow) --------------------------------------------------------


def _trial_processes(folder):
    """The pids of live trial (or vectorised chunk) processes working in ``folder`` (Linux: from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        worker = b"infovae.sweeps.trial" in argv or b"infovae.sweeps.vectorized" in argv
        if worker and any(str(folder).encode() in a for a in argv) and "zombie" not in state:
            found.append(int(entry.name))
    return found


def _interactive():
    """In the child before it runs: Ctrl-C as a terminal delivers it. A shell that starts its jobs in the
    background (a CI runner, ``cmd &``) has them ignore SIGINT, and Python keeps that; the test's sweep
    must take Ctrl-C as a user's would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(argv, cwd, **options):
    return subprocess.Popen(
        [sys.executable, "-m", "infovae", *map(str, argv)],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def _finish(process, timeout=600):
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return Result(process.returncode, stdout, stderr)


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _steps(run):
    return [json.loads(line)["step"] for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


# Long enough that a sweep is still running seconds after its trials' first checkpoints.
LONG_STEPS = 1000


def _long_sweep(tmp_path, steps=LONG_STEPS):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "base": TINY, "grid": {"objective.beta": [1.0, 0.5, 0.25]}, "seeds": [0],
        "set": {"train.steps": steps, "train.eval_every": 20},
    }))  # fmt: skip
    return path


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's")


@pytest.mark.slow
def test_a_sweep_rerun_never_unpickles_a_checkpoint(runs, tmp_path):
    """(1) The three crafted checkpoints, one per trial of a sweep: the rerun refuses each on one line
    (failed trials), runs no code and deletes no run folder."""
    from infovae.sweeps.spec import load_sweep
    from infovae.sweeps.sweep import _prepare

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": TINY, "grid": {"objective.beta": [1.0, 0.5, 0.25]}, "seeds": [0]}))
    spec = load_sweep(sweep)
    out = tmp_path / "sweep"
    out.mkdir()
    _prepare(spec, out)
    w = Workspace(tmp_path, runs)
    planted = {}
    for trial, (kind, (make, fragment)) in zip(spec.trials, EVIL_CHECKPOINTS.items()):
        run = make(w, finished=False)
        shutil.move(run, out / "trials" / trial.name / "run")
        planted[trial.name] = fragment
    result = _finish(_start(["sweep", sweep, "--out", out, "--workers", "3", "--no-progress"], tmp_path))
    assert result.code == 0, result.stderr
    assert not w.marker.exists(), "code from a pickle ran"
    rows = {row["trial"]: row for row in _csv(out / "results.csv")}
    for name, fragment in planted.items():
        assert rows[name]["status"] == "failed" and fragment in rows[name]["error"], rows[name]
        assert (out / "trials" / name / "run" / "config.yaml").exists(), "a run folder with a checkpoint was deleted"


def _csv(path):
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_two_trains_into_one_out_make_one_run(tmp_path):
    """(2) Two ``infovae train`` started together on one --out: one trains, the other is refused on one
    line, and the folder holds the first's run whole."""
    out = tmp_path / "run"
    configs = {}
    for seed in (1, 2):
        configs[seed] = tmp_path / f"seed{seed}.yaml"
        configs[seed].write_text(
            yaml.safe_dump({**TINY, "train": {**TINY["train"], "steps": 60, "eval_every": 20, "seed": seed}})
        )
    processes = {seed: _start(["train", path, "--out", out, "--no-progress"], tmp_path) for seed, path in configs.items()}
    results = {seed: _finish(p) for seed, p in processes.items()}
    codes = sorted(r.code for r in results.values())
    assert codes == [0, 2], {s: (r.code, r.stderr[-2000:]) for s, r in results.items()}
    winner = next(s for s, r in results.items() if r.code == 0)
    loser = results[3 - winner]
    assert_one_line_error(loser)
    assert any(m in loser.stderr for m in ("in use by another process", "already exists", "filled by another process")), (
        loser.stderr
    )
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train"]["seed"] == winner
    assert _steps(out) == [20, 40, 60]
    assert json.loads((out / "summary.json").read_text())["steps"] == 60
    from infovae.training.checkpoint import load_checkpoint

    assert load_checkpoint(out / "checkpoint.npz")["step"] == 60


@pytest.mark.slow
def test_two_sweeps_on_one_out(tmp_path):
    """(2) A second sweep on a folder where one runs is refused on one line; the first finishes whole."""
    sweep = _long_sweep(tmp_path, steps=60)
    out = tmp_path / "sweep"
    first = _start(["sweep", sweep, "--out", out, "--workers", "2", "--no-progress"], tmp_path)
    _wait_for(lambda: (out / "sweep.json").exists() or first.poll() is not None, 120, "the first sweep to start")
    second = _finish(_start(["sweep", sweep, "--out", out, "--workers", "2", "--no-progress"], tmp_path))
    result = _finish(first)
    assert result.code == 0, result.stderr
    assert_one_line_error(second, "is in use by another process")
    rows = _csv(out / "results.csv")
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows), rows


@pytest.mark.slow
@linux_only
def test_ctrl_c_stops_a_sweep_which_then_resumes_with_nothing_lost(tmp_path):
    """(3) Ctrl-C on a local sweep: it stops within seconds, starts no queued trial, records the running
    ones as interrupted in results.csv and leaves no trial process; a plain rerun resumes them from their
    checkpoints and finishes, leaving a failed one alone; --retry-failed resumes that one, never
    deleting its run folder."""
    sweep = _long_sweep(tmp_path)
    out = tmp_path / "sweep"
    process = _start(
        ["sweep", sweep, "--out", out, "--workers", "2", "--no-progress"],
        tmp_path,
        start_new_session=True,
        preexec_fn=_interactive,
    )
    _wait_for(lambda: len(list(out.glob("trials/*/run/checkpoint.npz"))) >= 2, 300, "two trials to write a checkpoint")
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: the sweep's process group (trials have their own)
    stopped = time.monotonic()
    result = _finish(process, timeout=120)
    assert time.monotonic() - stopped < 30, "the sweep took too long to stop"
    assert result.code == 130, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # Click ends the ^C echo with a blank line
    assert len(lines) == 1 and lines[0].startswith(ONE_LINE_ERROR + "sweep interrupted"), result.stderr
    assert _trial_processes(out) == []
    rows = {row["trial"]: row for row in _csv(out / "results.csv")}
    assert len(rows) == 2 and {r["status"] for r in rows.values()} == {"interrupted"}, rows
    queued = [d for d in (out / "trials").iterdir() if d.name not in rows]
    assert len(queued) == 1 and not (queued[0] / "run").exists(), "a queued trial started after Ctrl-C"

    interrupted, failed = sorted(rows)
    inodes = {name: (out / "trials" / name / "run" / "config.yaml").stat().st_ino for name in rows}
    kept = {name: _steps(out / "trials" / name / "run") for name in rows}
    outcome = out / "trials" / failed / "outcome.json"
    outcome.write_text(json.dumps({"status": "failed", "error": "an earlier failure", "summary": {}}))
    failed_before = snapshot(out / "trials" / failed)

    result = _finish(_start(["sweep", sweep, "--out", out, "--workers", "2", "--no-progress"], tmp_path))
    assert result.code == 0, result.stderr
    rows = {row["trial"]: row for row in _csv(out / "results.csv")}
    assert rows[interrupted]["status"] == "ok" and rows[queued[0].name]["status"] == "ok"
    assert rows[failed]["status"] == "failed" and snapshot(out / "trials" / failed) == failed_before

    result = _finish(_start(["sweep", sweep, "--out", out, "--retry-failed", "--no-progress"], tmp_path))
    assert result.code == 0, result.stderr
    assert all(row["status"] == "ok" for row in _csv(out / "results.csv"))
    for name in (interrupted, failed):
        run = out / "trials" / name / "run"
        assert run.joinpath("config.yaml").stat().st_ino == inodes[name], f"{name} started over instead of resuming"
        steps = _steps(run)
        assert steps[: len(kept[name])] == kept[name] and steps == list(range(20, LONG_STEPS + 1, 20))
    assert _trial_processes(out) == []


@pytest.mark.slow
def test_ctrl_c_stops_a_run_with_a_checkpoint_and_exit_code_130(tmp_path):
    """(3) Ctrl-C on ``infovae train``: RunInterrupted, exit code 130 and one line saying where it stopped;
    --resume continues from that step."""
    from infovae.training.loop import resume_run

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "steps": 400, "eval_every": 10}}))
    out = tmp_path / "run"
    process = _start(["train", config, "--out", out, "--no-progress"], tmp_path, start_new_session=True, preexec_fn=_interactive)
    _wait_for(lambda: (out / "checkpoint.npz").exists() or process.poll() is not None, 300, "the first checkpoint")
    os.killpg(process.pid, signal.SIGINT)
    result = _finish(process, timeout=120)
    assert result.code == 130, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # Click ends the ^C echo with a blank line
    assert len(lines) == 1 and lines[0].startswith(ONE_LINE_ERROR + "interrupted at step "), result.stderr
    step = int(lines[0].removeprefix(ONE_LINE_ERROR + "interrupted at step ").split(";")[0])
    assert 0 < step < 400
    from infovae.training.checkpoint import load_checkpoint

    assert load_checkpoint(out / "checkpoint.npz")["step"] == step
    before = _steps(out)
    assert resume_run(out, progress=False)["steps"] == 400
    assert _steps(out) == list(range(10, 401, 10)) and _steps(out)[: len(before)] == before


@pytest.mark.slow
@linux_only
def test_ctrl_c_stops_a_vectorised_sweep_of_worker_processes_which_then_resumes(tmp_path):
    """(3) The same for the vectorised executor on a CPU, one chunk per worker process: Ctrl-C stops it
    within seconds, the running chunks keep their checkpoints and are recorded interrupted, and a rerun
    continues them from there: no evaluation is lost or made twice."""
    sweep = _long_sweep(tmp_path)
    out = tmp_path / "sweep"
    argv = [
        "sweep",
        sweep,
        "--out",
        out,
        "--executor",
        "vectorized",
        "--trials-per-program",
        "1",
        "--workers",
        "2",
        "--no-progress",
    ]
    process = _start(argv, tmp_path, start_new_session=True, preexec_fn=_interactive)
    _wait_for(lambda: len(list(out.glob("groups/*/checkpoint.npz"))) >= 2, 300, "two chunks to write a checkpoint")
    os.killpg(process.pid, signal.SIGINT)
    stopped = time.monotonic()
    result = _finish(process, timeout=120)
    assert time.monotonic() - stopped < 30, "the sweep took too long to stop"
    assert result.code == 130 and "Traceback" not in result.stderr, result.stderr
    assert _trial_processes(out) == []
    rows = {row["trial"]: row for row in _csv(out / "results.csv")}
    assert len(rows) == 2 and {r["status"] for r in rows.values()} == {"interrupted"}, rows
    kept = {name: _steps(out / "trials" / name / "run") for name in rows}

    result = _finish(_start(argv, tmp_path))
    assert result.code == 0, result.stderr
    assert len(_csv(out / "results.csv")) == 3 and all(row["status"] == "ok" for row in _csv(out / "results.csv"))
    for name in rows:
        steps = _steps(out / "trials" / name / "run")
        assert steps[: len(kept[name])] == kept[name] and steps == list(range(20, LONG_STEPS + 1, 20)), name
    assert not (out / "groups").exists() and _trial_processes(out) == []


@pytest.mark.slow
@linux_only
def test_kill_9_of_a_sweep_leaves_no_orphan_trials(tmp_path):
    """(3) kill -9 of the sweep: its trials stop on their own (PR_SET_PDEATHSIG), each with a checkpoint
    and the outcome ``interrupted``, and the sweep folder's lock is free."""
    sweep = _long_sweep(tmp_path)
    out = tmp_path / "sweep"
    process = _start(
        ["sweep", sweep, "--out", out, "--workers", "2", "--no-progress"],
        tmp_path,
        start_new_session=True,
        preexec_fn=_interactive,
    )
    _wait_for(
        lambda: len(_trial_processes(out)) >= 2 and len(list(out.glob("trials/*/run/checkpoint.npz"))) >= 2,
        300,
        "two running trials",
    )
    process.kill()
    process.communicate()
    _wait_for(lambda: not _trial_processes(out), 60, "the orphaned trials to stop")
    # Each running trial kept a checkpoint; an outcome, where it wrote one, says interrupted (a trial that
    # ended without one runs again, from its checkpoint, when the sweep does).
    outcomes = [json.loads(p.read_text()) for p in out.glob("trials/*/outcome.json")]
    assert outcomes and all(o["status"] == "interrupted" for o in outcomes), outcomes
    assert len(list(out.glob("trials/*/run/checkpoint.npz"))) == 2
    FolderLock(out, "sweep folder").acquire().release()


@pytest.mark.slow
@linux_only
def test_sizes_too_large_to_allocate_are_one_line_and_leave_no_folder(tmp_path):
    import resource

    def limit_memory():  # the request fails at once instead of taking the shared machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    out = tmp_path / "run"
    argv = ["train", Workspace(tmp_path, None).config(), "model.latent_size=100000", "data.num_examples=100000",
            "train.batch_size=65536", "train.steps=1", "train.eval_every=1", "--out", out]  # fmt: skip
    process = subprocess.run(
        [sys.executable, "-m", "infovae", *map(str, argv)],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit_memory,
    )
    assert_one_line_error(Result(process.returncode, process.stdout, process.stderr))
    assert not out.exists()
