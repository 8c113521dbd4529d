"""Overrides of config keys: ``key.path=value`` strings from the command line (values read as YAML) or
a mapping of dotted keys, set on a nested config mapping before it is validated."""

import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from infovae.errors import ConfigError
from infovae.files import (
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_VALUES,
    DuplicateKeyError,
    bracket_depth,
    count_values,
    safe_load,
    short_repr,
)

__all__ = ["Overrides", "apply_overrides", "override_items", "parse_value"]

# ``key.path=value`` strings, or a mapping of dotted keys (``train__steps`` as Python keywords write them).
Overrides = Iterable[str] | Mapping[str, Any]


def parse_value(text: str) -> Any:
    """A command line's value read as YAML (``5`` an int, ``[1, 2]`` a list), or the text itself; one
    that expands past a config file's bounds (an alias bomb, brackets thousands deep) is a ``ConfigError``."""
    if len(text) > MAX_YAML_BYTES or bracket_depth(text) > MAX_YAML_DEPTH:
        raise ConfigError(f"override value {short_repr(text)} is larger or nested deeper than a config file may be")
    try:
        value = safe_load(text)
    except DuplicateKeyError as error:
        raise ConfigError(f"override value {short_repr(text)} names the key {short_repr(error.key)} twice") from None
    except yaml.YAMLError:
        return text
    except RecursionError:
        raise ConfigError(f"override value {short_repr(text)} is nested too deeply") from None
    if count_values(value, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise ConfigError(f"override value {short_repr(text)} expands to more than {MAX_YAML_VALUES} values (aliases?)")
    return value


def override_items(overrides: Overrides) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` pairs from ``key.path=value`` strings (values read as YAML) or a
    mapping (``{"train.steps": 500}``, or ``train__steps`` as Python keyword arguments write it)."""
    if isinstance(overrides, Mapping):
        return [(str(key).replace("__", "."), value) for key, value in overrides.items()]
    items = []
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(f"override {short_repr(item)} must look like key.path=value")
        items.append((key, parse_value(value)))
    return items


def apply_overrides(raw: Mapping[str, Any] | None, overrides: Overrides) -> dict[str, Any]:
    """A copy of the nested config mapping ``raw`` with ``overrides`` set (see :func:`override_items`)."""
    copy: dict[str, Any] = json.loads(json.dumps(raw or {}, default=str))  # a deep copy of plain data
    for key, value in override_items(overrides):
        if any(not part for part in key.split(".")):
            raise ConfigError(f"override {short_repr(key)} must look like key.path=value")
        node = copy
        *parents, leaf = key.split(".")
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {'.'.join(parents[: i + 1])} is not a section")
            node = child
        node[leaf] = value
    return copy
