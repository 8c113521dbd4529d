"""Flax building blocks shared by the CVAE's model and guide networks; the twin of
:mod:`infovae.models.layers`.

Flax names the layers of an ``nn.Sequential`` ``layers_<i>`` where torch names them ``<i>`` (the
index counts the activations too), so every torch parameter has exactly one flax twin; see
:mod:`infovae.numpyro.weights`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from infovae.core.architecture import CONV_CHANNELS
from infovae.core.conv import KERNEL, PADDING, STRIDE, ConvGeometry

__all__ = [
    "MIN_SCALE",
    "LatentLinear",
    "conv_features",
    "deconv_pixels",
    "image_convs",
    "image_deconvs",
    "mlp",
    "positive_scale",
    "split_loc_scale",
]

# Floor on every predicted standard deviation, so that densities stay bounded (as the torch twin's).
MIN_SCALE = 1e-3


def mlp(hidden, out_dim):
    """Two hidden ReLU layers, as :func:`infovae.models.layers.mlp`; flax infers the input width."""
    return nn.Sequential([nn.Dense(hidden), nn.relu, nn.Dense(hidden), nn.relu, nn.Dense(out_dim)])


# flax convolves channels-last images: NCHW <-> NHWC.
TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
# A torch transposed convolution of padding p pads the stride-dilated input by KERNEL - 1 - p in flax
# (lax.conv_transpose), whose transpose_kernel=True flips the kernel as torch's gradient of a convolution does.
DECONV_PADDING = KERNEL - 1 - PADDING


def image_convs():
    """The conv encoder's convolutions, as :func:`infovae.models.layers.image_convs` (flax infers the input
    channels), on channels-last images."""
    first, second = CONV_CHANNELS
    options = {"kernel_size": (KERNEL, KERNEL), "strides": (STRIDE, STRIDE), "padding": ((PADDING, PADDING), (PADDING, PADDING))}
    return nn.Sequential([nn.Conv(first, **options), nn.relu, nn.Conv(second, **options), nn.relu])


def image_deconvs(out_channels):
    """The conv decoder's transposed convolutions, as :func:`infovae.models.layers.image_deconvs`."""
    first, _ = CONV_CHANNELS
    pad = ((DECONV_PADDING, DECONV_PADDING), (DECONV_PADDING, DECONV_PADDING))
    options = {"kernel_size": (KERNEL, KERNEL), "strides": (STRIDE, STRIDE), "padding": pad, "transpose_kernel": True}
    return nn.Sequential([nn.ConvTranspose(first, **options), nn.relu, nn.ConvTranspose(out_channels, **options)])


def conv_features(convs, geometry: ConvGeometry, x, y):
    """The encoder's features, as :func:`infovae.models.layers.conv_features` (flattened channel-major,
    so that the dense layer after them has torch's weights)."""
    flat = jnp.concatenate([x, y], axis=-1) if geometry.completes else y
    lead = flat.shape[:-1]
    images = flat[..., geometry.image_order].reshape(-1, *geometry.image_shape)
    features = convs(images.transpose(TO_NHWC)).transpose(TO_NCHW).reshape(*lead, -1)
    return jnp.concatenate([features, x], axis=-1) if geometry.condition_dim else features


def deconv_pixels(deconvs, geometry: ConvGeometry, hidden):
    """``y``'s pixels drawn from the decoder's hidden features, as :func:`infovae.models.layers.deconv_pixels`."""
    lead, (_, height, width) = hidden.shape[:-1], geometry.image_shape
    start = hidden.reshape(-1, *geometry.decoder_start).transpose(TO_NHWC)
    images = deconvs(start).transpose(TO_NCHW)[..., :height, :width]
    groups = images.reshape(images.shape[0], geometry.output_channels // geometry.image_shape[0], -1)
    return groups[..., geometry.y_pixels].reshape(*lead, -1)


class LatentLinear(nn.Module):
    r"""The bias-free linear map :math:`z \mapsto z W` of a latent, ``W`` of shape
    ``[latent_size, features]`` (a ``nn.Dense`` kernel's layout).

    A discrete ``z`` is an integer in ``[0, latent_size)`` and selects row ``W[z]``: the map's response
    to the one-hot vector of ``z``, without building it. Leading dims of ``z`` are kept, so stacked
    latent values broadcast against a batch.
    """

    latent_size: int
    features: int
    discrete: bool

    @nn.compact
    def __call__(self, z):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (self.latent_size, self.features))
        return kernel[z] if self.discrete else z @ kernel


def positive_scale(raw, minimum=MIN_SCALE):
    r"""A standard deviation from an unconstrained value: :math:`\mathrm{softplus}(r) + \text{minimum}`."""
    return jax.nn.softplus(raw) + minimum


def split_loc_scale(params, minimum=MIN_SCALE):
    """``loc, scale`` from the two halves of the last dim of a network's output."""
    loc, raw = jnp.split(params, 2, axis=-1)
    return loc, positive_scale(raw, minimum)
