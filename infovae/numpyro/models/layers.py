"""Flax building blocks shared by the CVAE's model and guide networks; the twin of
:mod:`infovae.models.layers` (layers are named after the torch modules' indices, so that weights map
one to one)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["MIN_SCALE", "MLP", "positive_scale", "split_loc_scale"]

# Floor on every predicted standard deviation, so that densities stay bounded.
MIN_SCALE = 1e-3


class MLP(nn.Module):
    """Two hidden ReLU layers, as :func:`infovae.models.layers.mlp`."""

    hidden: int
    out: int

    @nn.compact
    def __call__(self, h):
        h = nn.relu(nn.Dense(self.hidden, name="0")(h))
        h = nn.relu(nn.Dense(self.hidden, name="2")(h))
        return nn.Dense(self.out, name="4")(h)


def positive_scale(raw):
    return jax.nn.softplus(raw) + MIN_SCALE


def split_loc_scale(params):
    loc, raw = jnp.split(params, 2, axis=-1)
    return loc, positive_scale(raw)
