"""One set of guarantees for every executor: a vectorised rerun resumes or refuses each trial and deletes
nothing it did not write, records an outcome for every finished trial, takes each run folder's lock,
splits a chunk's checkpoint into its trials' own whatever the next grouping, and loses nothing to a
kill -9 followed by reruns with other groupings (``INFOVAE_FAULT_CYCLES`` cycles, default 2)."""

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from infovae.errors import UserInputError
from infovae.files import FolderLock

from .matrix import ENV, TINY, copy_run, snapshot
from .test_processes import _trial_processes

# Four numpyro trials of 8 steps: two settings of beta, two seeds.
BASE = {**TINY, "backend": "numpyro", "train": {**TINY["train"], "steps": 8}}
SPEC = {"base": BASE, "grid": {"objective.beta": [1.0, 0.5]}, "seeds": [0, 1]}
# Summary entries that measure time (and how many trials shared it), not the model.
TIMING = {"train_seconds", "seconds_per_step", "wall_seconds", "trials_sharing_time"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep :data:`SPEC` run once, uninterrupted, as one program."""
    from infovae.sweeps.sweep import run_sweep

    out = tmp_path_factory.mktemp("reference") / "sweep"
    result = run_sweep(SPEC, out, executor="vectorized", progress=False, trials_per_program=4)
    assert list(result.results["status"]) == ["ok"] * 4
    return out


def _copy(sweep, dest):
    shutil.copytree(sweep, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest


def _summary(run):
    return {k: v for k, v in json.loads((run / "summary.json").read_text()).items() if k not in TIMING}


# What is compared across groupings: the objective's terms and the continuous diagnostics. A trial's
# arithmetic in a program of another width rounds differently (tests/sweeps/test_vectorized.py), and on
# the 20 validation examples of these trials the quantities that count (the sampled-z probe's accuracy,
# NMI, a permutation p-value) move by whole steps of 1 / 20 or 1 / (permutations + 1) under such rounding.
COMPARED = ("loss", "recon", "kl", "jsd", "nll", "mi", "marginal_kl", "steps", "selected_step", "stopped_early")


def _same_numbers(a, b):
    """Two summary or metrics records equal to float32 rounding where they are not counts (:data:`COMPARED`)."""
    keys = [k for k in a if k in COMPARED or k.startswith(("train_", "test_")) or k == "step"]
    assert keys and set(keys) <= set(b), (sorted(a), sorted(b))
    for key in keys:
        if isinstance(a[key], float) and isinstance(b[key], float):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6, nan_ok=True), key
        else:
            assert a[key] == b[key], key


def test_a_vectorised_rerun_resumes_or_refuses_each_trial_and_deletes_nothing(reference, tmp_path):
    """(1, 2, 3) A trial killed after its last checkpoint resumes from it, with the user's file beside it
    kept; one without a checkpoint but with a user's file is refused, its folder untouched; one whose run
    folder another process holds is refused without a write; one with a summary but no outcome is
    recorded; leftover temporary files go."""
    from infovae.sweeps.sweep import run_sweep

    out = _copy(reference, tmp_path / "sweep")
    resumed, foreign, locked, unrecorded = sorted((out / "trials").iterdir())
    originals = {t.name: _summary(t / "run") for t in (resumed, unrecorded)}
    metrics = (resumed / "run" / "metrics.jsonl").read_bytes()
    for trial in (resumed, foreign, locked):
        (trial / "run" / "summary.json").unlink()
        (trial / "outcome.json").unlink()
    (resumed / "run" / "notes.txt").write_text("the user's")
    (resumed / "run" / ".metrics.jsonl.0badc0de.tmp").write_text("left by a kill")
    (foreign / "run" / "checkpoint.npz").unlink()
    (foreign / "run" / "notes.txt").write_text("the user's")
    (unrecorded / "outcome.json").unlink()
    (unrecorded / ".outcome.json.0badc0de.tmp").write_text("left by a kill")
    untouched = {t.name: snapshot(t / "run") for t in (foreign, locked)}
    holder = FolderLock(locked / "run").acquire()
    try:
        result = run_sweep(SPEC, out, executor="vectorized", progress=False, trials_per_program=2)
    finally:
        holder.release()
    rows = {row.trial: row for row in result.results.itertuples()}
    assert {name: row.status for name, row in rows.items()} == {
        resumed.name: "ok",
        foreign.name: "failed",
        locked.name: "failed",
        unrecorded.name: "ok",
    }
    assert "files a run does not write" in rows[foreign.name].error
    assert "in use by another process" in rows[locked.name].error
    _same_numbers(_summary(resumed / "run"), originals[resumed.name])
    assert (resumed / "run" / "metrics.jsonl").read_bytes() == metrics, "the resumed trial started over"
    assert (resumed / "run" / "notes.txt").exists()
    assert {t.name: snapshot(t / "run") for t in (foreign, locked)} == untouched
    assert json.loads((unrecorded / "outcome.json").read_text())["status"] == "ok"
    assert not list(out.rglob("*.tmp"))
    assert not (out / "groups").exists()


def test_a_chunk_checkpoint_becomes_each_trials_own(reference, tmp_path):
    """(1) A chunk killed before its trials' own checkpoints: its checkpoint is split into theirs, exactly,
    so that any grouping (or executor) resumes them; a trial further along keeps its own; a group folder
    of an earlier version (no members.json) is left alone."""
    from infovae.sweeps.groups import GROUPS, dissolve_groups, join_states, write_members
    from infovae.training.checkpoint import load_checkpoint, save_checkpoint

    out = _copy(reference, tmp_path / "sweep")
    trials = sorted((out / "trials").iterdir())[:3]
    own = [load_checkpoint(t / "run" / "checkpoint.npz") for t in trials]
    group = out / GROUPS / "g"
    write_members(group, [t.name for t in trials])
    save_checkpoint(group / "checkpoint.npz", join_states(own))
    for trial in trials[:2]:
        (trial / "run" / "checkpoint.npz").unlink()
    kept = snapshot(trials[2] / "run")
    legacy = out / GROUPS / "legacy"
    legacy.mkdir()
    (legacy / "checkpoint.npz").write_bytes(b"of an earlier version")
    dissolve_groups(out)
    for trial, state in zip(trials, own):
        split = load_checkpoint(trial / "run" / "checkpoint.npz")
        assert json.dumps(_skeleton(split)) == json.dumps(_skeleton(state))
        for a, b in zip(_leaves(split), _leaves(state), strict=True):
            np.testing.assert_array_equal(a, b)
    assert snapshot(trials[2] / "run") == kept
    assert not group.exists() and (legacy / "checkpoint.npz").exists()


def test_a_pyro_checkpoint_is_refused_by_the_vectorised_executor_and_kept(runs, tmp_path):
    """(1) A trial a local sweep trained with the Pyro backend cannot resume in NumPyro: refused, kept."""
    from infovae.errors import CheckpointError
    from infovae.sweeps.vectorized import _own_state
    from infovae.training.run_folder import RunFolder

    run = copy_run(runs, tmp_path / "run", finished=False)
    before = snapshot(run)
    with pytest.raises(CheckpointError, match="pyro backend.*--executor local"):
        _own_state(RunFolder(run))
    assert snapshot(run) == before


def _leaves(tree):
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree] if isinstance(tree, np.ndarray) else []


def _skeleton(tree):
    if isinstance(tree, dict):
        return {key: _skeleton(value) for key, value in sorted(tree.items())}
    if isinstance(tree, (list, tuple)):
        return [_skeleton(item) for item in tree]
    return ("array", tree.shape, str(tree.dtype)) if isinstance(tree, np.ndarray) else tree


def test_the_sweep_report_drops_a_torn_last_line_as_the_run_report_does(reference, tmp_path):
    """A kill mid-append leaves a trial's metrics.jsonl with a last line cut short: the sweep report
    drops it with a warning, as the run report does."""
    from infovae.reports import write_report

    out = _copy(reference, tmp_path / "sweep")
    metrics = next((out / "trials").iterdir()) / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 10, "loss": 1.')
    with pytest.warns(UserWarning, match="cut short by a crash"):
        paths = write_report(out)
    assert paths["report"].exists()


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"trials_per_program": -1}, "trials_per_program"),
        ({"trials_per_program": "2"}, "trials_per_program"),
        ({"workers": -1}, "workers"),
        ({"workers": True}, "workers"),
        ({"address": 5}, "address"),
        ({"trials": 3}, "unknown sweep option"),
        ({"retry_failed": "yes"}, "retry_failed"),
    ],
)
def test_the_apis_sweep_options_are_checked_before_anything_is_made(tmp_path, options, fragment):
    import infovae

    with pytest.raises(UserInputError, match=fragment):
        infovae.sweep(SPEC, out=tmp_path / "out", executor="vectorized", **options)
    assert not (tmp_path / "out").exists()


def test_trial_names_never_collide(tmp_path):
    """Names cut to 80 readable characters and a 24-bit hash collide in a grid of 30,000 (about 27 pairs
    are expected): those that would are named by the full hash instead, the others keep their short names."""
    from infovae.sweeps.spec import load_sweep

    values = [f"{'x' * 90}{i}" for i in range(30_000)]
    # A key whose values may be any text: the data file's path (checked when a trial runs, not when it is named).
    base = {**TINY, "data": {"kind": "npz", "path": "arrays.npz"}, "model": {**TINY["model"], "likelihood": "categorical"}}
    spec = load_sweep({"base": base, "grid": {"data.path": values}, "seeds": [0]})
    names = [t.name for t in spec.trials]
    assert len(set(names)) == len(names)
    long = [n for n in names if len(n.rsplit("-", 2)[1]) == 40]
    assert 0 < len(long) < 200, "30,000 ** 2 / 2 / 2 ** 24: about 27 colliding pairs"


# -- kill -9 at random moments, reruns with other groupings ---------------------------------------------------

CYCLES = int(os.environ.get("INFOVAE_FAULT_CYCLES", "2"))
# Files whose growth is a trial's progress: a kill lands just after one of them changes.
PROGRESS_FILES = ("metrics.jsonl", "checkpoint.npz", "summary.json", "outcome.json")


def _progress(out):
    """Per trial, how far its checkpoints or summary reach: the most that a kill must never take away."""
    from infovae.sweeps.groups import checkpoint_step
    from infovae.training.checkpoint import CHECKPOINT

    reach = {}
    for trial in (out / "trials").iterdir() if (out / "trials").is_dir() else ():
        run = trial / "run"
        steps = [math.inf] if (run / "summary.json").exists() else []
        steps += [checkpoint_step(run / CHECKPOINT)] if (run / CHECKPOINT).exists() else []
        reach[trial.name] = max(steps, default=0)
    for group in (out / "groups").glob("*") if (out / "groups").is_dir() else ():
        if (group / "members.json").exists() and (group / CHECKPOINT).exists():
            step = checkpoint_step(group / CHECKPOINT)
            for name in json.loads((group / "members.json").read_text()):
                reach[name] = max(reach.get(name, 0), step)
    return reach


def _signature(out):
    """What the sweep has written so far: the size and time of every file that records progress."""
    found = set()
    for path in out.rglob("*"):
        if path.name in PROGRESS_FILES:
            try:
                info = path.stat()
            except OSError:  # replaced between the listing and the stat
                continue
            found.add((str(path), info.st_size, info.st_mtime_ns))
    return found


def _kill_moment(process, out, rng):
    """Wait for the moment to kill ``process``: a quarter of the time at random within its first seconds
    (start-up, planning, compilation), otherwise a random delay after its 1st to 4th write of progress (an
    evaluation's metrics line, a checkpoint, a summary or an outcome), so that kills land among the writes
    that matter rather than mostly before them. Returns False when the process ended first."""
    deadline = time.monotonic() + 120.0
    if rng.random() < 0.25:
        deadline = time.monotonic() + rng.uniform(0.2, 6.0)
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return process.poll() is None
    events, seen = rng.randint(1, 4), _signature(out)
    while process.poll() is None and events and time.monotonic() < deadline:
        time.sleep(0.01)
        now = _signature(out)
        events -= now != seen
        seen = now
    end = time.monotonic() + rng.uniform(0.0, 0.3)
    while process.poll() is None and time.monotonic() < end:
        time.sleep(0.005)
    return process.poll() is None


def _sweep_command(out, sweep_file, rng):
    executor = rng.choice(["vectorized", "vectorized", "local"])
    argv = [sys.executable, "-m", "infovae", "sweep", str(sweep_file), "--out", str(out), "--executor", executor, "--no-progress"]
    if executor == "vectorized":
        argv += ["--trials-per-program", str(rng.choice([1, 2, 3, 4]))] + (["--workers", "2"] if rng.random() < 0.3 else [])
    else:
        argv += ["--workers", "2"]
    return argv


def _matches_reference(out, reference, names):
    """Every trial of ``names`` ended with the numbers, and the metrics lines, of the uninterrupted sweep."""
    for name in names:
        mine, theirs = out / "trials" / name / "run", reference / "trials" / name / "run"
        _same_numbers(_summary(mine), _summary(theirs))
        ours = [json.loads(line) for line in (mine / "metrics.jsonl").read_text().splitlines()]
        expected = [json.loads(line) for line in (theirs / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in ours] == [r["step"] for r in expected], name
        for a, b in zip(ours, expected):
            _same_numbers({k: v for k, v in a.items() if k not in TIMING}, {k: v for k, v in b.items() if k not in TIMING})


@pytest.mark.slow
@pytest.mark.timeout(300 + 150 * CYCLES)  # a cycle waits at most 120 s for its kill, then for the workers' ends
def test_kill_9_and_reruns_with_other_groupings_lose_nothing(reference, tmp_path):
    """Kill -9 a vectorised sweep (and its workers) at a random moment, rerun it with another chunk size,
    fewer or more seeds, or the local executor, ``INFOVAE_FAULT_CYCLES`` times (``INFOVAE_FAULT_SEED``
    picks the moments and the options): no finished trial and no checkpointed step is ever lost, and every
    trial ends with the numbers of the uninterrupted sweep. A sweep that finishes is checked against the
    uninterrupted one and the cycles go on in a new folder, so that every cycle has work to interrupt.
    Two cycles by default (CI); ``INFOVAE_FAULT_CYCLES=200 INFOVAE_FAULT_SEED=1`` passed on two shared
    cores in 25 minutes: 144 kills, 23 cycles that advanced some trial, 2 sweeps finished whole."""
    rng = random.Random(int(os.environ.get("INFOVAE_FAULT_SEED", "0")))
    for n in (1, 2):  # a rerun may add seeds, or run a subset of them
        (tmp_path / f"seeds{n}.yaml").write_text(yaml.safe_dump({**SPEC, "seeds": list(range(n))}))
    folders, before, killed, advanced = 0, {}, 0, 0
    out = tmp_path / "sweep0"
    for cycle in range(CYCLES):
        seeds = rng.choice([1, 2])
        argv = _sweep_command(out, tmp_path / f"seeds{seeds}.yaml", rng)
        process = subprocess.Popen(argv, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)  # fmt: skip
        if _kill_moment(process, out, rng):  # the sweep, then each of its workers (each in a session of its own)
            killed += 1
            os.killpg(process.pid, signal.SIGKILL)
            for pid in _trial_processes(out):
                os.kill(pid, signal.SIGKILL)
        _, stderr = process.communicate()
        while _trial_processes(out):  # they release their locks as they die
            time.sleep(0.05)
        assert "Traceback" not in stderr, f"cycle {cycle}: {' '.join(argv[2:])}\n{stderr[-3000:]}"
        after = _progress(out)
        lost = {name: (step, after.get(name, 0)) for name, step in before.items() if after.get(name, 0) < step}
        assert not lost, f"cycle {cycle} ({' '.join(argv[3:])}) lost progress: {lost}"
        advanced += after != before
        before = after
        if process.returncode == 0 and seeds == 2:  # finished whole: checked, and the next cycles start over
            _matches_reference(out, reference, [t.name for t in (reference / "trials").iterdir()])
            folders += 1
            out, before = tmp_path / f"sweep{folders}", {}
    print(f"{CYCLES} cycles: {killed} killed, {advanced} advanced some trial's checkpoints or summaries, "
          f"{folders} sweeps finished whole along the way")  # fmt: skip
    final = subprocess.run(_sweep_command(out, tmp_path / "seeds2.yaml", rng), cwd=tmp_path, env=ENV, capture_output=True,
                           text=True, timeout=900)  # fmt: skip
    assert final.returncode == 0, final.stderr[-3000:]
    _matches_reference(out, reference, [t.name for t in (reference / "trials").iterdir()])
