"""The run configuration: a validated, documented schema, read from YAML with ``key.path=value`` overrides.

Every field is described below (``infovae schema`` prints them). The choices of ``data.kind``,
``objective.marginal`` and ``backend`` come from their registries (:mod:`infovae.data.registry`,
:mod:`infovae.core.marginals`, :mod:`infovae.training.backends`), and the objective's arguments are
checked by the same functions as ``InfoVAE_ELBO``'s (:mod:`infovae.core.arguments`). Unknown keys,
wrong types and values out of range are refused with a :class:`~infovae.errors.ConfigError` whose
message names the key, on one line.
"""

import json
import types
import typing
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from infovae.core.architecture import DECODER_SCALES, LIKELIHOODS, CVAEConfig
from infovae.core.arguments import (
    DEFAULT_KERNEL_SCALES,
    JSD_MIXTURES,
    KERNELS,
    check_bandwidth,
    check_elbo_args,
    check_latent_kind,
)
from infovae.core.marginals import MARGINALS
from infovae.data.registry import DATA_KINDS
from infovae.diagnostics.quantities import QUANTITIES, monitorable
from infovae.errors import ConfigError, UserInputError
from infovae.files import load_yaml, short_repr
from infovae.training.backends import BACKENDS

__all__ = [
    "ModelConfig",
    "ObjectiveConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "architecture",
    "describe_schema",
    "fit_batch_size",
    "load_config",
    "parse_config",
]

# Parameters a CVAE may have before its size is refused as a mistake (about 4 GB of float32 weights),
# and the values of one step's largest activation (the decoder at every latent value or draw, for every
# example of the batch: 8 GB of float32).
MAX_PARAMETERS = 1_000_000_000
MAX_ACTIVATIONS = 2_000_000_000


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The data sets' own sections, one per registered kind, told apart by ``kind``.
DataConfig = Annotated[Union[tuple(kind.section for kind in DATA_KINDS.values())], Field(discriminator="kind")]


def _literal(values):
    return Literal[tuple(values)]


class ModelConfig(_Section):
    latent: Literal["discrete", "gaussian"] = Field(
        "discrete", description="A router over latent_size values, or a Gaussian vector."
    )
    latent_size: int = Field(8, ge=1, le=100_000, description="Latent values (discrete) or dimensions (Gaussian).")
    prior: Literal["fixed", "learned"] = Field("fixed", description="Uniform / standard normal, or p(z|x) from a network.")
    likelihood: _literal(LIKELIHOODS) | None = Field(
        None, description="The distribution of y given x and z; default: the data's own (required for npz)."
    )
    hidden: int = Field(128, ge=1, le=1_000_000, description="Width of the hidden layers.")
    decoder_scale: _literal(DECODER_SCALES) | float = Field(
        "learned",
        description="Gaussian likelihood: one learned scale per output dim (learned), per example from the decoder "
        "(amortized), or a fixed positive number.",
    )
    min_scale: float = Field(1e-3, gt=0, allow_inf_nan=False, description="Floor on a learned or amortized decoder scale.")

    @field_validator("decoder_scale")
    @classmethod
    def _positive_scale(cls, value):
        if not isinstance(value, str) and not (value > 0 and value < float("inf")):
            raise ValueError(f"must be one of {DECODER_SCALES} or a positive number")
        return value


class ObjectiveConfig(_Section):
    beta: float = Field(1.0, ge=0, allow_inf_nan=False, description="Weight of the per-example KL (1 - alpha): the MI penalty.")
    marginal: _literal(MARGINALS) | None = Field(
        None,
        description="Divergence between aggregate posterior and prior: "
        + "; ".join(f"{m.name}: {m.description} ({m.latent} latent)" for m in MARGINALS.values())
        + ".",
    )
    marginal_weight: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="gamma = alpha + lambda - 1, weight of the marginal divergence."
    )
    jsd_weight: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="delta, weight of the inter-latent Jensen-Shannon reward."
    )
    kernel: _literal(KERNELS) = Field("imq", description="MMD kernel: inverse multiquadric or Gaussian (RBF).")
    kernel_scales: tuple[float, ...] = Field(DEFAULT_KERNEL_SCALES, min_length=1, description="MMD kernel scales (positive).")
    bandwidth: str | float | None = Field(None, description="MMD base width: null (2 d), median, or a positive number.")
    jsd_mixture: _literal(JSD_MIXTURES) = Field("prior", description="Where the JSD term's mixture weights come from.")
    jsd_samples: int = Field(8, ge=2, le=10_000, description="Latent draws compared by the JSD term (Gaussian latent).")
    num_particles: int = Field(1, ge=1, le=10_000, description="Latent draws per step (Gaussian latent).")
    mmd_features: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Random features per kernel scale for the MMD (null: exact, quadratic in the batch; random features "
        "make batches of thousands affordable but, at 32, matched the prior far less closely in the regime study).",
    )

    @field_validator("bandwidth", mode="before")
    @classmethod
    def _bandwidth(cls, value):
        return check_bandwidth(value)

    def elbo_kwargs(self):
        """Keyword arguments of either backend's ``InfoVAE_ELBO``."""
        return self.model_dump()

    @model_validator(mode="after")
    def _arguments(self):
        # The constructor's own checks (scales, bandwidth, a weight without a divergence), so the
        # rules live in one place.
        kwargs = self.elbo_kwargs()
        check_elbo_args(**kwargs, latent_site="z", obs_site="y", max_plate_nesting=1)
        return self


class EarlyStopping(_Section):
    patience: int = Field(
        ge=1, le=1_000_000, description="Evaluations without improvement of train.monitor before training stops."
    )


class Warmup(_Section):
    beta: int = Field(0, ge=0, description="Steps over which beta ramps linearly from 0.")
    marginal_weight: int = Field(0, ge=0, description="Steps over which marginal_weight ramps linearly from 0.")
    jsd_weight: int = Field(0, ge=0, description="Steps over which jsd_weight ramps linearly from 0.")


class TrainConfig(_Section):
    steps: int = Field(2000, ge=1, le=100_000_000, description="Optimisation steps.")
    batch_size: int = Field(256, ge=2, le=10_000_000, description="Examples per step (at most the training examples).")
    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="Constant learning rate, or cosine decay to 0 over train.steps."
    )
    grad_clip: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Largest global gradient norm (null: no clipping)."
    )
    warmup: Warmup = Field(default_factory=Warmup, description="Linear warm-up of the objective's weights.")
    seed: int = Field(0, description="Seed of initialisation, minibatches and latent draws.")
    eval_every: int = Field(200, ge=1, description="Steps between evaluations (each writes metrics.jsonl and a checkpoint).")
    eval_examples: int = Field(2000, ge=10, le=1_000_000, description="Largest number of held-out examples an evaluation uses.")
    importance_samples: int = Field(
        64, ge=1, le=100_000, description="Draws of the importance-weighted -log p(y|x) (Gaussian latent)."
    )
    select: Literal["last", "best"] = Field(
        "best",
        description="Weights evaluated on the test split (and kept for reports): those of the best evaluation of "
        "train.monitor, or the last.",
    )
    monitor: _literal(monitorable()) = Field(
        "loss",
        description="Validation quantity that select: best and early stopping watch (each has a known direction: loss "
        "lower is better, probe_accuracy higher).",
    )
    early_stopping: EarlyStopping | None = Field(
        None, description="{patience: N}: stop after N evaluations without improvement of train.monitor."
    )
    device: Literal["cpu", "cuda"] = Field("cpu", description="The Pyro backend's torch device (JAX picks its own).")

    @property
    def monitor_sign(self) -> float:
        """+1 where a lower value of the monitored quantity is better, -1 where higher is."""
        return 1.0 if QUANTITIES[self.monitor].better == "lower" else -1.0


class RunConfig(_Section):
    data: DataConfig = Field(default_factory=lambda: DATA_KINDS["strategies"].section(), description="The data set.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The CVAE.")
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig, description="The InfoVAE objective's weights.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation and evaluation.")
    backend: _literal(BACKENDS) = Field(
        "pyro", description="; ".join(f"{b.name}: {b.description}" for b in BACKENDS.values()) + "."
    )

    @model_validator(mode="after")
    def _fits_together(self):
        kind = "discrete" if self.model.latent == "discrete" else "continuous"
        try:
            check_latent_kind(self.objective.marginal, self.objective.jsd_mixture, kind, f"model.latent is {self.model.latent}")
        except UserInputError as error:  # its message starts with the objective's key
            raise ValueError(f"objective.{error}") from None
        own = DATA_KINDS[self.data.kind].likelihood
        if own and self.model.likelihood not in (None, own):
            raise ValueError(f"data kind {self.data.kind} needs model.likelihood: {own}, got {self.model.likelihood}")
        if own is None and self.model.likelihood is None:
            raise ValueError(f"data kind {self.data.kind} needs model.likelihood ({', '.join(LIKELIHOODS)})")
        return self

    @property
    def likelihood(self):
        return self.model.likelihood or DATA_KINDS[self.data.kind].likelihood

    def to_dict(self):
        return self.model_dump(mode="json")


def architecture(config: RunConfig, train) -> CVAEConfig:
    """The CVAE's shape for ``config`` on the training split ``train``; refused (one line) if it is
    too large to be anything but a mistake."""
    m = config.model
    arch = CVAEConfig(
        x_dim=train.x_dim,
        y_dim=train.y_dim,
        num_classes=max(train.num_classes, 2),
        latent=m.latent,
        latent_size=m.latent_size,
        prior=m.prior,
        likelihood=config.likelihood,
        hidden=m.hidden,
        decoder_scale=m.decoder_scale,
        min_scale=m.min_scale,
    )
    if arch.num_parameters > MAX_PARAMETERS:
        raise ConfigError(
            f"model.hidden={m.hidden}, model.latent_size={m.latent_size} on this data make a CVAE of "
            f"{arch.num_parameters:,} parameters; at most {MAX_PARAMETERS:,} are supported"
        )
    values = arch.latent_size if arch.latent == "discrete" else config.objective.jsd_samples
    batch = min(config.train.batch_size, len(train))
    activations = batch * (values + 1) * max(arch.hidden, arch.decoder_output_dim)
    if activations > MAX_ACTIVATIONS:
        raise ConfigError(
            f"train.batch_size={batch} with {values} latent values (or draws) of a "
            f"{max(arch.hidden, arch.decoder_output_dim)}-wide "
            f"decoder makes activations of {activations:,} values per step; at most {MAX_ACTIVATIONS:,} are supported"
        )
    return arch


def fit_batch_size(config: RunConfig, train) -> RunConfig:
    """``config`` with ``train.batch_size`` at most the number of training examples (a minibatch
    cannot hold more), with a warning when it had to change; the run folder records what was used."""
    if config.train.batch_size <= len(train):
        return config
    warnings.warn(
        f"train.batch_size={config.train.batch_size} is larger than the {len(train)} training examples; using {len(train)}",
        stacklevel=2,
    )
    return config.model_copy(update={"train": config.train.model_copy(update={"batch_size": len(train)})})


def _format(error: ValidationError):
    first = error.errors()[0]
    kinds = set(DATA_KINDS)
    where = ".".join(str(part) for part in first["loc"] if str(part) not in kinds and not str(part).startswith("function-"))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "union_tag_invalid":
        message = f"unknown data kind {short_repr(first['input'].get('kind'))} (expected {', '.join(DATA_KINDS)})"
    leaf = str(first["loc"][-1]) if first["loc"] else ""
    message = message.removeprefix(f"{leaf} ") if leaf and message.startswith(f"{leaf} ") else message
    given = first.get("input")
    quiet = first["type"] in ("extra_forbidden", "missing", "union_tag_invalid") or isinstance(given, dict) or "got " in message
    shown = "" if quiet else f" (got {short_repr(given)})"
    return f"{where + ': ' if where else ''}{message}{shown}"


def parse_config(raw, base_dir=None) -> RunConfig:
    """Validate a config mapping. Relative data paths are resolved against ``base_dir``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    try:
        config = RunConfig.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(_format(error)) from None
    if base_dir is not None:
        config = config.model_copy(update={"data": config.data.resolve_paths(Path(base_dir))})
    return config


def _parse_value(text):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _override_items(overrides):
    """``(dotted key, value)`` pairs from ``key.path=value`` strings (values read as YAML) or a
    mapping (``{"train.steps": 500}``, or ``train__steps`` as Python keyword arguments write it)."""
    if isinstance(overrides, Mapping):
        return [(str(key).replace("__", "."), value) for key, value in overrides.items()]
    items = []
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(f"override {short_repr(item)} must look like key.path=value")
        items.append((key, _parse_value(value)))
    return items


def apply_overrides(raw, overrides):
    """A copy of the nested config mapping ``raw`` with ``overrides`` set (see :func:`_override_items`)."""
    raw = json.loads(json.dumps(raw or {}, default=str))  # a deep copy of plain data
    for key, value in _override_items(overrides):
        if any(not part for part in key.split(".")):
            raise ConfigError(f"override {short_repr(key)} must look like key.path=value")
        node = raw
        *parents, leaf = key.split(".")
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {'.'.join(parents[: i + 1])} is not a section")
            node = child
        node[leaf] = value
    return raw


def load_config(path, overrides=()) -> RunConfig:
    """Read, override and validate a YAML config file."""
    items = _override_items(overrides)  # bad overrides first: they need no file
    raw = load_yaml(path)
    if raw is None:
        raise ConfigError(f"{path}: the config file is empty (write at least one section, e.g. data: {{kind: strategies}})")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    return parse_config(apply_overrides(raw, dict(items)), base_dir=Path(path).parent)


# -- the schema as text ------------------------------------------------------------------------


def _default(field):
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, Path):
        return str(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _choices(annotation):
    """The allowed values of a field whose type is (or includes) a ``Literal``, as text."""
    values = []
    for part in typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else (annotation,):
        if typing.get_origin(part) is Literal:
            values += [str(v) for v in typing.get_args(part)]
        elif part is type(None):
            values.append("null")
        elif values or typing.get_origin(annotation) in (Union, types.UnionType):
            values.append(f"a {getattr(part, '__name__', str(part))}")
    return " | ".join(values) if any(typing.get_origin(p) is Literal for p in _parts(annotation)) else ""


def _parts(annotation):
    return typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else (annotation,)


def _rows(model_cls, prefix, skip=()):
    rows = []
    for name, field in model_cls.model_fields.items():
        if name in skip:
            continue
        sub = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) else None
        nested = next((p for p in _parts(field.annotation) if isinstance(p, type) and issubclass(p, BaseModel)), None)
        choices = _choices(field.annotation)
        description = (field.description or "") + (f" One of: {choices}." if choices else "")
        rows.append((f"{prefix}{name}", _default(field), description))
        if sub is not None or nested is not None:
            rows += _rows(sub or nested, f"{prefix}{name}.")
    return rows


def describe_schema() -> str:
    """Every config key with its default, allowed values and meaning, as plain text (``infovae schema``)."""
    default_kind = RunConfig.model_fields["data"].get_default(call_default_factory=True).kind
    sections = []
    for kind in sorted(DATA_KINDS.values(), key=lambda k: (k.name != default_kind, k.name)):
        sections.append((f"data (kind: {kind.name}): {kind.description}", _rows(kind.section, "data.", skip=("kind",))))
    for section, cls in (("model", ModelConfig), ("objective", ObjectiveConfig), ("train", TrainConfig)):
        sections.append((f"{section}:", _rows(cls, f"{section}.")))
    sections.append(("backend:", [("backend", "pyro", RunConfig.model_fields["backend"].description)]))
    width = max(len(key) for _, rows in sections for key, _, _ in rows) + 2
    lines = ["Every key of a run config (YAML), its default and meaning. Choose one data kind."]
    for title, rows in sections:
        lines += ["", title] + [f"  {key:<{width}}{default:<15} {description}".rstrip() for key, default, description in rows]
    return "\n".join(lines)
