"""scikit-learn's handwritten digits (bundled, no download) as image completion.

As in Pyro's CVAE example, the model sees some quadrants of a binarised 8x8 digit and predicts the
others: ``x`` holds only the pixels of the given quadrants (float32 0/1, in row-major order within
the image), ``y`` the pixels of the other quadrants (Bernoulli, float32 0/1), and the digit is the
label. With ``greyscale`` the pixels keep their intensity, scaled to [0, 1] (soft Bernoulli targets).
The latent should carry what the visible quadrants leave open, which is mostly the digit's
identity. The data has no randomness; the splits are drawn by :func:`~infovae.data.split_dataset`.
"""

import numbers
from typing import Literal

import numpy as np
from pydantic import Field
from sklearn.datasets import load_digits

from infovae.data.base import Dataset
from infovae.data.registry import DataKind, DataSection, register_data
from infovae.errors import DataError

__all__ = ["QUADRANT_ORDER", "DigitsData", "make_digits", "to_images"]

# The quadrants by index; ``quadrants=n`` gives the first n of them.
QUADRANT_ORDER = ("top-left", "top-right", "bottom-left", "bottom-right")
SIDE = 8
# Pixel values run 0..16; a pixel is ink if at least half intensity.
INK_THRESHOLD = 8


def _quadrant_pixels(index):
    """The flat (row-major) indices of quadrant ``index``'s 16 pixels in the 64."""
    half = SIDE // 2
    top, left = half * (index // 2), half * (index % 2)
    rows, cols = np.meshgrid(np.arange(top, top + half), np.arange(left, left + half), indexing="ij")
    return (rows * SIDE + cols).ravel()


def _given_quadrants(quadrants):
    """Quadrant indices from a count (the first n of :data:`QUADRANT_ORDER`) or a list of names/indices."""
    if isinstance(quadrants, numbers.Integral):
        if not 1 <= quadrants <= 3:
            raise DataError(f"quadrants must be 1, 2 or 3 (of the 4), got {quadrants}")
        return list(range(quadrants))
    if isinstance(quadrants, str):
        quadrants = [quadrants]
    indices = []
    for q in quadrants:
        if isinstance(q, str) and q in QUADRANT_ORDER:
            indices.append(QUADRANT_ORDER.index(q))
        elif isinstance(q, numbers.Integral) and 0 <= q < len(QUADRANT_ORDER):
            indices.append(int(q))
        else:
            raise DataError(f"unknown quadrant {q!r}: use one of {QUADRANT_ORDER} or its index 0..3")
    if not 1 <= len(set(indices)) <= 3 or len(set(indices)) != len(indices):
        raise DataError(f"quadrants must name 1 to 3 different quadrants, got {list(quadrants)}")
    return sorted(indices)


def make_digits(quadrants=1, greyscale=False):
    """The digits completion data set (1797 images).

    :param quadrants: the quadrants given as ``x``: a count ``n`` (the first ``n`` of
        :data:`QUADRANT_ORDER`: 1 is top-left) or a list of quadrant names or indices, 1 to 3 of them.
    :param greyscale: pixel intensities in [0, 1] instead of ink / no ink.
    :returns: a :class:`Dataset` with ``x [1797, 16*given]``, ``y [1797, 64 - 16*given]`` and the
        digits as labels; ``info`` holds ``x_pixels`` and ``y_pixels``, the flat indices into the 64
        pixels of ``x``'s and ``y``'s columns, for :func:`to_images`.
    """
    given = _given_quadrants(quadrants)
    bunch = load_digits()
    # [1797, 64]; intensities run 0..16.
    pixels = (bunch.data / 16.0 if greyscale else bunch.data >= INK_THRESHOLD).astype(np.float32)
    x_pixels = np.sort(np.concatenate([_quadrant_pixels(i) for i in given]))
    y_pixels = np.setdiff1d(np.arange(SIDE * SIDE), x_pixels)
    return Dataset(
        x=pixels[:, x_pixels],
        y=pixels[:, y_pixels],
        labels=bunch.target.astype(np.int64),
        likelihood="bernoulli",
        num_classes=2,
        name="digits",
        info={
            "image_shape": (SIDE, SIDE),
            "quadrants": [QUADRANT_ORDER[i] for i in given],
            "x_pixels": x_pixels,
            "y_pixels": y_pixels,
            "label_name": "digit",
        },
    )


def to_images(x, y, info):
    """Rebuild ``[..., 8, 8]`` images from conditions ``x [..., |x|]`` and targets ``y [..., |y|]``.

    ``y`` may be probabilities (e.g. a decoder's means); leading dimensions broadcast, so a single
    row of ones and zeros gives the mask of the given pixels.

    :param info: the data set's ``info`` (from :func:`make_digits`).
    """
    x, y = np.asarray(x), np.asarray(y)
    x_pixels, y_pixels = info["x_pixels"], info["y_pixels"]
    if x.shape[-1:] != (len(x_pixels),) or y.shape[-1:] != (len(y_pixels),):
        raise DataError(f"x and y must end in {len(x_pixels)} and {len(y_pixels)} pixels, got shapes {x.shape} and {y.shape}")
    lead = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    images = np.zeros(lead + (SIDE * SIDE,), dtype=np.result_type(x, y, np.float32))
    images[..., x_pixels] = x
    images[..., y_pixels] = y
    return images.reshape(lead + (SIDE, SIDE))


class DigitsData(DataSection):
    """scikit-learn's handwritten digits as image completion: some quadrants given, the rest predicted (infovae.data.digits)."""

    kind: Literal["digits"] = "digits"
    quadrants: int = Field(1, ge=1, le=3, description="Quadrants of the 8x8 image given as the condition x.")
    greyscale: bool = Field(False, description="Pixel intensities in [0, 1] (soft Bernoulli targets) instead of ink / no ink.")


def _load(section, likelihood):
    return make_digits(quadrants=section.quadrants, greyscale=section.greyscale), None


register_data(DataKind("digits", DigitsData, _load, likelihood="bernoulli"))
