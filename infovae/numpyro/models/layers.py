"""Flax building blocks shared by the CVAE's model and guide networks; the twin of
:mod:`infovae.models.layers`.

Flax names the layers of an ``nn.Sequential`` ``layers_<i>`` where torch names them ``<i>`` (the
index counts the activations too), so every torch parameter has exactly one flax twin; see
:mod:`infovae.numpyro.weights`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["MIN_SCALE", "LatentLinear", "mlp", "positive_scale", "split_loc_scale"]

# Floor on every predicted standard deviation, so that densities stay bounded (as the torch twin's).
MIN_SCALE = 1e-3


def mlp(hidden, out_dim):
    """Two hidden ReLU layers, as :func:`infovae.models.layers.mlp`; flax infers the input width."""
    return nn.Sequential([nn.Dense(hidden), nn.relu, nn.Dense(hidden), nn.relu, nn.Dense(out_dim)])


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
