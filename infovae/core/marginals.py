"""The registry of marginal divergences ``D(q(z) || p(z))``: what ``InfoVAE_ELBO(marginal=NAME)``,
the config's ``objective.marginal`` and ``infovae schema`` accept.

A divergence is a pure function in each backend's ``divergences`` module (the twins
:mod:`infovae.objectives.divergences` and :mod:`infovae.numpyro.objectives.divergences`), plus one
:func:`register_marginal` call here saying which latent it applies to and what the ELBO gathers for it:

- ``"probs"`` (discrete latent): the posterior and prior probabilities of the minibatch, ``[B, K]`` each;
- ``"gaussian"`` (diagonal Normal latent): ``loc, scale, prior_loc, prior_scale``, ``[B, d]`` each;
- ``"draws"`` (reparameterised latent): one posterior and one prior draw per example, ``[B, d]`` each,
  and the kernel options ``kernel``, ``scales``, ``bandwidth``, ``num_features`` (and, in NumPyro,
  ``rng_key``).

The function returns a scalar; the ELBO multiplies it by ``marginal_weight`` and the data size.
"""

from dataclasses import dataclass
from typing import Literal

__all__ = ["MARGINALS", "Marginal", "marginal_names", "register_marginal"]


@dataclass(frozen=True)
class Marginal:
    """One registered marginal divergence: its ``name`` (what ``marginal=`` is given), the ``latent``
    it applies to, the ``inputs`` the ELBO passes it (module docstring), the ``function``'s name in each
    backend's ``divergences`` module, and a one-line ``description`` for ``infovae schema``."""

    name: str
    latent: Literal["discrete", "continuous"]
    inputs: Literal["probs", "gaussian", "draws"]
    function: str
    description: str


MARGINALS: dict[str, Marginal] = {}


def register_marginal(marginal: Marginal) -> Marginal:
    """Add ``marginal`` to the registry (a name may be registered once)."""
    if marginal.name in MARGINALS:
        raise ValueError(f"a marginal divergence named {marginal.name!r} is registered already")
    if marginal.latent not in ("discrete", "continuous") or marginal.inputs not in ("probs", "gaussian", "draws"):
        raise ValueError(f"marginal {marginal.name!r}: latent or inputs not one of those documented")
    MARGINALS[marginal.name] = marginal
    return marginal


def marginal_names() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(MARGINALS)


for _marginal in (
    Marginal(
        "kl", "discrete", "probs", "aggregate_categorical_kl", "KL(mean_i q(z|x_i,y_i) || mean_i p(z|x_i)) on the minibatch"
    ),
    Marginal(
        "kl_corrected",
        "discrete",
        "probs",
        "bias_corrected_categorical_kl",
        "the minibatch marginal KL less its first-order bias, about (K-1)/(2B)",
    ),
    Marginal(
        "moment",
        "continuous",
        "gaussian",
        "moment_matched_kl",
        "KL between the moment-matched Gaussians of the aggregate posterior and prior",
    ),
    Marginal("mmd", "continuous", "draws", "mmd", "unbiased MMD between posterior and prior draws, IMQ or RBF kernel"),
):
    register_marginal(_marginal)
