"""The run config's sections: a validated, documented schema (``infovae schema`` prints it).

The choices of ``data.kind``, ``objective.marginal`` and ``backend`` are the names in their registries
(:mod:`infovae.data.registry`, :mod:`infovae.core.marginals`, :mod:`infovae.training.backends`) when a
config is parsed, so that what a plug-in registers is accepted; the objective's arguments are checked
by the same functions as ``InfoVAE_ELBO``'s (:mod:`infovae.core.arguments`).
"""

import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from infovae.core.architecture import DECODER_SCALES, LIKELIHOODS, NETWORKS
from infovae.core.arguments import (
    DEFAULT_KERNEL_SCALES,
    JSD_MIXTURES,
    KERNELS,
    check_bandwidth,
    check_elbo_args,
    check_kernel,
    check_latent_kind,
)
from infovae.core.marginals import MARGINALS
from infovae.data.registry import DATA_KINDS, DataSection
from infovae.diagnostics.quantities import QUANTITIES, monitorable
from infovae.errors import UserInputError
from infovae.files import short_repr
from infovae.registry import Registry
from infovae.training.backends import BACKENDS

__all__ = [
    "COMBINATION",
    "EarlyStopping",
    "ModelConfig",
    "ObjectiveConfig",
    "Registered",
    "RunConfig",
    "TrainConfig",
    "Warmup",
]

# The type of a validation error of keys that are each valid but do not fit together (``objective.marginal:
# mmd`` with a discrete latent), as the checks that compare keys raise it (:func:`_combination`).
COMBINATION = "combination"


def _combination(message: str) -> PydanticCustomError:
    """The validation error of keys that do not fit together (:data:`COMBINATION`), saying ``message``."""
    return PydanticCustomError(COMBINATION, "{reason}", {"reason": message})


def _union_parts(annotation: Any) -> tuple[Any, ...]:
    """The types a field's annotation allows, through unions and ``Annotated``."""
    if typing.get_origin(annotation) is Annotated:
        return _union_parts(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return tuple(part for arg in typing.get_args(annotation) for part in _union_parts(arg))
    return (annotation,)


def _item_annotations(parts: tuple[Any, ...], length: int) -> list[tuple[Any, ...]]:
    """For each of ``length`` items of a list given to a field that allows ``parts``, the annotations of
    the tuples and lists among them at that position (``tuple[float, ...]``: float at every one)."""
    sequences = [[a for a in typing.get_args(p) if a is not Ellipsis] for p in parts if typing.get_origin(p) in (tuple, list)]
    return [tuple(args[min(i, len(args) - 1)] for args in sequences if args) for i in range(length)]


def _kinds(parts: tuple[Any, ...]) -> frozenset[Any]:
    """The types of the values that the types ``parts`` allow: a Literal's values stand for their own."""
    return frozenset({type(v) for p in parts if typing.get_origin(p) is Literal for v in typing.get_args(p)} | set(parts))


def _wrong_kind(parts: tuple[Any, ...], kinds: frozenset[Any], value: Any) -> str | None:
    """Why ``value`` is refused for a field that allows the types ``parts`` (of values of the types
    ``kinds``): a boolean where a number is expected, or a number where a boolean is, also as an item
    of a list; ``None`` if neither."""
    if isinstance(value, (list, tuple)):
        for item, annotations in zip(value, _item_annotations(parts, len(value))):
            item_parts = tuple(p for a in annotations for p in _union_parts(a))
            why = _wrong_kind(item_parts, _kinds(item_parts), item)
            if why is not None:
                return why
        return None
    numbers = int in kinds or float in kinds
    if isinstance(value, bool) and numbers and bool not in kinds:
        return f"must be a number, got {value} (YAML reads true/false, yes/no and on/off as booleans)"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and bool in kinds and not numbers:
        return f"must be true or false, got {value}"
    return None


@functools.cache
def _field_types(section: type[BaseModel], name: str) -> tuple[tuple[Any, ...], frozenset[Any]] | None:
    """The types ``section``'s field ``name`` allows (:func:`_union_parts`) and those of its values
    (:func:`_kinds`), or ``None`` for no such field; kept, as every config of a sweep is checked when it
    is expanded."""
    field = section.model_fields.get(name)
    if field is None:
        return None
    parts = _union_parts(field.annotation)
    return parts, _kinds(parts)


def _check_kinds(section: type[BaseModel], values: Any) -> None:
    """Refuse, naming the key, a boolean given for a number or a number for a boolean in the mapping
    ``values`` of ``section``'s fields: pydantic's lax mode would convert them (``train.steps: true``
    would train 1 step, ``objective.beta: yes`` be 1.0), where any other value of the wrong type is
    refused. Nested sections check their own keys."""
    if not isinstance(values, Mapping):
        return  # not a section: the field's own validation says so
    for name, value in values.items():
        allowed = _field_types(section, name) if isinstance(name, str) else None
        why = None if allowed is None else _wrong_kind(*allowed, value)
        if why is not None:
            error = InitErrorDetails(
                type=PydanticCustomError("number_or_boolean", "{reason}", {"reason": why}), loc=(name,), input=value
            )
            raise ValidationError.from_exception_data(section.__name__, [error])


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _numbers_and_booleans(cls, values):
        _check_kinds(cls, values)
        return values


@dataclass(frozen=True)
class Registered:
    """Field metadata: the value is a name in ``registry`` when the config is parsed (so that what a
    plug-in registers is accepted), and ``infovae schema`` lists the names, each with ``describe(entry)``."""

    registry: Registry
    describe: Callable[[Any], str]

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.no_info_after_validator_function(self._validate, handler(source))

    def _validate(self, value):
        if value not in self.registry:
            names = [repr(name) for name in self.registry]
            raise ValueError(
                f"Input should be {', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else f"Input should be {names[0]}"
            )
        return value


# The training computes in float32: a number outside its range (or too close to 0 to be told from it)
# would turn into infinity or 0 at the first step, so it is refused when the config is read.
FLOAT32_MAX, FLOAT32_TINY = 3.4028234663852886e38, 1.1754943508222875e-38


def _float32(value):
    """A float that float32 holds (0, or a magnitude between its smallest normal number and its largest)."""
    if isinstance(value, float) and value != 0 and not FLOAT32_TINY <= abs(value) <= FLOAT32_MAX:
        raise ValueError(f"must be 0 or of magnitude between {FLOAT32_TINY:.3g} and {FLOAT32_MAX:.3g} (float32)")
    return value


Float32 = Annotated[float, AfterValidator(_float32)]
# Seeds: non-negative and below 2**32, which every generator the library seeds accepts.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
# Steps of a warm-up, at most as many as a run may have.
WarmupSteps = Annotated[int, Field(ge=0, le=100_000_000)]


def _literal(values):
    """``Literal[*values]``, from the one tuple that names the choices (which type checkers cannot read)."""
    return Literal[tuple(values)]


def _number_from_text(value):
    """``value``, or the float that its text writes: YAML 1.1 reads ``1e-3`` (no dot) as text, which
    the float fields read as a number, and so must a field whose other values are text."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


class ModelConfig(_Section):
    latent: Literal["discrete", "gaussian"] = Field(
        "discrete", description="A router over latent_size values, or a Gaussian vector."
    )
    latent_size: int = Field(8, ge=1, le=100_000, description="Latent values (discrete) or dimensions (Gaussian).")
    prior: Literal["fixed", "learned"] = Field("fixed", description="Uniform / standard normal, or p(z|x) from a network.")
    likelihood: _literal(LIKELIHOODS) | None = Field(  # type: ignore[valid-type]
        None, description="The distribution of y given x and z; default: the data's own (required for npz)."
    )
    hidden: int = Field(128, ge=1, le=1_000_000, description="Width of the hidden layers.")
    network: _literal(NETWORKS) = Field(  # type: ignore[valid-type]
        "mlp",
        description="MLPs, or for images (data.image_shape, or an image data kind) a conv encoder of the whole image "
        "and a transposed-conv decoder whose y pixels are read out; bernoulli or gaussian likelihood.",
    )
    decoder_scale: _literal(DECODER_SCALES) | float = Field(  # type: ignore[valid-type]
        "learned",
        description="Gaussian likelihood: one learned scale per output dim (learned), per example from the decoder "
        "(amortized), or a fixed positive number.",
    )
    min_scale: Float32 = Field(1e-3, gt=0, allow_inf_nan=False, description="Floor on a learned or amortized decoder scale.")

    @field_validator("decoder_scale", mode="wrap")
    @classmethod
    def _positive_scale(cls, value, handler):
        # One message for the union: pydantic's would name its members as parts of the key
        # (model.decoder_scale.literal['learned','amortized']).
        try:
            scale = handler(value)
        except ValidationError:
            scale = None
        if scale is None or (not isinstance(scale, str) and not (scale > 0 and scale < float("inf"))):
            raise ValueError(f"must be one of {DECODER_SCALES} or a positive number")
        return scale


class ObjectiveConfig(_Section):
    beta: Float32 = Field(1.0, ge=0, allow_inf_nan=False, description="Weight of the per-example KL (1 - alpha): the MI penalty.")
    marginal: Annotated[str, Registered(MARGINALS, lambda m: f"{m.description} ({m.latent} latent)")] | None = Field(
        None, description="Divergence between aggregate posterior and prior"
    )
    marginal_weight: Float32 = Field(
        0.0, ge=0, allow_inf_nan=False, description="gamma = alpha + lambda - 1, weight of the marginal divergence."
    )
    jsd_weight: Float32 = Field(
        0.0, ge=0, allow_inf_nan=False, description="delta, weight of the inter-latent Jensen-Shannon reward."
    )
    kernel: _literal(KERNELS) = Field("imq", description="MMD kernel: inverse multiquadric or Gaussian (RBF).")  # type: ignore[valid-type]
    kernel_scales: tuple[Float32, ...] = Field(DEFAULT_KERNEL_SCALES, min_length=1, description="MMD kernel scales (positive).")
    bandwidth: str | float | None = Field(None, description="MMD base width: null (2 d), median, or a positive number.")
    jsd_mixture: _literal(JSD_MIXTURES) = Field("prior", description="Where the JSD term's mixture weights come from.")  # type: ignore[valid-type]
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
        return check_bandwidth(_number_from_text(value))

    @field_validator("kernel_scales")
    @classmethod
    def _positive_scales(cls, value):
        # Checked on their own as well as with the other keys below, so that a bad scale is a bad value
        # of this key (which a sweep refuses up front), not a combination.
        return check_kernel(KERNELS[0], value, None)

    def elbo_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of either backend's ``InfoVAE_ELBO``."""
        return self.model_dump()

    @model_validator(mode="after")
    def _arguments(self):
        # The constructor's own checks (scales, bandwidth, a weight without a divergence), so the
        # rules live in one place.
        kwargs = self.elbo_kwargs()
        try:
            check_elbo_args(**kwargs, latent_site="z", obs_site="y", max_plate_nesting=1)
        except UserInputError as error:  # each key is valid (its field says so): they do not fit together
            raise _combination(str(error)) from None
        return self


class EarlyStopping(_Section):
    patience: int = Field(
        ge=1, le=1_000_000, description="Evaluations without improvement of train.monitor before training stops."
    )


class Warmup(_Section):
    beta: WarmupSteps = Field(0, description="Steps over which beta ramps linearly from 0.")
    marginal_weight: WarmupSteps = Field(0, description="Steps over which marginal_weight ramps linearly from 0.")
    jsd_weight: WarmupSteps = Field(0, description="Steps over which jsd_weight ramps linearly from 0.")


class TrainConfig(_Section):
    steps: int = Field(2000, ge=1, le=100_000_000, description="Optimisation steps.")
    batch_size: int = Field(256, ge=2, le=10_000_000, description="Examples per step (at most the training examples).")
    lr: Float32 = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="Constant learning rate, or cosine decay to 0 over train.steps."
    )
    grad_clip: Float32 | None = Field(
        None, gt=0, allow_inf_nan=False, description="Largest global gradient norm (null: no clipping)."
    )
    warmup: Warmup = Field(default_factory=Warmup, description="Linear warm-up of the objective's weights.")
    seed: Seed = Field(0, description="Seed of initialisation, minibatches and latent draws (0 to 2**32 - 1).")
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
    monitor: _literal(monitorable()) = Field(  # type: ignore[valid-type]
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
    # The section of the registered data kind the mapping names, chosen when the config is parsed.
    data: SerializeAsAny[DataSection] = Field(
        default_factory=lambda: DATA_KINDS["strategies"].section.model_validate({}), description="The data set."
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The CVAE.")
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig, description="The InfoVAE objective's weights.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation and evaluation.")
    backend: Annotated[str, Registered(BACKENDS, lambda b: b.description)] = Field("pyro", description="The backend")

    @field_validator("data", mode="before")
    @classmethod
    def _data_section(cls, value):
        if isinstance(value, Mapping):
            kind = value.get("kind")
            if kind is None:
                raise ValueError(f"a data section needs a kind ({', '.join(DATA_KINDS)})")
            if not isinstance(kind, str) or kind not in DATA_KINDS:
                raise ValueError(f"unknown data kind {short_repr(kind)} (expected {', '.join(DATA_KINDS)})")
            section = DATA_KINDS[kind].section
            _check_kinds(section, value)  # the data sections are not _Sections: their kinds are checked here
            return section.model_validate(dict(value))
        return value

    @model_validator(mode="after")
    def _fits_together(self):
        kind = "discrete" if self.model.latent == "discrete" else "continuous"
        try:
            check_latent_kind(self.objective.marginal, self.objective.jsd_mixture, kind, f"model.latent is {self.model.latent}")
        except UserInputError as error:  # its message starts with the objective's key
            raise _combination(f"objective.{error}") from None
        own = DATA_KINDS[self.data.kind].likelihood
        if own and self.model.likelihood not in (None, own):
            raise _combination(f"data kind {self.data.kind} needs model.likelihood: {own}, got {self.model.likelihood}")
        if own is None and self.model.likelihood is None:
            raise _combination(f"data kind {self.data.kind} needs model.likelihood ({', '.join(LIKELIHOODS)})")
        if self.model.network == "conv" and self.likelihood == "categorical":
            raise _combination(
                "model.network: conv draws pixels: it needs model.likelihood bernoulli or gaussian, not categorical"
            )
        return self

    @property
    def likelihood(self) -> str:
        """The model's likelihood: the config's, or the data's own."""
        likelihood = self.model.likelihood or DATA_KINDS[self.data.kind].likelihood
        assert likelihood is not None  # a config without one is refused (_fits_together)
        return likelihood

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (what ``config.yaml`` records)."""
        return self.model_dump(mode="json")
