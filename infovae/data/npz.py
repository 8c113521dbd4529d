"""Your own arrays from an ``.npz`` file, validated so that bad data is refused with a clear message.

Images: with ``data.image_shape: [C, H, W]`` the data are images (reports draw them). Either ``y`` is the
whole image (``C*H*W`` columns in NumPy's order for ``[C, H, W]``: channel-major, then row-major) and ``x``,
if any, is a condition outside the image (a class, say); or the file holds ``x_mask``, booleans
``[C, H, W]`` (or ``[H, W]``, the same for every channel) true at the pixels given as ``x``: then ``x``
holds those pixels and ``y`` the others, each in image order (the completion task of the ``digits`` and
``mnist`` data). See :class:`~infovae.data.images.ImageLayout`.
"""

import math
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt, field_validator

from infovae.core.architecture import LIKELIHOODS
from infovae.data.base import Dataset
from infovae.data.images import ImageLayout
from infovae.data.registry import DataKind, DataSection, register_data
from infovae.errors import DataError
from infovae.files import npz_refusal
from infovae.machine import physical_memory

__all__ = ["MAX_CLASSES", "MAX_NPZ_BYTES", "MIN_EXAMPLES", "NpzData", "load_npz", "max_data_bytes"]

# The fewest examples that still leave two in each of the train, validation and test splits.
MIN_EXAMPLES = 10
# More classes per factor than this is not a categorical target but a mistake (an id column, say).
MAX_CLASSES = 100_000
# The most bytes an .npz file's arrays may hold once loaded (also at most half the machine's memory).
MAX_NPZ_BYTES = 8 << 30
KEYS = ("x", "y", "labels", "x_mask")
EXPECTED = "expected y and optionally x, labels and x_mask"


def _fail(path, message):
    raise DataError(f"{path}: {message}")


def load_npz(path, likelihood, num_classes=None, image_shape=None):
    """Read ``y`` [N, y_dim] (or [N], read as [N, 1]) and optionally ``x`` [N, x_dim], ``labels`` [N] and,
    for images, ``x_mask`` (see the module's docstring).

    Without ``x`` (or with ``x`` of width 0) the model is an unconditional VAE. ``y`` must fit the
    likelihood: non-negative integer classes below ``num_classes`` (default ``max(y) + 1``, at least 2,
    at most :data:`MAX_CLASSES`) for ``"categorical"``; values in [0, 1] for ``"bernoulli"`` (zeros and
    ones, or intensities such as greyscale pixels: soft targets); finite numbers for ``"gaussian"``.
    ``labels`` must be non-negative integers. Values are checked in the dtype training uses (float32),
    so that a number too large for it is refused here. The result has ``x`` float32, ``y`` int64
    (categorical) or float32, and ``labels`` int64; its name is the file's stem. With ``image_shape``
    (``(C, H, W)``) its ``info["image"]`` is the :class:`~infovae.data.images.ImageLayout`.

    :raises DataError: naming the file and the problem.
    """
    if likelihood not in LIKELIHOODS:
        raise DataError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if num_classes is not None and (likelihood != "categorical" or num_classes < 2):
        raise DataError(f"num_classes={num_classes!r} needs the categorical likelihood and at least 2 classes")
    path = Path(path)
    x, y, labels, x_mask = _read(path)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] == 0:
        _fail(path, f"y must be 1-D [N] or 2-D [N, y_dim] with y_dim >= 1, got shape {y.shape}")
    if x is None:
        x = np.zeros((len(y), 0), np.float32)
    if x.ndim != 2:
        _fail(path, f"x must be 2-D [N, x_dim], got shape {x.shape}")
    if labels is not None and labels.ndim != 1:
        _fail(path, f"labels must be 1-D [N], got shape {labels.shape}")
    arrays = {"x": x, "y": y} | ({} if labels is None else {"labels": labels})
    if len({len(a) for a in arrays.values()}) > 1:
        _fail(path, "arrays have different lengths: " + ", ".join(f"{k} {len(a)}" for k, a in arrays.items()))
    if len(y) < MIN_EXAMPLES:
        _fail(path, f"has {len(y)} examples; at least {MIN_EXAMPLES} are needed to split and train")
    x = _float32(path, "x", x)
    y, num_classes = _check_targets(path, y, likelihood, num_classes)
    if labels is not None:
        values = _float32(path, "labels", labels)
        if (values != np.round(values)).any() or (values < 0).any():
            _fail(path, "labels must be non-negative integers")
        # Diagnostics count examples per label: a label id beyond these bounds would allocate gigabytes.
        most = max(len(labels), MAX_CLASSES)
        if (values >= most).any():
            _fail(
                path, f"labels go up to {values.max():.0f}; label ids must be below {most:,} (the examples, or {MAX_CLASSES:,})"
            )
        labels = labels.astype(np.int64)
    info = {"label_name": "label", "path": str(path)}
    if image_shape is not None:
        info["image"] = _layout(path, image_shape, x_mask, x.shape[1], y.shape[1])
    elif x_mask is not None:
        _fail(path, "holds x_mask, which says where x sits in an image: set data.image_shape: [C, H, W] too")
    return Dataset(x=x, y=y, labels=labels, likelihood=likelihood, num_classes=num_classes, name=path.stem, info=info)


def _layout(path, image_shape, x_mask, x_dim, y_dim):
    """The :class:`ImageLayout` of images of ``image_shape`` for ``x`` and ``y`` of these widths."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        _fail(path, f"image_shape must be three positive sizes [C, H, W], got {list(image_shape)}")
    size = int(np.prod(shape))
    if x_mask is None:
        if y_dim != size:
            _fail(
                path,
                f"y has {y_dim} columns but image_shape {list(shape)} has {size} pixels: without x_mask y must be the "
                "whole image (for a completion task add x_mask, true at the pixels given as x)",
            )
        return ImageLayout.whole(shape)
    if x_mask.shape not in (shape, shape[1:]):
        _fail(path, f"x_mask must have shape {list(shape)} or {list(shape[1:])} (image_shape), got {list(x_mask.shape)}")
    if not np.isin(x_mask, (0, 1)).all():
        _fail(path, "x_mask must hold booleans (or 0 and 1): true at the pixels given as x")
    layout = ImageLayout.from_mask(shape, x_mask.astype(bool))
    if (len(layout.x_pixels), len(layout.y_pixels)) != (x_dim, y_dim):
        _fail(
            path,
            f"x_mask gives {len(layout.x_pixels)} pixels to x and {len(layout.y_pixels)} to y, but x has {x_dim} "
            f"columns and y {y_dim}",
        )
    return layout


def _float32(path, name, array):
    """``array`` as float32, refused if any value is NaN, infinite or too large for float32."""
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(np.float32)
    if not np.isfinite(converted).all():
        bad = ~np.isfinite(converted)
        original = array[bad].flat[0]
        what = "NaN or infinite values" if not np.isfinite(float(original)) else f"values too large for float32 (e.g. {original})"
        _fail(path, f"{name} contains {what}")
    return converted


def max_data_bytes() -> int:
    """The most bytes the arrays of an ``.npz`` file may hold once loaded: :data:`MAX_NPZ_BYTES`, and at
    most half of this machine's memory."""
    memory = physical_memory()
    return MAX_NPZ_BYTES if memory is None else min(MAX_NPZ_BYTES, memory // 2)


def _check_sizes(path):
    """The size each member of the archive claims in its ``.npy`` header, added up and bounded before
    anything is decompressed (a few megabytes of zeros can expand to gigabytes)."""
    limit, total = max_data_bytes(), 0
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if not member.filename.endswith(".npy"):
                    continue
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (
                        np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(f)
                total += math.prod(shape) * dtype.itemsize
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError):
        return  # not a zip (a single .npy), or damaged: np.load names the problem
    if total > limit:
        _fail(path, f"holds arrays of {total:,} bytes once loaded; at most {limit:,} are supported here")


def _read(path):
    """``x``, ``y``, ``labels`` and ``x_mask`` (``None`` where absent) from the archive, each checked to be numeric."""
    if not path.is_file():
        _fail(path, "is a directory, not an .npz file" if path.is_dir() else "no such file")
    _check_sizes(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        # np.load raises ValueError for a file that is neither .npy nor .npz.
        reason = npz_refusal(path, error)
        not_zip = reason.startswith("it is not an .npz")
        _fail(path, reason.removeprefix("it ") if not_zip else f"not a readable .npz file ({reason})")
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        _fail(path, "holds a single .npy array, not an .npz archive of y and optionally x, labels and x_mask")
    with loaded:
        try:
            arrays = {k: loaded[k] for k in loaded.files}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            # ValueError: an object array, which would need pickle (refused: it can run code). NumPy's own
            # message goes on to suggest loading it unsafely: not advice to pass on.
            _fail(path, f"has an array that cannot be read ({npz_refusal(path, error)})")
        except MemoryError:
            _fail(path, "has an array too large to load")
    if "y" not in arrays:
        _fail(path, f"has no array 'y' (it has {sorted(arrays)}); {EXPECTED}")
    unknown = sorted(set(arrays) - set(KEYS))
    if unknown:
        _fail(path, f"has unexpected arrays {unknown}; {EXPECTED}")
    for name, a in arrays.items():
        if a.dtype == bool:
            arrays[name] = a.astype(np.uint8)
        elif not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            _fail(path, f"{name} has dtype {a.dtype}; it must hold real numbers")
    return arrays.get("x"), arrays["y"], arrays.get("labels"), arrays.get("x_mask")


def _check_targets(path, y, likelihood, num_classes):
    """``y`` in the dtype of ``likelihood``, and the classes per factor (0 for Gaussian)."""
    values = _float32(path, "y", y)
    if likelihood == "categorical":
        if (values != np.round(values)).any() or (values < 0).any():
            _fail(path, "y must hold non-negative integer classes for a categorical likelihood")
        largest = int(values.max())
        if largest >= MAX_CLASSES:
            _fail(path, f"y has class {largest}; a categorical likelihood supports at most {MAX_CLASSES} classes per factor")
        if num_classes is None:
            # A single observed class still needs a two-way categorical to be a distribution worth fitting.
            num_classes = max(largest + 1, 2)
        elif largest >= num_classes:
            _fail(path, f"y has class {largest} but num_classes is {num_classes}")
        return y.astype(np.int64), num_classes
    if likelihood == "bernoulli":
        if (values < 0).any() or (values > 1).any():
            _fail(path, "y must hold values in [0, 1] for a bernoulli likelihood (0/1, or intensities as soft targets)")
        return values, 2
    return values, 0


class NpzData(DataSection):
    """Your own arrays: an .npz file with y [N, y_dim] and optionally x [N, x_dim] (no x: an unconditional VAE),
    labels [N] and, for images, x_mask (infovae.data.npz)."""

    kind: Literal["npz"] = "npz"
    path: Path = Field(description="The .npz file (relative paths are resolved against the config file's folder).")
    num_classes: int | None = Field(
        None, ge=2, le=MAX_CLASSES, description="Classes per factor of y (categorical); default max(y) + 1."
    )
    image_shape: tuple[PositiveInt, PositiveInt, PositiveInt] | None = Field(
        None,
        description="[C, H, W]: the data are images (reports draw them). y is the whole image, or with an x_mask array "
        "in the file (true at the pixels given as x) x and y are its two parts, each in image order.",
    )

    @field_validator("image_shape", mode="before")
    @classmethod
    def _three_sizes(cls, value):
        sizes = value if isinstance(value, (list, tuple)) else ()
        if value is not None and (
            len(sizes) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
        ):
            raise ValueError("must be [C, H, W]: three positive whole numbers (channels, height, width)")
        return value

    def resolve_paths(self, base_dir):
        if self.path.is_absolute():
            return self
        return self.model_copy(update={"path": (Path(base_dir) / self.path).resolve()})


def _load(section, likelihood):
    return load_npz(section.path, likelihood, num_classes=section.num_classes, image_shape=section.image_shape), None


register_data(DataKind("npz", NpzData, _load, likelihood=None))
