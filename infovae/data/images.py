"""Images as a data shape: where the columns of ``x`` and ``y`` sit in a ``[C, H, W]`` image.

A data set of images carries an :class:`ImageLayout` in its ``info["image"]``: the image's shape and the
flat indices (channel-major, then row-major: NumPy's order for ``[C, H, W]``) of the pixels that ``x``'s
columns and ``y``'s columns hold. Two tasks have this shape:

- *completion* (Pyro's CVAE tutorial): ``x`` holds the given pixels, ``y`` the others, each in image
  order; together they are the whole image;
- *generation*: ``y`` is the whole image and ``x`` no part of it (an unconditional model, whose ``x`` has
  width 0, or a condition such as a class).

Reports draw images from any layout: :meth:`ImageLayout.to_images` puts ``x`` and ``y`` back in place.
"""

import numbers
from dataclasses import dataclass

import numpy as np

from infovae.errors import DataError

__all__ = ["QUADRANT_ORDER", "ImageLayout", "given_quadrants", "quadrant_layout"]

# The quadrants by index; ``quadrants=n`` gives the first n of them.
QUADRANT_ORDER = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass(frozen=True, eq=False)
class ImageLayout:
    """The image shape ``(C, H, W)`` and the flat pixel indices of ``x``'s and ``y``'s columns.

    :param x_pixels: ``[x_dim]`` indices of the given pixels, or empty when ``x`` is no part of the image.
    :param y_pixels: ``[y_dim]`` indices of the pixels ``y`` holds.
    """

    shape: tuple[int, int, int]
    x_pixels: np.ndarray
    y_pixels: np.ndarray

    @classmethod
    def whole(cls, shape):
        """``y`` is the whole image; ``x`` (of any width) is no part of it."""
        shape = tuple(int(s) for s in shape)
        return cls(shape, np.zeros(0, np.int64), np.arange(int(np.prod(shape))))

    @classmethod
    def from_mask(cls, shape, given):
        """``x`` holds the pixels where ``given`` (``[C, H, W]``, or ``[H, W]`` for every channel) is true,
        ``y`` the others, each in image order."""
        shape = tuple(int(s) for s in shape)
        mask = np.broadcast_to(np.asarray(given, dtype=bool), shape).ravel()
        return cls(shape, np.flatnonzero(mask), np.flatnonzero(~mask))

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def completes(self):
        """Whether ``x`` holds pixels of the image (a completion task)."""
        return len(self.x_pixels) > 0

    @property
    def given(self):
        """``[C, H, W]`` booleans: the pixels ``x`` holds."""
        mask = np.zeros(self.size, dtype=bool)
        mask[self.x_pixels] = True
        return mask.reshape(self.shape)

    def to_images(self, x, y):
        """Images ``[..., C, H, W]`` from ``x [..., x_dim]`` and ``y [..., y_dim]``; leading dimensions
        broadcast. ``y`` may be a decoder's means. Where ``x`` is no part of the image it is ignored."""
        x, y = np.asarray(x), np.asarray(y)
        if y.shape[-1:] != (len(self.y_pixels),) or (self.completes and x.shape[-1:] != (len(self.x_pixels),)):
            want = f"{len(self.x_pixels)} and {len(self.y_pixels)}" if self.completes else f"any number and {len(self.y_pixels)}"
            raise DataError(f"x and y must end in {want} pixels, got shapes {x.shape} and {y.shape}")
        lead = np.broadcast_shapes(x.shape[:-1], y.shape[:-1]) if self.completes else y.shape[:-1]
        images = np.zeros(lead + (self.size,), dtype=np.result_type(x, y, np.float32))
        if self.completes:
            images[..., self.x_pixels] = x
        images[..., self.y_pixels] = y
        return images.reshape(lead + self.shape)

    def describe(self):
        """One phrase for reports: the shape and what ``x`` and ``y`` hold."""
        c, h, w = self.shape
        size = f"{h}×{w}" + (f" with {c} channels" if c > 1 else "")
        if self.completes:
            return f"{size} images: x holds {len(self.x_pixels)} given pixels, y the other {len(self.y_pixels)}"
        return f"{size} images: y is the whole image ({len(self.y_pixels)} pixels)"


def given_quadrants(quadrants):
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


def quadrant_layout(side, quadrants):
    """The layout of a one-channel ``side × side`` image whose given quadrants (see
    :func:`given_quadrants`) are ``x``; also returns their names."""
    given = given_quadrants(quadrants)
    half = side // 2
    mask = np.zeros((side, side), dtype=bool)
    for index in given:
        top, left = half * (index // 2), half * (index % 2)
        mask[top : top + half, left : left + half] = True
    return ImageLayout.from_mask((1, side, side), mask), [QUADRANT_ORDER[i] for i in given]
