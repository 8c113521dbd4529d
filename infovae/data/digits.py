"""scikit-learn's handwritten digits (bundled, no download) as image completion.

As in Pyro's CVAE example, the model sees some quadrants of a binarised 8x8 digit and predicts the
others: ``x`` holds only the pixels of the given quadrants (float32 0/1, in row-major order within
the image), ``y`` the pixels of the other quadrants (Bernoulli, float32 0/1), and the digit is the
label. With ``greyscale`` the pixels keep their intensity, scaled to [0, 1] (soft Bernoulli targets).
The latent should carry what the visible quadrants leave open, which is mostly the digit's
identity. The data has no randomness; the splits are drawn by :func:`~infovae.data.split_dataset`.
"""

import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from infovae.data.base import Dataset
from infovae.data.images import QUADRANT_ORDER, quadrant_layout
from infovae.data.registry import DataKind, DataSection, register_data

__all__ = ["QUADRANT_ORDER", "DigitsData", "make_digits", "to_images"]

SIDE = 8
# Pixel values run 0..16; a pixel is ink if at least half intensity.
INK_THRESHOLD = 8


def make_digits(quadrants=1, greyscale=False):
    """The digits completion data set (1797 images).

    :param quadrants: the quadrants given as ``x``: a count ``n`` (the first ``n`` of
        :data:`QUADRANT_ORDER`: 1 is top-left) or a list of quadrant names or indices, 1 to 3 of them.
    :param greyscale: pixel intensities in [0, 1] instead of ink / no ink.
    :returns: a :class:`Dataset` with ``x [1797, 16*given]``, ``y [1797, 64 - 16*given]`` and the
        digits as labels; ``info["image"]`` is its :class:`~infovae.data.images.ImageLayout` (a ``[1, 8, 8]``
        image), for :func:`to_images` and reports.
    """
    layout, names = quadrant_layout(SIDE, quadrants)
    intensities, digits = _bundled_digits()
    pixels = (intensities / 16.0 if greyscale else intensities >= INK_THRESHOLD).astype(np.float32)
    return Dataset(
        x=pixels[:, layout.x_pixels],
        y=pixels[:, layout.y_pixels],
        labels=digits,
        likelihood="bernoulli",
        num_classes=2,
        name="digits",
        info={"image": layout, "quadrants": names, "label_name": "digit"},
    )


def _bundled_digits():
    """scikit-learn's digits, ``(intensities [1797, 64] in 0..16, digits [1797] int64)``, as its
    ``load_digits`` returns them, read from the file scikit-learn bundles without importing
    scikit-learn (about a second, more than the rest of a short NumPyro run's data and set-up, which
    needs nothing else from it). Where that file is not where scikit-learn has kept it, ``load_digits``
    reads it."""
    spec = importlib.util.find_spec("sklearn")
    bundled = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if bundled is not None and bundled.is_file():
        # One row per image: 64 intensities, then the digit.
        table = np.loadtxt(bundled, delimiter=",")
        return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target.astype(np.int64)


def to_images(x, y, info):
    """Rebuild ``[..., 8, 8]`` images from conditions ``x [..., |x|]`` and targets ``y [..., |y|]``.

    ``y`` may be probabilities (e.g. a decoder's means); leading dimensions broadcast, so a single
    row of ones and zeros gives the mask of the given pixels.

    :param info: the data set's ``info`` (from :func:`make_digits`).
    """
    return info["image"].to_images(x, y)[..., 0, :, :]


class DigitsData(DataSection):
    """scikit-learn's handwritten digits as image completion: some quadrants given, the rest predicted (infovae.data.digits)."""

    kind: Literal["digits"] = "digits"
    quadrants: int = Field(1, ge=1, le=3, description="Quadrants of the 8x8 image given as the condition x.")
    greyscale: bool = Field(False, description="Pixel intensities in [0, 1] (soft Bernoulli targets) instead of ink / no ink.")


def _load(section, likelihood):
    return make_digits(quadrants=section.quadrants, greyscale=section.greyscale), None


register_data(DataKind("digits", DigitsData, _load, likelihood="bernoulli"))
