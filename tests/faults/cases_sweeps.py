"""Bad input to ``infovae sweep``: sweep files (bombs among them) and sweep folders (registered in the
matrix, run by ``test_bad_input``)."""

import shutil

import yaml

from .cases_cli import ALIAS_BOMB
from .matrix import LONG_NAME, TINY, _refusing_mkdir, _unwritable, bad_input

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


@bad_input("sweep-override-alias-bomb", "expands to more than")
def _(w):
    return ["sweep", w.sweep_file(), "objective.beta=" + ALIAS_BOMB, "--out", w.out]


for _key in ("train..steps", "objective..beta", "train.steps.x", ".train"):
    bad_input(f"sweep-override-key-{_key}", "key")(lambda w, key=_key: ["sweep", w.sweep_file(), f"{key}=5", "--out", w.out])


@bad_input("sweep-grid-key-malformed", "train.steps is a value, not a section")
def _(w):
    return ["sweep", w.sweep_file(grid={"train.steps.x": [1, 2]}), "--out", w.out]


# A trial config that no trial could run: refused when the sweep is expanded, before any trial folder,
# not recorded as a failure of every trial.
@bad_input("sweep-override-key-misspelt", "train.stepz: unknown key (did you mean train.steps?)")
def _(w):
    return ["sweep", w.sweep_file(), "train.stepz=5", "--out", w.out]


@bad_input("sweep-set-key-misspelt", "train.stepz: unknown key (did you mean train.steps?)")
def _(w):
    return ["sweep", w.sweep_file(set={"train.stepz": 5}), "--out", w.out]


@bad_input("sweep-grid-key-misspelt", "the trial objective.betta=1, seed 0: objective.betta: unknown key")
def _(w):
    return ["sweep", w.sweep_file(grid={"objective.betta": [1.0, 0.5]}), "--out", w.out]


@bad_input("sweep-grid-value-boolean", "the trial train.steps=True, seed 0: train.steps: must be a number")
def _(w):
    return ["sweep", w.sweep_file(grid={"train.steps": [4, True]}), "--out", w.out]


@bad_input("sweep-override-value-boolean", "objective.beta: must be a number")
def _(w):
    return ["sweep", w.sweep_file(grid={"objective.jsd_weight": [0.0, 0.5]}), "objective.beta=yes", "--out", w.out]


@bad_input("sweep-out-empty", "Invalid value for '--out': an empty path")
def _(w):
    return ["sweep", w.sweep_file(), "--out", ""]


@bad_input("sweep-rerun-with-a-misspelt-key", "train.stepz: unknown key")
def _(w):
    sweep = w.sweep_dir(w.sweep_file())
    return ["sweep", w.dir / "s.yaml", "train.stepz=5", "--out", sweep]


@bad_input("sweep-trial-folder-links-out-of-the-sweep", "is a link out of the sweep folder")
def _(w):
    sweep = w.sweep_dir(w.sweep_file())
    outside = w.folder("outside")
    (outside / "notes.txt").write_text("not the sweep's")
    trial = next(sweep.glob("trials/*"))
    shutil.move(trial, outside / "trial")
    trial.symlink_to(outside / "trial")
    return ["sweep", w.dir / "s.yaml", "--out", sweep]


@bad_input("sweep-run-folder-links-out-of-the-sweep", "is a link out of the sweep folder")
def _(w):
    sweep = w.sweep_dir(w.sweep_file())
    outside = w.folder("outside")
    next(sweep.glob("trials/*")).joinpath("run").symlink_to(outside)
    return ["sweep", w.dir / "s.yaml", "--out", sweep]


@bad_input("report-sweep-json-a-list", "is damaged")
def _(w):
    sweep = w.sweep_dir(w.sweep_file())
    (sweep / "sweep.json").write_text("[1, 2]")
    return ["report", sweep]


@bad_input("sweep-json-nested-100k-deep", "nested more than")
def _(w):
    sweep = w.sweep_dir(w.sweep_file())
    (sweep / "sweep.json").write_text("[" * 100_000 + "]" * 100_000)
    return ["report", sweep]


@bad_input("sweep-trial-json-nested-100k-deep", "nested more than")
def _(w):
    sweep = w.sweep_dir(w.sweep_file())
    next(sweep.glob("trials/*/trial.json")).write_text("[" * 100_000 + "]" * 100_000)
    return ["sweep", w.dir / "s.yaml", "--out", sweep]
