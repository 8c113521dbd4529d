"""Your own arrays from an ``.npz`` file, validated so that bad data is refused with a clear message."""

import zipfile
from pathlib import Path

import numpy as np

from infovae.data.base import Dataset

__all__ = ["load_npz"]

MIN_EXAMPLES = 10


def _fail(path, message):
    raise ValueError(f"{path}: {message}")


def load_npz(path, likelihood, num_classes=None):
    """Read ``x`` [N, x_dim], ``y`` [N, y_dim] (or [N]) and optionally ``labels`` [N] from ``path``.

    ``y`` must fit the likelihood: non-negative integers below ``num_classes`` (default ``max + 1``)
    for ``"categorical"``, zeros and ones for ``"bernoulli"``, finite numbers for ``"gaussian"``.
    ``labels`` must be non-negative integers.

    :raises ValueError: naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        _fail(path, "no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        _fail(path, f"not a readable .npz file ({error})")
    for key in ("x", "y"):
        if key not in arrays:
            _fail(path, f"has no array {key!r} (it has {sorted(arrays)}); expected x, y and optionally labels")
    unknown = set(arrays) - {"x", "y", "labels"}
    if unknown:
        _fail(path, f"has unexpected arrays {sorted(unknown)}; expected x, y and optionally labels")
    x, y, labels = arrays["x"], arrays["y"], arrays.get("labels")
    for name, a in (("x", x), ("y", y)) + ((("labels", labels),) if labels is not None else ()):
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            _fail(path, f"{name} has dtype {a.dtype}; it must be numeric")
    if x.ndim != 2:
        _fail(path, f"x must be 2-D [N, x_dim], got shape {x.shape}")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        _fail(path, f"y must be 1-D [N] or 2-D [N, y_dim], got shape {y.shape}")
    if labels is not None and labels.ndim != 1:
        _fail(path, f"labels must be 1-D [N], got shape {labels.shape}")
    lengths = {"x": len(x), "y": len(y)} | ({"labels": len(labels)} if labels is not None else {})
    if len(set(lengths.values())) > 1:
        _fail(path, "arrays have different lengths: " + ", ".join(f"{k} {v}" for k, v in lengths.items()))
    if len(x) < MIN_EXAMPLES:
        _fail(path, f"has {len(x)} examples; at least {MIN_EXAMPLES} are needed to split and train")
    for name, a in (("x", x), ("y", y)):
        if not np.isfinite(a.astype(float)).all():
            _fail(path, f"{name} contains NaN or infinite values")
    y = _check_targets(path, y, likelihood, num_classes)
    if labels is not None:
        if not np.isfinite(labels.astype(float)).all() or (labels != np.round(labels)).any() or (labels < 0).any():
            _fail(path, "labels must be non-negative integers")
        labels = labels.astype(np.int64)
    classes = {"categorical": int(y.max()) + 1 if num_classes is None else num_classes, "bernoulli": 2, "gaussian": 0}[likelihood]
    return Dataset(
        x=x.astype(np.float32), y=y, labels=labels, likelihood=likelihood, num_classes=max(classes, 2) if likelihood == "categorical" else classes,
        name=path.stem, info={"label_name": "label"},
    )


def _check_targets(path, y, likelihood, num_classes):
    if likelihood == "categorical":
        if (y != np.round(y)).any() or (y < 0).any():
            _fail(path, "y must hold non-negative integer classes for a categorical likelihood")
        if num_classes is not None and y.max() >= num_classes:
            _fail(path, f"y has class {int(y.max())} but num_classes is {num_classes}")
        return y.astype(np.int64)
    if likelihood == "bernoulli":
        if not np.isin(y, (0, 1)).all():
            _fail(path, "y must hold only 0 and 1 for a bernoulli likelihood")
        return y.astype(np.float32)
    if likelihood == "gaussian":
        return y.astype(np.float32)
    raise ValueError(f"likelihood must be categorical, bernoulli or gaussian, got {likelihood!r}")
