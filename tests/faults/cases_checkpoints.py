"""Checkpoints that could run code, and damaged or foreign run folders, given to ``--resume``, ``report``
and ``convert-checkpoint`` (registered in the matrix, run by ``test_bad_input``)."""

import json
import math
import pickle
import shutil

import numpy as np

from .matrix import bad_input, checkpoint_meta, copy_run, npy_claiming, npz_bytes

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
    (run / "checkpoint.npz").unlink()
    (run / "checkpoint.pkl").write_bytes(b"\x80\x04garbage")
    return ["convert-checkpoint", run, "--trust"]


def _legacy_holding(state):
    """A run folder whose only checkpoint is ``checkpoint.pkl`` pickling ``state`` (trusted, but not a checkpoint)."""

    def prepare(w):
        run = w.run()
        (run / "checkpoint.npz").unlink()
        (run / "checkpoint.pkl").write_bytes(pickle.dumps(state))
        return ["convert-checkpoint", run, "--trust"]

    return prepare


for _name, _state, _fragment in [
    ("none", None, "holds NoneType, not a dict"),
    ("foreign-dict", {"a": 1}, "it has no 'step', 'seconds', 'backend_name', 'backend'"),
    ("backend-name-not-text", {"step": 1, "seconds": 0.0, "backend_name": 3, "backend": {}}, "backend_name is int"),
    ("step-negative", {"step": -1, "seconds": 0.0, "backend_name": "pyro", "backend": {}}, "step is -1"),
]:
    bad_input(f"convert-checkpoint-pickle-of-{_name}", _fragment)(_legacy_holding(_state))


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


bad_input("resume-checkpoint-other-shapes", "model.hidden differs from the config the checkpoint was trained with")(
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
# NumPy calls any file that is neither a zip nor a .npy "pickled data": the first bytes say which it is.
bad_input("resume-checkpoint-text-not-zip", "is not an .npz (zip) file", absent="pickle")(
    _damaged(_write("checkpoint.npz", "garbage\n"))
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
# Training from step 0 would write over the evaluations (a vectorised sweep's trial keeps its checkpoint in its group's folder).
bad_input("resume-evaluations-without-a-checkpoint", "has evaluations but no checkpoint of its own")(
    _damaged(lambda w, run: (run / "checkpoint.npz").unlink())
)
bad_input("resume-finished-run", "has finished already")(lambda w: ["train", "--resume", w.run(finished=True)])
bad_input("resume-not-a-run", "holds no run to resume")(lambda w: ["train", "--resume", w.folder("empty")])
bad_input("resume-a-file", "is a file")(lambda w: ["train", "--resume", w.watch(w.text("file", "a file"))])
bad_input("resume-in-use", "is in use by another process")(lambda w: ["train", "--resume", w.hold_lock(w.run())])
bad_input(
    "report-summary-not-an-object",
    "summary.json",
)(lambda w: ["report", _changed(w.run(finished=True), "summary.json", "[1, 2]")])
bad_input("report-neither-run-nor-sweep", "neither a run folder")(lambda w: ["report", w.watch(w.dir / "empty")])


# -- resume overrides, checkpoint fields and a hand-edited config: refused before anything is written ----------

for _steps in ("60.5", "1000000000000", "abc"):
    bad_input(f"resume-extend-to-{_steps}-steps", "train.steps")(
        lambda w, steps=_steps: ["train", "--resume", w.run(finished=True), f"train.steps={steps}"]
    )


def _edit_trial_state(**changes):
    def change(w, run):
        from infovae.training.checkpoint import load_checkpoint, save_checkpoint

        state = load_checkpoint(run / "checkpoint.npz")
        trial = state["trials"][0]
        for key, value in changes.items():
            if key == "position":
                trial["sampler"]["position"] = value
            else:
                trial[key] = value
        save_checkpoint(run / "checkpoint.npz", state)

    return change


bad_input("resume-checkpoint-step-negative", "outside 0")(_damaged(_edit_checkpoint(step=-1000)))
bad_input("resume-checkpoint-position-negative", "outside 0")(_damaged(_edit_trial_state(position=-5)))
bad_input("resume-checkpoint-last-step-negative", "outside 0")(_damaged(_edit_trial_state(last_step=-3)))
bad_input("resume-config-edited-by-hand", "objective.beta differs from the config the checkpoint was trained with")(
    _damaged(lambda w, run: _changed(run, "config.yaml", (run / "config.yaml").read_text().replace("beta: 1.0", "beta: 0.5", 1)))
)


@bad_input("convert-checkpoint-never-overwrites-a-checkpoint", "already has a checkpoint.npz")
def _(w):
    run = w.run()
    (run / "checkpoint.pkl").write_bytes(pickle.dumps({"step": 1}))
    return ["convert-checkpoint", run, "--trust"]


@bad_input("convert-checkpoint-in-use", "is in use by another process")
def _(w):
    run = w.run()
    (run / "checkpoint.npz").unlink()
    (run / "checkpoint.pkl").write_bytes(pickle.dumps({"step": 1}))
    return ["convert-checkpoint", w.hold_lock(run), "--trust"]


# -- reports of damaged bookkeeping, and where a report cannot be written --------------------------------------


def _unwatched_run(w, name="run"):
    """A finished run that is not watched: the snapshot would read what the case puts there (/dev/zero)."""
    return copy_run(w._runs, w.dir / name)


def _replaced(run, name, make):
    (run / name).unlink()
    make(run / name)
    return run


for _name in ("metrics.jsonl", "summary.json"):
    bad_input(f"report-{_name}-links-to-dev-zero", "not a regular file")(
        lambda w, name=_name: ["report", _replaced(_unwatched_run(w), name, lambda p: p.symlink_to("/dev/zero"))]
    )
    bad_input(f"report-{_name}-is-a-folder", "not a regular file")(
        lambda w, name=_name: ["report", _replaced(_unwatched_run(w), name, lambda p: p.mkdir())]
    )

bad_input("report-summary-nested-100k-deep", "nested more than")(
    lambda w: ["report", _changed(w.run(finished=True), "summary.json", "[" * 100_000 + "]" * 100_000)]
)
bad_input("report-summary-value-of-wrong-type", "not what a run writes")(
    lambda w: ["report", _changed(w.run(finished=True), "summary.json", '{"steps": 4, "nll": "low"}')]
)
bad_input("report-metrics-step-of-wrong-type", "not what a run writes")(
    lambda w: ["report", _changed(w.run(finished=True), "metrics.jsonl", '{"step": "two", "loss": 1.0}\n{"step": 4}\n')]
)
bad_input("report-folder-is-a-file", "is not a folder")(lambda w: ["report", _changed(w.run(finished=True), "report", "a file")])
bad_input("report-draws-1e9", "at most")(lambda w: ["report", w.run(finished=True), "--draws", "1000000000"])
