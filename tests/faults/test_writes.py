"""Every write guarded: a full disk at a run's start (at a checkpoint: ``tests/training/test_runs.py``), a
folder that cannot be written and memory that runs out at the first step end in one line
(:class:`~infovae.errors.RunDirError` or another ``UserInputError``, exit code 2 on the command line),
leaving no half-made folder."""

import errno
import os
from pathlib import Path

import pytest

from infovae.errors import RunDirError

from .matrix import TINY, copy_run


def _full_disk_on(monkeypatch, name):
    """``os.fsync`` fails with ENOSPC for files whose name contains ``name``."""
    real = os.fsync

    def fsync(fd):
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_full_disk_at_a_runs_start_leaves_no_folder(tmp_path, monkeypatch):
    from infovae.training.config import parse_config
    from infovae.training.loop import start_run

    _full_disk_on(monkeypatch, "config.yaml")
    with pytest.raises(RunDirError, match="No space left on device"):
        start_run(parse_config(TINY), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_report_in_a_read_only_folder_is_one_line(runs, tmp_path, monkeypatch):
    """A folder the user may not write (as root, where permissions stop nothing, every write into it
    fails as the kernel would fail it)."""
    import errno
    from pathlib import Path

    from infovae.reports import write_report

    run = copy_run(runs, tmp_path / "run")
    if os.geteuid() == 0:
        write_bytes = Path.write_bytes

        def refused(path, data):
            if run in Path(path).parents:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return write_bytes(path, data)

        monkeypatch.setattr(Path, "write_bytes", refused)
    run.chmod(0o500)
    try:
        with pytest.raises(RunDirError, match="cannot write the report"):
            write_report(run)
    finally:
        run.chmod(0o700)
    assert not (run / "report").exists()


def test_memory_running_out_at_the_first_step_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch):
    """(y with 10**6 columns) A model whose first step cannot be allocated: one line, no half-made folder."""
    from infovae.errors import UserInputError
    from infovae.training import loop_runs
    from infovae.training.config import parse_config

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: 6 GB")

    monkeypatch.setattr(loop_runs, "train_group", out_of_memory)
    with pytest.raises(UserInputError, match="does not fit in this machine's memory"):
        loop_runs.start_run(parse_config(TINY), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sibling", [False, True])
def test_a_failed_start_removes_the_parent_folders_it_made_while_they_are_empty(tmp_path, monkeypatch, sibling):
    """``--out a/b/run`` where ``a`` did not exist: a start that fails leaves no ``a``; a parent that another
    run's folder was put into meanwhile stays, with it."""
    from infovae.errors import UserInputError
    from infovae.training import loop_runs
    from infovae.training.config import parse_config

    def out_of_memory(*args, **kwargs):
        if sibling:
            (tmp_path / "a" / "other").mkdir()
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: 6 GB")

    monkeypatch.setattr(loop_runs, "train_group", out_of_memory)
    with pytest.raises(UserInputError, match="does not fit in this machine's memory"):
        loop_runs.start_run(parse_config(TINY), tmp_path / "a" / "b" / "run", progress=False)
    if sibling:
        assert [p.name for p in (tmp_path / "a").iterdir()] == ["other"]
    else:
        assert list(tmp_path.iterdir()) == []


def test_a_failed_start_through_dot_dot_removes_only_what_it_made(tmp_path, monkeypatch):
    """``--out a/../b/run`` where ``b/run`` existed, empty, and ``a`` did not: the start made ``a`` alone, and
    a failure removes ``a`` and leaves ``b/run``."""
    from infovae.errors import UserInputError
    from infovae.training import loop_runs
    from infovae.training.config import parse_config

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: 6 GB")

    (tmp_path / "b" / "run").mkdir(parents=True)
    monkeypatch.setattr(loop_runs, "train_group", out_of_memory)
    with pytest.raises(UserInputError, match="does not fit in this machine's memory"):
        loop_runs.start_run(parse_config(TINY), tmp_path / "a" / ".." / "b" / "run", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
    assert {p.name for p in (tmp_path / "b" / "run").iterdir()} <= {".lock"}


@pytest.mark.parametrize("existed", [False, True])
def test_bad_input_found_at_the_first_step_leaves_no_folder_and_the_same_out_then_works(tmp_path, monkeypatch, existed):
    """(NumPyro's libraries found but failing to import when a program is first traced) A start that fails on
    bad input after making the run folder removes what it made, and only that: the same ``--out`` works next."""
    import infovae
    from infovae.errors import UserInputError
    from infovae.training.pyro_backend import PyroBackend

    def broken_library(self, indices, active):
        raise UserInputError("the numpyro backend's libraries fail to import (No module named 'jax')")

    out = tmp_path / "run"
    if existed:
        out.mkdir()
    monkeypatch.setattr(PyroBackend, "train_steps", broken_library)
    with pytest.raises(UserInputError, match="fail to import"):
        infovae.train(TINY, out=out, progress=False)
    if existed:  # the folder stays, as empty as it was (the lock file aside)
        assert {p.name for p in out.iterdir()} <= {".lock"}
    else:
        assert not out.exists()
    monkeypatch.undo()
    assert infovae.train(TINY, out=out, progress=False).summary["steps"] == TINY["train"]["steps"]
