"""The run configuration: a validated, documented schema, read from YAML with ``key.path=value`` overrides.

Every field is described below (``infovae schema`` prints them). Unknown keys, wrong types and values
out of range are refused with a :class:`ConfigError` whose message names the key.
"""

import math
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infovae.core.architecture import LIKELIHOODS

__all__ = [
    "ConfigError",
    "DataConfig",
    "DigitsData",
    "ModelConfig",
    "NpzData",
    "ObjectiveConfig",
    "RunConfig",
    "StrategiesData",
    "TrainConfig",
    "apply_overrides",
    "load_config",
    "parse_config",
]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key and the problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Splits(_Section):
    seed: int = Field(0, description="Seed of the data (generation where it applies, and the split).")
    val_fraction: float = Field(0.1, gt=0, lt=0.5, description="Fraction of examples held out for validation.")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Fraction of examples held out for the final test.")


class StrategiesData(_Splits):
    """Behaviour episodes from K hidden strategies (:mod:`infovae.data.strategies`)."""

    kind: Literal["strategies"] = "strategies"
    num_examples: int = Field(20000, ge=20, description="Episodes generated.")
    num_strategies: int = Field(4, ge=1, description="K, the number of hidden strategies.")
    num_actions: int = Field(5, ge=2, description="Actions available at each step.")
    horizon: int = Field(12, ge=1, description="Steps per episode.")
    context_dim: int = Field(3, ge=1, description="Size of each step's context vector.")
    separation: float = Field(1.5, ge=0, description="Weight of the strategy-specific part of behaviour (0: strategies identical).")
    similar_pairs: int = Field(1, ge=0, description="Pairs of strategies made deliberately similar.")
    pair_distance: float = Field(0.3, ge=0, description="How far apart the members of a similar pair are.")


class DigitsData(_Splits):
    """scikit-learn's handwritten digits as image completion (:mod:`infovae.data.digits`)."""

    kind: Literal["digits"] = "digits"
    quadrants: int = Field(1, ge=1, le=3, description="Quadrants of the 8x8 image given as the condition x.")


class NpzData(_Splits):
    """Your own arrays: an ``.npz`` file with ``x`` [N, x_dim], ``y`` [N, y_dim] and optionally ``labels`` [N]."""

    kind: Literal["npz"] = "npz"
    path: Path = Field(description="The .npz file (relative paths are resolved against the config file's folder).")
    num_classes: int | None = Field(None, ge=2, description="Classes per factor of y (categorical); default max(y) + 1.")


DataConfig = Annotated[StrategiesData | DigitsData | NpzData, Field(discriminator="kind")]


class ModelConfig(_Section):
    latent: Literal["discrete", "gaussian"] = Field("discrete", description="A router over latent_size values, or a Gaussian vector.")
    latent_size: int = Field(8, ge=1, description="Latent values (discrete) or dimensions (Gaussian).")
    prior: Literal["fixed", "learned"] = Field("fixed", description="Uniform / standard normal, or p(z|x) from a network.")
    likelihood: Literal[LIKELIHOODS] | None = Field(
        None, description="categorical, bernoulli or gaussian; default: the data's own (required for npz)."
    )
    hidden: int = Field(128, ge=1, description="Width of the hidden layers.")


class ObjectiveConfig(_Section):
    beta: float = Field(1.0, ge=0, description="Weight of the per-example KL (1 - alpha): the MI penalty.")
    marginal: Literal["kl", "moment", "mmd"] | None = Field(
        None, description="Divergence between aggregate posterior and prior: kl (discrete), moment or mmd (Gaussian)."
    )
    marginal_weight: float = Field(0.0, ge=0, description="gamma = alpha + lambda - 1, weight of the marginal divergence.")
    jsd_weight: float = Field(0.0, ge=0, description="delta, weight of the inter-latent Jensen-Shannon reward.")
    kernel: Literal["imq", "rbf"] = Field("imq", description="MMD kernel.")
    kernel_scales: tuple[float, ...] = Field((0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), min_length=1, description="MMD kernel scales.")
    bandwidth: str | float | None = Field(None, description="MMD base width: null (2 d), median, or a positive number.")
    jsd_mixture: Literal["prior", "posterior", "uniform"] = Field("prior", description="Mixture weights of the JSD term.")
    jsd_samples: int = Field(8, ge=2, description="Latent draws compared by the JSD term (Gaussian latent).")
    num_particles: int = Field(1, ge=1, description="Latent draws per step (Gaussian latent).")
    mmd_features: int | None = Field(None, ge=1, description="Random features per kernel scale for the MMD (null: exact, quadratic in the batch; ~32 for batches of thousands).")

    def elbo_kwargs(self):
        """Keyword arguments of either backend's ``InfoVAE_ELBO``."""
        return self.model_dump()

    @field_validator("beta", "marginal_weight", "jsd_weight")
    @classmethod
    def _finite(cls, value):
        if not math.isfinite(value):
            raise ValueError("must be finite")
        return value

    @field_validator("kernel_scales")
    @classmethod
    def _positive_scales(cls, value):
        if not all(math.isfinite(s) and s > 0 for s in value):
            raise ValueError("every kernel scale must be a positive number")
        return value

    @field_validator("bandwidth", mode="before")
    @classmethod
    def _bandwidth(cls, value):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (value is None or value == "median" or (number and math.isfinite(value) and value > 0)):
            raise ValueError("must be null, median or a positive number")
        return value

    @model_validator(mode="after")
    def _weight_needs_divergence(self):
        if self.marginal is None and self.marginal_weight > 0:
            raise ValueError("marginal_weight > 0 needs a marginal divergence (objective.marginal: kl, moment or mmd)")
        return self


class TrainConfig(_Section):
    steps: int = Field(2000, ge=1, description="Optimisation steps.")
    batch_size: int = Field(256, ge=2, description="Examples per step.")
    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    seed: int = Field(0, description="Seed of initialisation, minibatches and latent draws.")
    eval_every: int = Field(200, ge=1, description="Steps between evaluations (each writes metrics.jsonl and a checkpoint).")
    eval_examples: int = Field(2000, ge=10, description="Largest number of held-out examples an evaluation uses.")
    importance_samples: int = Field(64, ge=1, description="Draws of the importance-weighted -log p(y|x) (Gaussian latent).")


class RunConfig(_Section):
    data: DataConfig = Field(default_factory=StrategiesData, description="The data set.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The CVAE.")
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig, description="The InfoVAE objective's weights.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation and evaluation.")
    backend: Literal["pyro", "numpyro"] = Field("pyro", description="pyro (PyTorch) or numpyro (JAX, jit-compiled).")

    @model_validator(mode="after")
    def _fits_together(self):
        discrete = self.model.latent == "discrete"
        if discrete and self.objective.marginal in ("moment", "mmd"):
            raise ValueError(f"objective.marginal={self.objective.marginal} needs model.latent: gaussian; use kl")
        if not discrete and self.objective.marginal == "kl":
            raise ValueError("objective.marginal=kl needs model.latent: discrete; use moment or mmd")
        if not discrete and self.objective.jsd_mixture == "uniform":
            raise ValueError("objective.jsd_mixture=uniform needs model.latent: discrete")
        own = {"strategies": "categorical", "digits": "bernoulli"}.get(self.data.kind)
        if own and self.model.likelihood not in (None, own):
            raise ValueError(f"data kind {self.data.kind} needs model.likelihood: {own}, got {self.model.likelihood}")
        if self.data.kind == "npz" and self.model.likelihood is None:
            raise ValueError("data kind npz needs model.likelihood (categorical, bernoulli or gaussian)")
        return self

    @property
    def likelihood(self):
        return self.model.likelihood or {"strategies": "categorical", "digits": "bernoulli"}[self.data.kind]

    def to_dict(self):
        return self.model_dump(mode="json")


def _format(error: ValidationError):
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"] if not str(part) in ("strategies", "digits", "npz"))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "union_tag_invalid":
        message = f"unknown data kind {first['input'].get('kind')!r} (expected strategies, digits or npz)"
    given = first.get("input")
    shown = "" if first["type"] in ("extra_forbidden", "missing", "union_tag_invalid") or isinstance(given, dict) else f" (got {given!r})"
    return f"{where + ': ' if where else ''}{message}{shown}"


def parse_config(raw, base_dir=None):
    """Validate a config mapping. Relative data paths are resolved against ``base_dir``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format(error)) from None
    if config.data.kind == "npz" and base_dir is not None and not config.data.path.is_absolute():
        data = config.data.model_copy(update={"path": (Path(base_dir) / config.data.path).resolve()})
        config = config.model_copy(update={"data": data})
    return config


def _parse_value(text):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw, overrides):
    """Set ``key.path=value`` overrides (values parsed as YAML) on a nested config mapping."""
    raw = yaml.safe_load(yaml.safe_dump(raw or {}))  # a deep copy
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} must look like key.path=value")
        node = raw
        *parents, leaf = key.split(".")
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parents[: i + 1])} is not a section")
            node = child
        node[leaf] = _parse_value(value)
    return raw


def load_config(path, overrides=()):
    """Read, override and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    return parse_config(apply_overrides(raw, overrides), base_dir=path.parent)


def _describe(model_cls, prefix):
    lines = []
    for name, field in model_cls.model_fields.items():
        if name == "kind" or isinstance(field.default_factory, type):
            continue
        default = "required" if field.is_required() else json_default(field.get_default(call_default_factory=True))
        lines.append(f"  {prefix}{name:<18} {default:<22} {field.description or ''}")
    return lines


def json_default(value):
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip() if not isinstance(value, Path) else str(value)


def describe_schema():
    """Every config key with its default and description, as text (``infovae schema``)."""
    lines = ["data (choose one kind):"]
    for cls in (StrategiesData, DigitsData, NpzData):
        lines.append(f" kind: {cls.model_fields['kind'].default}  -- {cls.__doc__.strip()}")
        lines += _describe(cls, "data.")
    for section, cls in (("model", ModelConfig), ("objective", ObjectiveConfig), ("train", TrainConfig)):
        lines.append(f"{section}:")
        lines += _describe(cls, f"{section}.")
    lines.append(f"backend: {RunConfig.model_fields['backend'].description}")
    return "\n".join(lines)
