"""Torch building blocks shared by the CVAE's model and guide networks."""

import warnings

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MIN_SCALE", "linear", "mlp", "positive_scale", "split_loc_scale"]

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


def positive_scale(raw, minimum=MIN_SCALE):
    r"""A standard deviation from an unconstrained value: :math:`\mathrm{softplus}(r) + \text{minimum}`."""
    return F.softplus(raw) + minimum


def split_loc_scale(params, minimum=MIN_SCALE):
    """``loc, scale`` from the two halves of the last dim of a network's output."""
    loc, raw = torch.chunk(params, 2, dim=-1)
    return loc, positive_scale(raw, minimum)
