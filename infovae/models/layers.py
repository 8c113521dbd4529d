"""Torch building blocks shared by the CVAE's model and guide networks."""

import warnings

import torch
from torch import nn
from torch.nn import functional as F

from infovae.core.architecture import CONV_CHANNELS
from infovae.core.conv import KERNEL, PADDING, STRIDE, ConvGeometry

__all__ = [
    "MIN_SCALE",
    "conv_features",
    "deconv_pixels",
    "image_convs",
    "image_deconvs",
    "linear",
    "mlp",
    "positive_scale",
    "split_loc_scale",
]

# Floor on every predicted standard deviation, so that densities stay bounded.
MIN_SCALE = 1e-3


def linear(in_dim, out_dim, bias=True):
    """``nn.Linear``; with no inputs (an unconditional model's condition) it is its bias alone, which
    torch initialises to zero after warning that the empty weight needs no initialisation."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
        return nn.Linear(in_dim, out_dim, bias=bias)


def mlp(in_dim, hidden, out_dim):
    """Two hidden ReLU layers. The NumPyro twin (:mod:`infovae.numpyro.models.layers`) mirrors it."""
    return nn.Sequential(linear(in_dim, hidden), nn.ReLU(), linear(hidden, hidden), nn.ReLU(), linear(hidden, out_dim))


def image_convs(channels):
    """The conv encoder's two 4x4, stride-2 convolutions, ReLU after each (:mod:`infovae.core.conv`)."""
    first, second = CONV_CHANNELS
    return nn.Sequential(
        nn.Conv2d(channels, first, KERNEL, STRIDE, PADDING),
        nn.ReLU(),
        nn.Conv2d(first, second, KERNEL, STRIDE, PADDING),
        nn.ReLU(),
    )


def image_deconvs(out_channels):
    """The conv decoder's two 4x4, stride-2 transposed convolutions, ReLU between them."""
    first, second = CONV_CHANNELS
    return nn.Sequential(
        nn.ConvTranspose2d(second, first, KERNEL, STRIDE, PADDING),
        nn.ReLU(),
        nn.ConvTranspose2d(first, out_channels, KERNEL, STRIDE, PADDING),
    )


def conv_features(convs, geometry: ConvGeometry, x, y):
    """The encoder's features ``[..., encoder_features + condition_dim]``: the image made of ``x`` and ``y``
    (or of ``y``) convolved and flattened channel-major, then ``x`` where it is no part of the image."""
    flat = torch.cat([x, y], dim=-1) if geometry.completes else y
    lead = flat.shape[:-1]
    images = flat[..., torch.as_tensor(geometry.image_order, device=flat.device)].reshape(-1, *geometry.image_shape)
    features = convs(images).reshape(*lead, -1)
    return torch.cat([features, x], dim=-1) if geometry.condition_dim else features


def deconv_pixels(deconvs, geometry: ConvGeometry, hidden):
    """``y``'s pixels ``[..., y_dim]`` (or locations then raw scales, ``[..., 2 y_dim]``) drawn from the
    decoder's hidden features ``[..., decoder_start_size]``."""
    lead, (_, height, width) = hidden.shape[:-1], geometry.image_shape
    images = deconvs(hidden.reshape(-1, *geometry.decoder_start))[..., :height, :width]
    groups = images.reshape(images.shape[0], geometry.output_channels // geometry.image_shape[0], -1)
    pixels = groups[..., torch.as_tensor(geometry.y_pixels, device=hidden.device)]
    return pixels.reshape(*lead, -1)


def positive_scale(raw, minimum=MIN_SCALE):
    r"""A standard deviation from an unconstrained value: :math:`\mathrm{softplus}(r) + \text{minimum}`."""
    return F.softplus(raw) + minimum


def split_loc_scale(params, minimum=MIN_SCALE):
    """``loc, scale`` from the two halves of the last dim of a network's output."""
    loc, raw = torch.chunk(params, 2, dim=-1)
    return loc, positive_scale(raw, minimum)
