"""scikit-learn's handwritten digits (bundled, no download) as image completion.

As in Pyro's CVAE example, the model sees some quadrants of a binarised 8x8 digit (``x``) and
predicts the others (``y``, Bernoulli pixels); the digit is the label. The latent should carry what
the visible quadrants leave open, which is mostly the digit's identity.
"""

import numpy as np
from sklearn.datasets import load_digits

from infovae.data.base import Dataset

__all__ = ["QUADRANT_ORDER", "make_digits", "to_images"]

# Quadrants in the order they are given: top-left, top-right, bottom-left, bottom-right.
QUADRANT_ORDER = ("top-left", "top-right", "bottom-left", "bottom-right")
SIDE = 8
# Pixel values run 0..16; ink is at least half intensity.
INK_THRESHOLD = 8


def _quadrant_pixels(index):
    rows = range(0, 4) if index in (0, 1) else range(4, 8)
    cols = range(0, 4) if index in (0, 2) else range(4, 8)
    return np.array([r * SIDE + c for r in rows for c in cols])


def make_digits(quadrants=1):
    """The digits data set: the first ``quadrants`` quadrants (of :data:`QUADRANT_ORDER`) given as ``x``."""
    if not 1 <= quadrants <= 3:
        raise ValueError(f"quadrants must be 1, 2 or 3 (of the 4), got {quadrants}")
    bunch = load_digits()
    pixels = (bunch.data >= INK_THRESHOLD).astype(np.float32)  # [1797, 64]
    x_pixels = np.concatenate([_quadrant_pixels(i) for i in range(quadrants)])
    y_pixels = np.setdiff1d(np.arange(SIDE * SIDE), x_pixels)
    return Dataset(
        x=pixels[:, x_pixels],
        y=pixels[:, y_pixels],
        labels=bunch.target.astype(np.int64),
        likelihood="bernoulli",
        num_classes=2,
        name="digits",
        info={"image_shape": (SIDE, SIDE), "x_pixels": x_pixels, "y_pixels": y_pixels, "label_name": "digit"},
    )


def to_images(x, y, info):
    """Rebuild ``[n, 8, 8]`` images from conditions ``x [n, |x|]`` and targets (or their probabilities) ``y``."""
    x, y = np.asarray(x), np.asarray(y)
    n = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    images = np.zeros(n + (SIDE * SIDE,), dtype=np.result_type(x, y, np.float32))
    images[..., info["x_pixels"]] = x
    images[..., info["y_pixels"]] = y
    return images.reshape(n + (SIDE, SIDE))
