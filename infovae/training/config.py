"""The run configuration: a validated, documented schema, read from YAML with ``key.path=value`` overrides.

Every field is described (``infovae schema`` prints them). Unknown keys, wrong types and values out of
range are refused with a :class:`~infovae.errors.ConfigError` whose message names the key, on one line.
The parts live by concern: the sections (:mod:`~infovae.training.config_sections`), the limits on a
model's size (:mod:`~infovae.training.config_limits`), overrides (:mod:`~infovae.training.config_overrides`)
and the schema as text (:mod:`~infovae.training.config_text`); this module reads and validates a config
and exports the names of all four.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from infovae.errors import CombinationError, ConfigError
from infovae.files import load_yaml, short_repr
from infovae.training.config_limits import MAX_ACTIVATIONS, MAX_PARAMETERS, architecture, fit_batch_size
from infovae.training.config_overrides import Overrides, apply_overrides, override_items, parse_value
from infovae.training.config_sections import COMBINATION, ModelConfig, ObjectiveConfig, RunConfig, TrainConfig
from infovae.training.config_text import describe_schema, suggest_key

__all__ = [
    "MAX_ACTIVATIONS",
    "MAX_PARAMETERS",
    "CombinationError",
    "ConfigError",
    "ModelConfig",
    "ObjectiveConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "architecture",
    "check_key",
    "describe_schema",
    "suggest_key",
    "fit_batch_size",
    "load_config",
    "parse_config",
    "parse_value",
]

# The command line's name for it.
_parse_value = parse_value


def _format(first: ErrorDetails, raw: Mapping[str, Any]) -> str:
    """One validation error of ``raw`` (an item of ``ValidationError.errors()``) as the one line a user sees."""
    where = ".".join(str(part) for part in first["loc"] if not str(part).startswith("function-"))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        data = raw.get("data")
        meant = suggest_key(where, data.get("kind") if isinstance(data, Mapping) else None)
        message = "unknown key" + (f" (did you mean {meant}?)" if meant else "")
    leaf = str(first["loc"][-1]) if first["loc"] else ""
    message = message.removeprefix(f"{leaf} ") if leaf and message.startswith(f"{leaf} ") else message
    given = first.get("input")
    quiet = first["type"] in ("extra_forbidden", "missing") or isinstance(given, Mapping) or "got " in message
    shown = "" if quiet else f" (got {short_repr(given)})"
    return f"{where + ': ' if where else ''}{message}{shown}"


def _section(annotation: Any) -> type[BaseModel] | None:
    """The section (a pydantic model) a field's annotation holds, optional or not; ``None`` for a value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((s for s in map(_section, get_args(annotation)) if s is not None), None)


def check_key(key: str) -> None:
    """That a dotted config key is well formed: no empty part, and no part below a key that holds a value
    (``train.steps.x``). Whether the key exists is the config's validation to say (``data``'s keys
    depend on ``data.kind``)."""
    parts = str(key).split(".")
    if any(not part for part in parts):
        raise ConfigError(f"key {short_repr(key)} must look like section.name (a dotted path without empty parts)")
    model: type[BaseModel] | None = RunConfig
    for depth, part in enumerate(parts[:-1]):
        field = model.model_fields.get(part) if model is not None else None
        if field is None or part == "data":
            return
        model = _section(field.annotation)
        if model is None:
            raise ConfigError(f"key {short_repr(key)}: {'.'.join(parts[: depth + 1])} is a value, not a section")


def parse_config(raw: Mapping[str, Any] | None, base_dir: str | Path | None = None) -> RunConfig:
    """Validate a config mapping. Relative data paths are resolved against ``base_dir``.

    :raises ConfigError: naming the key: an unknown key or a bad value; :class:`CombinationError` where
        the keys are each valid but do not fit together.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    try:
        config = RunConfig.model_validate(dict(raw))
    except ValidationError as error:
        errors = error.errors()
        # A key's own problem is named first: keys that do not fit together may do so because of it.
        own = [e for e in errors if e["type"] != COMBINATION]
        if own:
            raise ConfigError(_format(own[0], raw)) from None
        raise CombinationError(_format(errors[0], raw)) from None
    if base_dir is not None:
        config = config.model_copy(update={"data": config.data.resolve_paths(Path(base_dir))})
    return config


def load_config(path: str | Path, overrides: Overrides = ()) -> RunConfig:
    """Read, override and validate a YAML config file."""
    items = override_items(overrides)  # bad overrides first: they need no file
    raw = load_yaml(path)
    if raw is None:
        raise ConfigError(f"{path}: the config file is empty (write at least one section, e.g. data: {{kind: strategies}})")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    return parse_config(apply_overrides(raw, dict(items)), base_dir=Path(path).parent)
