r"""The geometry of the conv networks (``network: conv``), written once for both backends (NumPy only).

For images ``[C, H, W]`` (:mod:`infovae.data.images`):

- the **encoder** ``q(z|x,y)`` convolves the whole image: ``x``'s pixels and ``y``'s put back in place
  (a completion task), or ``y`` alone where ``x`` is no part of the image, whose ``x`` (a condition
  such as a class, or nothing) then joins the flattened features. Nothing is masked: the encoder
  conditions on ``x`` and ``y`` both, and the image is where their pixels' neighbourhoods are;
- two 4x4 convolutions of stride 2 and padding 1 (channels :data:`~infovae.core.architecture.CONV_CHANNELS`,
  ReLU after each) take ``H x W`` to ``floor(H / 4) x floor(W / 4)``, flattened channel-major (torch's
  order, so that the dense layer after them has the same weights in both backends) into the encoder's MLP;
- the **decoder** ``p(y|x,z)`` keeps the MLP's first layer (``x`` and ``z`` each mapped to ``hidden``
  and summed, so that ``x``'s part is computed once per example, not once per latent value), then maps
  ``hidden`` to a ``ceil(H / 4) x ceil(W / 4)`` feature map that two 4x4 transposed convolutions of stride
  2 and padding 1 double twice; the image is cut to ``H x W`` (top left) and ``y``'s pixels are read out.
  A Gaussian decoder with an amortised scale draws ``2 C`` channels: the locations, then the raw scales.

The prior network (``prior: learned``) stays an MLP of ``x``.
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from infovae.core.architecture import CONV_CHANNELS, CVAEConfig

__all__ = ["KERNEL", "PADDING", "STRIDE", "ConvGeometry", "conv_geometry", "conv_parameters", "conv_widest_layer"]

KERNEL, STRIDE, PADDING = 4, 2, 1


@dataclass(frozen=True, eq=False)
class ConvGeometry:
    """The sizes and pixel indices the conv networks of one :class:`CVAEConfig` use.

    :ivar image_shape: ``(C, H, W)``.
    :ivar image_order: ``[C*H*W]`` indices into ``[x, y]`` (a completion task) or ``y`` (otherwise)
        that give the flat image in channel-major order.
    :ivar y_pixels: ``[y_dim]`` the flat image indices of ``y``'s pixels, in ``y``'s order.
    :ivar completes: whether ``x`` holds pixels of the image (a completion task).
    :ivar condition_dim: width of an ``x`` that joins the encoder's features (0 where ``x`` is in the image).
    :ivar encoder_features: width of the encoder's flattened convolution output.
    :ivar decoder_start: ``(channels, height, width)`` of the map the decoder's transposed convolutions start from.
    :ivar output_channels: channels the decoder draws (``2 C`` with an amortised Gaussian scale).
    """

    image_shape: tuple[int, int, int]
    image_order: np.ndarray
    y_pixels: np.ndarray
    completes: bool
    condition_dim: int
    encoder_features: int
    decoder_start: tuple[int, int, int]
    output_channels: int

    @property
    def decoder_start_size(self) -> int:
        return math.prod(self.decoder_start)


@lru_cache(maxsize=64)
def conv_geometry(config: CVAEConfig) -> ConvGeometry:
    """The :class:`ConvGeometry` of ``config`` (a ``network: conv`` config; its checks passed)."""
    assert config.image_shape is not None
    channels, height, width = config.image_shape
    size = channels * height * width
    x_pixels = np.asarray(config.x_pixels, dtype=np.int64)
    completes = len(x_pixels) > 0
    y_pixels = np.setdiff1d(np.arange(size), x_pixels) if completes else np.arange(size)
    # Position p of [x, y] holds pixel placed[p]; the image reads, at each pixel, the position that holds it.
    placed = np.concatenate([x_pixels, y_pixels]) if completes else y_pixels
    image_order = np.argsort(placed)
    last = CONV_CHANNELS[-1]
    return ConvGeometry(
        image_shape=(channels, height, width),
        image_order=image_order,
        y_pixels=y_pixels,
        completes=completes,
        condition_dim=0 if completes else config.x_dim,
        encoder_features=last * (height // 4) * (width // 4),
        decoder_start=(last, -(-height // 4), -(-width // 4)),
        output_channels=2 * channels if config.amortized_scale else channels,
    )


def conv_widest_layer(config: CVAEConfig) -> int:
    """Values per example of the conv networks' widest layer: the feature maps after the encoder's first
    convolution, or the decoder's maps (its start, and after each transposed convolution, which doubles the
    height and width), or the hidden layer."""
    g = conv_geometry(config)
    _, height, width = g.image_shape
    _, start_height, start_width = g.decoder_start
    first = CONV_CHANNELS[0]
    return max(
        config.hidden,
        first * (height // 2) * (width // 2),
        g.decoder_start_size,
        first * 2 * start_height * 2 * start_width,
        g.output_channels * 4 * start_height * 4 * start_width,
    )


def conv_parameters(config: CVAEConfig) -> int:
    """The weights of the conv encoder and decoder of ``config`` (the prior network and a learned
    decoder scale not included: they are the MLP's)."""
    g, h, k2 = conv_geometry(config), config.hidden, KERNEL * KERNEL
    first, second = CONV_CHANNELS
    convs = (g.image_shape[0] * first + first * second) * k2 + first + second
    deconvs = (second * first + first * g.output_channels) * k2 + first + g.output_channels
    encoder = convs + (g.encoder_features + g.condition_dim + 1) * h + (h + 1) * h + (h + 1) * config.latent_param_dim
    decoder = (config.x_dim + 1) * h + config.latent_size * h + (h + 1) * g.decoder_start_size + deconvs
    return encoder + decoder
