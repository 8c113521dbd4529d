"""Your own arrays from an ``.npz`` file, validated so that bad data is refused with a clear message."""

import zipfile
from pathlib import Path

import numpy as np

from infovae.data.base import Dataset

__all__ = ["MIN_EXAMPLES", "load_npz"]

# The fewest examples that still leave two in each of the train, validation and test splits.
MIN_EXAMPLES = 10
LIKELIHOODS = ("categorical", "bernoulli", "gaussian")
KEYS = ("x", "y", "labels")


def _fail(path, message):
    raise ValueError(f"{path}: {message}")


def load_npz(path, likelihood, num_classes=None):
    """Read ``x`` [N, x_dim], ``y`` [N, y_dim] (or [N], read as [N, 1]) and optionally ``labels`` [N].

    ``y`` must fit the likelihood: non-negative integer classes below ``num_classes`` (default
    ``max(y) + 1``, and at least 2) for ``"categorical"``, only zeros and ones for ``"bernoulli"``,
    finite numbers for ``"gaussian"``. ``labels`` must be non-negative integers. The result has ``x``
    float32, ``y`` int64 (categorical) or float32, and ``labels`` int64; its name is the file's stem.

    :raises ValueError: naming the file and the problem.
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if num_classes is not None and (likelihood != "categorical" or num_classes < 2):
        raise ValueError(f"num_classes={num_classes!r} needs the categorical likelihood and at least 2 classes")
    path = Path(path)
    x, y, labels = _read(path)
    if x.ndim != 2:
        _fail(path, f"x must be 2-D [N, x_dim], got shape {x.shape}")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] == 0:
        _fail(path, f"y must be 1-D [N] or 2-D [N, y_dim] with y_dim >= 1, got shape {y.shape}")
    if labels is not None and labels.ndim != 1:
        _fail(path, f"labels must be 1-D [N], got shape {labels.shape}")
    arrays = {"x": x, "y": y} | ({} if labels is None else {"labels": labels})
    if len({len(a) for a in arrays.values()}) > 1:
        _fail(path, "arrays have different lengths: " + ", ".join(f"{k} {len(a)}" for k, a in arrays.items()))
    if len(x) < MIN_EXAMPLES:
        _fail(path, f"has {len(x)} examples; at least {MIN_EXAMPLES} are needed to split and train")
    for name, a in arrays.items():
        if not np.isfinite(a.astype(float)).all():
            _fail(path, f"{name} contains NaN or infinite values")
    y, num_classes = _check_targets(path, y, likelihood, num_classes)
    if labels is not None:
        if (labels != np.round(labels)).any() or (labels < 0).any():
            _fail(path, "labels must be non-negative integers")
        labels = labels.astype(np.int64)
    return Dataset(
        x=x.astype(np.float32),
        y=y,
        labels=labels,
        likelihood=likelihood,
        num_classes=num_classes,
        name=path.stem,
        info={"label_name": "label", "path": str(path)},
    )


def _read(path):
    """``x``, ``y`` and ``labels`` (or ``None``) from the archive, each checked to be numeric."""
    if not path.is_file():
        _fail(path, "no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        # np.load raises ValueError for a file that is neither .npy nor .npz.
        _fail(path, f"not a readable .npz file ({error})")
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        _fail(path, "holds a single .npy array, not an .npz archive of x, y and optionally labels")
    with loaded:
        try:
            arrays = {k: loaded[k] for k in loaded.files}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            # ValueError: an object array, which would need pickle (refused: it can run code).
            _fail(path, f"has an array that cannot be read ({error})")
    for key in ("x", "y"):
        if key not in arrays:
            _fail(path, f"has no array {key!r} (it has {sorted(arrays)}); expected x, y and optionally labels")
    unknown = sorted(set(arrays) - set(KEYS))
    if unknown:
        _fail(path, f"has unexpected arrays {unknown}; expected x, y and optionally labels")
    for name, a in arrays.items():
        if a.dtype == bool:
            arrays[name] = a.astype(np.uint8)
        elif not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            _fail(path, f"{name} has dtype {a.dtype}; it must hold real numbers")
    return arrays["x"], arrays["y"], arrays.get("labels")


def _check_targets(path, y, likelihood, num_classes):
    """``y`` in the dtype of ``likelihood``, and the classes per factor (0 for Gaussian)."""
    if likelihood == "categorical":
        if (y != np.round(y)).any() or (y < 0).any():
            _fail(path, "y must hold non-negative integer classes for a categorical likelihood")
        largest = int(y.max())
        if num_classes is None:
            # A single observed class still needs a two-way categorical to be a distribution worth fitting.
            num_classes = max(largest + 1, 2)
        elif largest >= num_classes:
            _fail(path, f"y has class {largest} but num_classes is {num_classes}")
        return y.astype(np.int64), num_classes
    if likelihood == "bernoulli":
        if not np.isin(y, (0, 1)).all():
            _fail(path, "y must hold only 0 and 1 for a bernoulli likelihood")
        return y.astype(np.float32), 2
    return y.astype(np.float32), 0
