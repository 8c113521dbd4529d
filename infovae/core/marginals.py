"""The registry of marginal divergences ``D(q(z) || p(z))``: what ``InfoVAE_ELBO(marginal=NAME)``,
the config's ``objective.marginal`` and ``infovae schema`` accept.

A divergence is one pure function per backend (the built-in ones are twins in
:mod:`infovae.objectives.divergences` and :mod:`infovae.numpyro.objectives.divergences`) and one
:class:`Marginal` registered here, or by another package through the entry-point group
``infovae.marginals`` (:mod:`infovae.registry`). Its registration declares:

- ``latent``: the latent it applies to, ``"discrete"`` or ``"continuous"``;
- ``inputs``: the arrays the ELBO gathers and passes positionally (:data:`INPUTS`):
  ``"probs"``: ``q_probs, p_probs``, the posterior and prior probabilities of the minibatch, ``[B, K]``;
  ``"gaussian"``: ``loc, scale, prior_loc, prior_scale``, diagonal Normals, ``[B, d]`` each;
  ``"draws"``: ``x, y``, one posterior and one prior draw per example, ``[B, d]`` each;
- ``options``: the keyword options it takes, from :data:`OPTIONS`: ``kernel``, ``scales``,
  ``bandwidth``, ``num_features`` (the ELBO's ``kernel``, ``kernel_scales``, ``bandwidth``,
  ``mmd_features``) and ``rng_key`` (a JAX key, passed by the NumPyro backend only: torch draws from
  its global stream; continuous latents only). The ELBO passes a divergence these and no others;
- ``functions``: per backend (``"pyro"``, ``"numpyro"``), the function, or a ``"module:function"``
  string imported when first used, so that registering imports no framework.

A function is checked against its declaration (it must accept the inputs positionally and the
declared options the backend passes as keywords, and require nothing else): at registration when
given as a callable, at its first use (before any training step) when given as a string. The function
returns a scalar; the ELBO multiplies it by ``marginal_weight`` and the data size.
"""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from infovae.registry import Registry, RegistryError, import_target

__all__ = [
    "DIVERGENCE_MODULES",
    "INPUTS",
    "MARGINALS",
    "OPTIONS",
    "Marginal",
    "backend_of",
    "marginal_names",
    "register_marginal",
]

INPUTS = {
    "probs": ("q_probs", "p_probs"),
    "gaussian": ("loc", "scale", "prior_loc", "prior_scale"),
    "draws": ("x", "y"),
}
OPTIONS = ("kernel", "scales", "bandwidth", "num_features", "rng_key")
# The options each backend's ELBO passes (of those a divergence declares).
BACKEND_OPTIONS = {"pyro": ("kernel", "scales", "bandwidth", "num_features"), "numpyro": OPTIONS}
# Each backend by the module of divergences its ELBO computes with (``ArrayOps.divergences``).
DIVERGENCE_MODULES = {"pyro": "infovae.objectives.divergences", "numpyro": "infovae.numpyro.objectives.divergences"}


@dataclass(frozen=True)
class Marginal:
    """One registered marginal divergence (the module docstring has the contract).

    :param name: what ``marginal=`` is given.
    :param latent: ``"discrete"`` or ``"continuous"``.
    :param inputs: ``"probs"``, ``"gaussian"`` or ``"draws"`` (:data:`INPUTS`).
    :param functions: per backend name, the function or its ``"module:function"``.
    :param description: one line for ``infovae schema``.
    :param options: the keyword options the functions take (:data:`OPTIONS`).
    """

    name: str
    latent: Literal["discrete", "continuous"]
    inputs: Literal["probs", "gaussian", "draws"]
    functions: Mapping[str, Callable | str]
    description: str
    options: tuple[str, ...] = ()
    _resolved: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def function(self, backend: str) -> Callable:
        """The function for ``backend``, imported and checked against the declaration on first use.

        :raises RegistryError: naming the divergence, if it has no function for ``backend`` or the
            function's signature does not fit what the ELBO passes.
        """
        if backend not in self._resolved:
            target = self.functions.get(backend)
            if target is None:
                raise RegistryError(
                    f"marginal {self.name!r} has no {backend} function (it has {', '.join(self.functions) or 'none'})"
                )
            function = import_target(target) if isinstance(target, str) else target
            _check_signature(self, backend, function)
            self._resolved[backend] = function
        return self._resolved[backend]

    def passed_options(self, backend: str) -> tuple[str, ...]:
        """The declared options that ``backend``'s ELBO passes as keywords."""
        return tuple(option for option in self.options if option in BACKEND_OPTIONS.get(backend, OPTIONS))


def _check_signature(marginal: Marginal, backend: str, function: Callable) -> None:
    """That ``function`` takes the inputs positionally and the options ``backend`` passes as keywords,
    and requires nothing else."""
    if not callable(function):
        raise RegistryError(f"marginal {marginal.name!r}: its {backend} function is a {type(function).__name__}, not a function")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    arrays, options = INPUTS[marginal.inputs], marginal.passed_options(backend)
    try:
        signature.bind(*arrays, **dict.fromkeys(options))
    except TypeError as error:
        call = ", ".join(arrays + tuple(f"{option}=..." for option in options))
        name = getattr(function, "__qualname__", repr(function))
        raise RegistryError(
            f"marginal {marginal.name!r}: the {backend} function {name}{signature} cannot be called as the ELBO calls it, "
            f"f({call}): {error}"
        ) from None


def _check(marginal: Marginal) -> None:
    if marginal.latent not in ("discrete", "continuous"):
        raise RegistryError(f"marginal {marginal.name!r}: latent must be 'discrete' or 'continuous', got {marginal.latent!r}")
    if marginal.inputs not in INPUTS:
        raise RegistryError(f"marginal {marginal.name!r}: inputs must be one of {tuple(INPUTS)}, got {marginal.inputs!r}")
    unknown = [option for option in marginal.options if option not in OPTIONS]
    if unknown or not isinstance(marginal.options, tuple):
        raise RegistryError(f"marginal {marginal.name!r}: options must be a tuple of {OPTIONS}, got {marginal.options!r}")
    if "rng_key" in marginal.options and marginal.latent != "continuous":
        raise RegistryError(f"marginal {marginal.name!r}: rng_key is passed for a continuous latent only")
    if not isinstance(marginal.functions, Mapping) or not marginal.functions:
        raise RegistryError(f"marginal {marginal.name!r}: functions must map backend names to functions")
    unknown = [backend for backend in marginal.functions if backend not in BACKEND_OPTIONS]
    if unknown:
        raise RegistryError(
            f"marginal {marginal.name!r}: unknown backend(s) {unknown}; the backends are {tuple(BACKEND_OPTIONS)}"
        )
    for backend, target in marginal.functions.items():
        if not isinstance(target, str):
            _check_signature(marginal, backend, target)


MARGINALS: Registry[Marginal] = Registry("marginal divergence", Marginal, group="infovae.marginals", check=_check)


def register_marginal(marginal: Marginal) -> Marginal:
    """Add ``marginal`` to the registry (a name may be registered once); see the module docstring."""
    return MARGINALS.register(marginal)


def marginal_names() -> tuple[str, ...]:
    """The registered names (plug-ins included), in registration order."""
    return tuple(MARGINALS)


def backend_of(divergences: ModuleType) -> str:
    """The backend whose ELBO computes with the module ``divergences`` (``ArrayOps.divergences``)."""
    for backend, module in DIVERGENCE_MODULES.items():
        if divergences.__name__ == module:
            return backend
    raise RegistryError(f"{divergences.__name__} is not the divergences module of a backend ({', '.join(DIVERGENCE_MODULES)})")


def _twins(function: str) -> dict[str, Any]:
    """The built-in function ``function`` of both backends, imported when first used."""
    return {backend: f"{module}:{function}" for backend, module in DIVERGENCE_MODULES.items()}


register_marginal(
    Marginal(
        "kl",
        "discrete",
        "probs",
        _twins("aggregate_categorical_kl"),
        "KL(mean_i q(z|x_i,y_i) || mean_i p(z|x_i)) on the minibatch",
    )
)
register_marginal(
    Marginal(
        "kl_corrected",
        "discrete",
        "probs",
        _twins("bias_corrected_categorical_kl"),
        "the minibatch marginal KL less its first-order bias, about (K-1)/(2B)",
    )
)
register_marginal(
    Marginal(
        "moment",
        "continuous",
        "gaussian",
        _twins("moment_matched_kl"),
        "KL between the moment-matched Gaussians of the aggregate posterior and prior",
    )
)
register_marginal(
    Marginal(
        "mmd",
        "continuous",
        "draws",
        _twins("mmd"),
        "unbiased MMD between posterior and prior draws, IMQ or RBF kernel",
        options=OPTIONS,
    )
)
