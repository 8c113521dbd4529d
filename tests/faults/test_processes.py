"""Whole processes: two writers racing, Ctrl-C and kill -9 of runs and sweeps, sizes too large to
allocate (all slow)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from infovae.files import FolderLock

from .cases_checkpoints import EVIL_CHECKPOINTS
from .matrix import ENV, ONE_LINE_ERROR, TINY, Result, Workspace, assert_one_line_error, snapshot

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


def _interactive_sweep(tmp_path):
    """A long local sweep started as from a terminal (so that Ctrl-C reaches it): its file, folder and process."""
    sweep, out = _long_sweep(tmp_path), tmp_path / "sweep"
    argv = ["sweep", sweep, "--out", out, "--workers", "2", "--no-progress"]
    return sweep, out, _start(argv, tmp_path, start_new_session=True, preexec_fn=_interactive)


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


def _stopped_and_queued(out):
    """The results.csv rows of a sweep stopped with two trials running and one queued: the two interrupted
    ones (by trial name) and the queued one's folder, which the table lists as pending and which never started."""
    rows = {row["trial"]: row for row in _csv(out / "results.csv")}
    assert sorted(r["status"] for r in rows.values()) == ["interrupted", "interrupted", "pending"], rows
    (queued,) = (out / "trials" / name for name, r in rows.items() if r["status"] == "pending")
    assert not (queued / "run").exists(), "a queued trial started after the sweep was stopped"
    return {name: r for name, r in rows.items() if r["status"] == "interrupted"}, [queued]


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
    sweep, out, process = _interactive_sweep(tmp_path)
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
    rows, queued = _stopped_and_queued(out)

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
@linux_only
def test_sigterm_stops_a_sweep_as_ctrl_c_does(tmp_path):
    """(3) SIGTERM to the sweep's process alone (as ``kill`` or a batch scheduler sends it): what Ctrl-C
    does: the running trials checkpoint and are recorded interrupted in the tables, and exit code 130."""
    _, out, process = _interactive_sweep(tmp_path)
    _wait_for(lambda: len(list(out.glob("trials/*/run/checkpoint.npz"))) >= 2, 300, "two trials to write a checkpoint")
    process.send_signal(signal.SIGTERM)
    result = _finish(process, timeout=120)
    assert result.code == 130, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(ONE_LINE_ERROR + "sweep interrupted"), result.stderr
    assert _trial_processes(out) == []
    rows, _ = _stopped_and_queued(out)
    assert all((out / "trials" / name / "run" / "checkpoint.npz").exists() for name in rows)
    notes = (out / "results.md").read_text()
    assert all(f"`{name}` interrupted" in notes for name in rows), notes


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
    rows, _ = _stopped_and_queued(out)
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
    sweep, out, process = _interactive_sweep(tmp_path)
    _wait_for(
        lambda: len(_trial_processes(out)) >= 2 and len(list(out.glob("trials/*/run/checkpoint.npz"))) >= 2,
        300,
        "two running trials",
    )
    process.kill()
    process.communicate()
    # Each finishes its chunk, writes a checkpoint and its outcome, and exits: seconds alone, but a full
    # test run on two loaded cores once timed out waiting 60 s (not reproduced alone or under lighter load).
    _wait_for(lambda: not _trial_processes(out), 180, "the orphaned trials to stop")
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
