"""Bad input on the command line: config files, overrides, data files and sizes, and the output folder of
``infovae train`` (registered in the matrix, run by ``test_bad_input``)."""

import io
import zipfile

import numpy as np

from .matrix import LONG_NAME, _refusing_mkdir, _unwritable, bad_input, npy_claiming, npz_bytes

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


@bad_input("config-duplicate-key", "line 3, column 1: duplicate key 'data' (first at line 1)")
def _(w):
    return ["train", w.text("c.yaml", "data: {kind: digits}\ntrain: {steps: 5}\ndata: {kind: strategies}\n"), "--out", w.out]


@bad_input("override-duplicate-key", "names the key 'kind' twice")
def _(w):
    return ["train", w.config(), "data={kind: digits, kind: strategies}", "--out", w.out]


@bad_input("override-integer-of-5000-digits", "cannot be read")
def _(w):
    return ["train", w.config(), "train.steps=" + "9" * 5000, "--out", w.out]


@bad_input("override-without-equals", "must look like key.path=value")
def _(w):
    return ["train", w.config(), "train.steps", "--out", w.out]


@bad_input("override-key-misspelt", "train.step: unknown key (did you mean train.steps?)")
def _(w):
    return ["train", w.config(), "train.step=5", "--out", w.out]


@bad_input("override-alias-bomb", "expands to more than")
def _(w):
    return ["train", w.config(), "objective.beta=" + ALIAS_BOMB, "--out", w.out]


for _key, _value in [("train.seed", "-1"), ("train.seed", str(2**40)), ("data.seed", "-1"), ("data.seed", str(2**40))]:
    bad_input(f"override-{_key}-{_value}", _key)(lambda w, k=_key, v=_value: ["train", w.config(), f"{k}={v}", "--out", w.out])


@bad_input("override-warmup-of-400-digits", "train.warmup.beta")
def _(w):
    return ["train", w.config(), "train.warmup.beta=1" + "0" * 400, "--out", w.out]


@bad_input("override-beta-beyond-float32", "float32")
def _(w):
    return ["train", w.config(), "objective.beta=1e39", "--out", w.out]


@bad_input("override-kernel-scale-beyond-float32", "float32")
def _(w):
    return ["train", w.config(), "objective.kernel_scales=[1e39]", "objective.marginal=mmd", "--out", w.out]


# marginal: kl ignores kernel_scales, but a value refused outright is not first warned about as ignored.
@bad_input("override-kernel-scale-negative-while-ignored", "kernel scales must be")
def _(w):
    return ["train", w.config(), "objective.kernel_scales=[-1]", "--out", w.out]


@bad_input("override-lr-below-float32", "float32")
def _(w):
    return ["train", w.config(), "train.lr=1e-60", "--out", w.out]


# YAML reads true, yes and on as booleans: a number key refuses them (pydantic's lax mode took true for 1).
for _key, _value in [
    ("train.steps", "true"),
    ("objective.beta", "yes"),
    ("data.seed", "on"),
    ("objective.kernel_scales", "[1, false]"),
]:
    bad_input(f"override-{_key}-{_value}", f"{_key}: must be a number")(
        lambda w, k=_key, v=_value: ["train", w.config(), f"{k}={v}", "--out", w.out]
    )


@bad_input("config-steps-true", "train.steps: must be a number, got True")
def _(w):
    return ["train", w.text("c.yaml", "train: {steps: true}\n"), "--out", w.out]


@bad_input("config-greyscale-1", "data.greyscale: must be true or false, got 1")
def _(w):
    return ["train", w.text("c.yaml", "data: {kind: digits, greyscale: 1}\n"), "--out", w.out]


# -- sizes and data ------------------------------------------------------------------------------------


@bad_input("conv-without-images", "model.network: conv needs images")
def _(w):
    return ["train", w.npz_config("bernoulli", x=np.zeros((400, 2)), y=np.zeros((400, 16))), "model.network=conv", "--out", w.out]


@bad_input("conv-categorical", "model.network: conv draws pixels")
def _(w):
    return ["train", w.config(), "model.network=conv", "--out", w.out]


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


@bad_input("npz-labels-2-to-the-62", "label ids must be below")
def _(w):
    return ["train", w.npz_config(y=np.zeros((50, 1)), labels=np.full(50, 2**62)), "--out", w.out]


@bad_input("npz-labels-1e9", "label ids must be below")
def _(w):
    return ["train", w.npz_config(y=np.zeros((50, 1)), labels=np.full(50, 10**9)), "--out", w.out]


@bad_input("npz-float-labels-1e19", "label ids must be below")
def _(w):
    return ["train", w.npz_config(y=np.zeros((50, 1)), labels=np.full(50, 1e19)), "--out", w.out]


@bad_input("npz-expands-to-gigabytes", "once loaded")
def _(w):
    """A few kilobytes of zeros that decompress to 40 GB: refused from the header, before decompressing."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("y.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 10)})
        f.write(bytes(1 << 20))
    return ["train", w.npz_config(file=buffer.getvalue()), "--out", w.out]


@bad_input("npz-object-array-is-a-pickle", "cannot be read", absent="unsafe")
def _(w):
    return ["train", w.npz_config(x=w.evil_object_array(), y=np.zeros((1, 1))), "--out", w.out]


@bad_input("npz-file-is-text", "is not an .npz (zip) file", absent="pickle")
def _(w):
    return ["train", w.npz_config(file=b"hello\n"), "--out", w.out]


@bad_input("npz-file-is-a-pickle", "is not an .npz (zip) file but a pickle", absent="unsafe")
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


# An empty --out named the current folder.
@bad_input("out-empty", "Invalid value for '--out': an empty path")
def _(w):
    return ["train", w.config(), "--out", ""]
