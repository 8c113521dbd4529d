"""The shape of a CVAE, shared by the Pyro and NumPyro backends (no framework imports here)."""

from dataclasses import asdict, dataclass

__all__ = ["CVAEConfig", "LATENTS", "LIKELIHOODS", "PRIORS"]

LATENTS = ("discrete", "gaussian")
PRIORS = ("fixed", "learned")
LIKELIHOODS = ("categorical", "bernoulli", "gaussian")


@dataclass(frozen=True)
class CVAEConfig:
    """Sizes and kinds of a conditional VAE ``p(z|x) p(y|x,z)``, ``q(z|x,y)``.

    :param x_dim: size of the condition ``x`` (a flat vector).
    :param y_dim: number of factors of ``y``: time steps (categorical), pixels (Bernoulli) or dims (Gaussian).
    :param num_classes: classes per factor, for the categorical likelihood.
    :param latent: ``"discrete"`` (a router over ``latent_size`` values) or ``"gaussian"`` (``latent_size`` dims).
    :param latent_size: number of latent values (discrete) or dimensions (Gaussian).
    :param prior: ``"fixed"`` (uniform / standard normal) or ``"learned"`` (``p(z|x)`` from a network).
    :param likelihood: ``"categorical"``, ``"bernoulli"`` or ``"gaussian"``.
    :param hidden: width of the two hidden layers of every network.
    """

    x_dim: int
    y_dim: int
    num_classes: int = 2
    latent: str = "discrete"
    latent_size: int = 8
    prior: str = "fixed"
    likelihood: str = "categorical"
    hidden: int = 128

    def __post_init__(self):
        for name in ("x_dim", "y_dim", "latent_size", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.likelihood == "categorical" and (
            isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2
        ):
            raise ValueError(f"num_classes must be an integer >= 2 for a categorical likelihood, got {self.num_classes!r}")
        for name, allowed in (("latent", LATENTS), ("prior", PRIORS), ("likelihood", LIKELIHOODS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @property
    def y_input_dim(self):
        """Width of ``y`` as the encoder sees it (one-hot for categorical factors)."""
        return self.y_dim * self.num_classes if self.likelihood == "categorical" else self.y_dim

    @property
    def decoder_output_dim(self):
        if self.likelihood == "categorical":
            return self.y_dim * self.num_classes
        return 2 * self.y_dim if self.likelihood == "gaussian" else self.y_dim

    @property
    def latent_param_dim(self):
        """Outputs of a network that parameterises the latent: logits, or loc and scale."""
        return self.latent_size if self.latent == "discrete" else 2 * self.latent_size

    def to_dict(self):
        return asdict(self)
