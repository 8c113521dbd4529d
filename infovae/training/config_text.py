"""The run config's schema as plain text (``infovae schema``): every key with its default, allowed
values and meaning, read from the sections' fields and the registries as they are now."""

import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel

from infovae.data.registry import DATA_KINDS
from infovae.training.config_sections import ModelConfig, ObjectiveConfig, Registered, RunConfig, TrainConfig

__all__ = ["config_keys", "describe_schema", "suggest_key"]


def _default(field):
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, Path):
        return str(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _registered(part, metadata=()):
    """The :class:`Registered` marker of a field's type (or of one part of a union), if any."""
    extra = typing.get_args(part)[1:] if typing.get_origin(part) is Annotated else ()
    return next((m for m in (*metadata, *extra) if isinstance(m, Registered)), None)


def _choices(annotation, metadata=()):
    """The allowed values of a field whose type is (or includes) a ``Literal`` or registered names, as text."""
    values, listed = [], False
    union = typing.get_origin(annotation) in (Union, types.UnionType)
    for part in _parts(annotation):
        registered = _registered(part, metadata)
        if typing.get_origin(part) is Literal or registered is not None:
            values += [str(v) for v in (typing.get_args(part) if registered is None else registered.registry)]
            listed = True
        elif part is type(None):
            values.append("null")
        elif values or union:
            values.append(f"a {getattr(part, '__name__', str(part))}")
    return " | ".join(values) if listed else ""


def _parts(annotation):
    return typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else (annotation,)


def _description(field):
    """The field's description, and for registered names each name's own."""
    registered = next(filter(None, (_registered(p, field.metadata) for p in _parts(field.annotation))), None)
    if registered is None:
        return field.description or ""
    entries = "; ".join(f"{entry.name}: {registered.describe(entry)}" for entry in registered.registry.values())
    return f"{field.description}: {entries}."


def _rows(model_cls, prefix, skip=()):
    rows = []
    for name, field in model_cls.model_fields.items():
        if name in skip:
            continue
        sub = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) else None
        nested = next((p for p in _parts(field.annotation) if isinstance(p, type) and issubclass(p, BaseModel)), None)
        choices = _choices(field.annotation, field.metadata)
        description = _description(field) + (f" One of: {choices}." if choices else "")
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
    sections.append(("backend:", _rows(RunConfig, "", skip=("data", "model", "objective", "train"))))
    width = max(len(key) for _, rows in sections for key, _, _ in rows) + 2
    lines = ["Every key of a run config (YAML), its default and meaning. Choose one data kind."]
    for title, rows in sections:
        lines += ["", title] + [f"  {key:<{width}}{default:<15} {description}".rstrip() for key, default, description in rows]
    return "\n".join(lines)


def config_keys(data_kind: str | None = None) -> list[str]:
    """Every dotted key of a run config whose data section is of ``data_kind`` (default: the default kind),
    sections included (``train``, ``train.warmup``, ``train.warmup.beta``)."""
    default = RunConfig.model_fields["data"].get_default(call_default_factory=True).kind
    section = DATA_KINDS[data_kind if data_kind is not None and data_kind in DATA_KINDS else default].section
    rows = [("data", "", ""), *_rows(section, "data."), *_rows(RunConfig, "", skip=("data",))]
    return [key for key, _, _ in rows]


def suggest_key(key: str, data_kind: str | None = None) -> str | None:
    """The config key that an unknown dotted ``key`` most likely meant: the one key of the same name in
    another section (``train.latent_size``: ``model.latent_size``), else the closest of its siblings
    (``train.step``: ``train.steps``), else ``None``."""
    keys = config_keys(data_kind)
    parent, _, leaf = key.rpartition(".")
    elsewhere = [k for k in keys if k.rpartition(".")[2] == leaf]
    if len(elsewhere) == 1:
        return elsewhere[0]
    siblings = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == parent}
    close = difflib.get_close_matches(leaf, list(siblings), n=1)
    return siblings[close[0]] if close else None
