"""The bad-input matrix: every registered case (``cases_*``) run through the command line, each checked
for one line, exit code 2, no traceback, no partial folder, existing folders unchanged and no code run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import cases_checkpoints, cases_cli, cases_sweeps  # noqa: F401  (they register the cases)
from .cases_cli import ALIAS_BOMB
from .cases_sweeps import GRID_BOMB
from .matrix import BAD_INPUT, ENV, Result, Workspace, assert_one_line_error

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


# ``python -m infovae`` runs the entry point the forked runner calls, after an interpreter start of its own:
# every case that way costs minutes of CI, so one case in PYTHON_M_EVERY goes that way too (every case with
# INFOVAE_FAULT_ALL=1).
PYTHON_M_EVERY = 1 if os.environ.get("INFOVAE_FAULT_ALL") else 4


def _table():
    for index, (case_id, case) in enumerate(BAD_INPUT.items()):
        marks = [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []
        yield pytest.param(case_id, "forked", marks=marks, id=f"{case_id}-forked")
        if index % PYTHON_M_EVERY == 0:
            yield pytest.param(case_id, "python-m", marks=[*marks, pytest.mark.slow], id=f"{case_id}-python-m")


@pytest.mark.parametrize("case, runner", list(_table()))
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
