"""The shape of a CVAE, shared by the Pyro and NumPyro backends (no framework imports here)."""

import math
from dataclasses import asdict, dataclass
from numbers import Real

from infovae.errors import UserInputError

__all__ = ["CONV_CHANNELS", "CVAEConfig", "DECODER_SCALES", "LATENTS", "LIKELIHOODS", "NETWORKS", "PRIORS"]

LATENTS = ("discrete", "gaussian")
PRIORS = ("fixed", "learned")
LIKELIHOODS = ("categorical", "bernoulli", "gaussian")
NETWORKS = ("mlp", "conv")
# The conv networks' channels after their first and second 4x4, stride-2 convolutions (the decoder's
# transposed convolutions run the other way): each halves the height and width.
CONV_CHANNELS = (16, 32)
# How a Gaussian decoder gets its standard deviation (or a positive number: fixed).
DECODER_SCALES = ("learned", "amortized")


@dataclass(frozen=True)
class CVAEConfig:
    """Sizes and kinds of a conditional VAE ``p(z|x) p(y|x,z)``, ``q(z|x,y)``.

    :param x_dim: size of the condition ``x`` (a flat vector); 0 makes an unconditional VAE.
    :param y_dim: number of factors of ``y``: time steps (categorical), pixels (Bernoulli) or dims (Gaussian).
    :param num_classes: classes per factor, for the categorical likelihood.
    :param latent: ``"discrete"`` (a router over ``latent_size`` values) or ``"gaussian"`` (``latent_size`` dims).
    :param latent_size: number of latent values (discrete) or dimensions (Gaussian).
    :param prior: ``"fixed"`` (uniform / standard normal) or ``"learned"`` (``p(z|x)`` from a network).
    :param likelihood: ``"categorical"``, ``"bernoulli"`` or ``"gaussian"``.
    :param hidden: width of the two hidden layers of every network.
    :param decoder_scale: a Gaussian decoder's standard deviation: ``"learned"`` (one per output
        dimension, shared by all examples), ``"amortized"`` (per example, from the decoder network)
        or a positive number (fixed).
    :param min_scale: floor on every predicted or learned standard deviation, so that densities stay
        bounded.
    :param network: ``"mlp"``, or ``"conv"`` for images: the encoder convolves the whole image (``x``'s
        pixels and ``y``'s in place, as ``q(z|x,y)`` sees both) and the decoder draws the image with
        transposed convolutions, of which it reads ``y``'s pixels (see :mod:`infovae.core.conv`).
    :param image_shape: ``(C, H, W)`` of the images (conv only).
    :param x_pixels: the flat indices (channel-major) of the pixels ``x`` holds, in ``x``'s order;
        empty where ``x`` is no part of the image (a generation task). ``y`` holds the others in order.
    """

    x_dim: int
    y_dim: int
    num_classes: int = 2
    latent: str = "discrete"
    latent_size: int = 8
    prior: str = "fixed"
    likelihood: str = "categorical"
    hidden: int = 128
    decoder_scale: str | float = "learned"
    min_scale: float = 1e-3
    network: str = "mlp"
    image_shape: tuple[int, int, int] | None = None
    x_pixels: tuple[int, ...] = ()

    def __post_init__(self):
        for name, minimum in (("x_dim", 0), ("y_dim", 1), ("latent_size", 1), ("hidden", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise UserInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if self.likelihood == "categorical" and (
            isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2
        ):
            raise UserInputError(f"num_classes must be an integer >= 2 for a categorical likelihood, got {self.num_classes!r}")
        for name, allowed in (("latent", LATENTS), ("prior", PRIORS), ("likelihood", LIKELIHOODS)):
            if getattr(self, name) not in allowed:
                raise UserInputError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not (self.decoder_scale in DECODER_SCALES or _positive(self.decoder_scale)):
            raise UserInputError(
                f"decoder_scale must be one of {DECODER_SCALES} or a positive number, got {self.decoder_scale!r}"
            )
        if not _positive(self.min_scale):
            raise UserInputError(f"min_scale must be a positive number, got {self.min_scale!r}")
        if self.network not in NETWORKS:
            raise UserInputError(f"network must be one of {NETWORKS}, got {self.network!r}")
        if self.network == "conv":
            self._check_conv()

    def _check_conv(self):
        if self.image_shape is None:
            raise UserInputError("network conv needs images: an image_shape (C, H, W)")
        if self.likelihood == "categorical":
            raise UserInputError("network conv draws pixels: it needs a bernoulli or gaussian likelihood, not categorical")
        channels, height, width = self.image_shape
        if min(height, width) < 4 or channels < 1:
            raise UserInputError(f"network conv needs images of at least 4x4 pixels, got image_shape {self.image_shape}")
        size, given = channels * height * width, len(self.x_pixels)
        if given and given != self.x_dim or self.y_dim != size - given:
            raise UserInputError(
                f"image_shape {self.image_shape} with {given} given pixels does not fit x_dim={self.x_dim}, y_dim={self.y_dim}"
            )

    @property
    def amortized_scale(self):
        """Whether a Gaussian decoder's network outputs the scale as well as the location."""
        return self.likelihood == "gaussian" and self.decoder_scale == "amortized"

    @property
    def learned_scale(self):
        """Whether a Gaussian decoder has one learned scale per output dimension."""
        return self.likelihood == "gaussian" and self.decoder_scale == "learned"

    @property
    def y_input_dim(self):
        """Width of ``y`` as the encoder sees it (one-hot for categorical factors)."""
        return self.y_dim * self.num_classes if self.likelihood == "categorical" else self.y_dim

    @property
    def decoder_output_dim(self):
        if self.likelihood == "categorical":
            return self.y_dim * self.num_classes
        return 2 * self.y_dim if self.amortized_scale else self.y_dim

    @property
    def latent_param_dim(self):
        """Outputs of a network that parameterises the latent: logits, or loc and scale."""
        return self.latent_size if self.latent == "discrete" else 2 * self.latent_size

    @property
    def num_parameters(self):
        """The weights of the model and guide networks together (a size check before allocating them)."""
        h = self.hidden

        def mlp(inputs, outputs):
            return (inputs + 1) * h + (h + 1) * h + (h + 1) * outputs

        prior = mlp(self.x_dim, self.latent_param_dim) if self.prior == "learned" else 0
        scale = self.y_dim if self.learned_scale else 0
        if self.network == "conv":
            from infovae.core.conv import conv_parameters

            return prior + scale + conv_parameters(self)
        decoder = (self.x_dim + 1) * h + self.latent_size * h + (h + 1) * h + (h + 1) * self.decoder_output_dim
        return decoder + prior + scale + mlp(self.x_dim + self.y_input_dim, self.latent_param_dim)

    @property
    def widest_layer(self):
        """Values per example of the networks' widest layer (a memory check before allocating them)."""
        if self.network == "conv":
            from infovae.core.conv import conv_widest_layer

            return conv_widest_layer(self)
        return max(self.hidden, self.decoder_output_dim)

    def to_dict(self):
        return asdict(self)


def _positive(value):
    return isinstance(value, Real) and not isinstance(value, (bool, str)) and math.isfinite(value) and value > 0
