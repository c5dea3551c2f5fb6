"""Typed configuration: frozen dataclasses built from presets, YAML files and ``key=value`` overrides.

Each pipeline stage owns one frozen dataclass (``gauda.data.config.DataConfig``, ...). This module is
the stage-independent machinery: it turns plain dictionaries (from YAML or the command line) into
those dataclasses, checking every key and type on the way, and turns them back into YAML for the
run folder. Range checks live in each dataclass's ``__post_init__`` and raise ``ConfigError``;
``from_dict`` prefixes them with the dotted path of the offending field.

Configuration is parsed, never executed: YAML is read with ``yaml.safe_load`` and no string is ever
resolved to a class or a function.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gauda.io import atomic_write_text

T = TypeVar("T")
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A configuration value, key or file that is not what the stage expects."""


def check(condition: bool, field: str, expected: str, value: Any) -> None:
    """Raise ``ConfigError`` naming ``field`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{field}: expected {expected}, got {value!r}")


def finite_number(value: float, field: str, minimum: float | None = None, expected: str = "") -> float:
    """``value`` as a float; ``ConfigError`` naming ``field`` if it is NaN or infinite (or below
    ``minimum``): the one check of every float, from a configuration file or a command-line option."""
    what = expected or ("a finite number" + (f" >= {minimum:g}" if minimum is not None else ""))
    check(math.isfinite(value) and (minimum is None or value >= minimum), field, what, value)
    return float(value)


_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    type(None): "null",
}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return _TYPE_NAMES.get(tp) or getattr(tp, "__name__", None) or str(tp)


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the type hint ``tp`` and convert YAML shapes (lists -> tuples)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(
            _convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 (PyYAML) reads 3e-3 as a string; it is a number here
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return finite_number(value, where)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{where}: type {tp!r} is not supported in configuration dataclasses")


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build the dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types.

    Args:
        cls: a (frozen) dataclass type.
        data: its fields; missing fields take the dataclass defaults.
        where: dotted path of ``data`` in the whole configuration, used in error messages.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        name = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"{name}: unknown key; expected one of {', '.join(sorted(fields))}")
    values = {}
    for key, value in data.items():
        values[key] = _convert(value, hints[key], f"{where}.{key}" if where else key)
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{where}.{error}" if where else str(error)) from None
    except TypeError as error:  # a required field without default is missing
        raise ConfigError(f"{where or cls.__name__}: {error}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """The dataclass as plain YAML-ready data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``"data.split.seed=3"`` into ``{"data": {"split": {"seed": 3}}}``.

    The value is read as YAML, so ``3`` is an integer, ``0.5`` a number, ``true`` a boolean,
    ``[1, 2]`` a list and ``null`` none; quote it (``name='007'``) to keep a string.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, for example data.image_size=64")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({error})") from None
    nested: dict[str, Any] = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML configuration file that must hold a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path}: not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"configuration file {path}: not valid YAML ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path}: expected a mapping at the top, got {data!r}")
    return data


def resolve(
    cls: type[T],
    base: T,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    updates: Mapping[str, Any] | None = None,
    file_keys: Sequence[str] | None = None,
) -> T:
    """The configuration a command runs with.

    Later sources win: ``base`` (a preset), the YAML file (only its top-level ``file_keys`` when given:
    the slices a command reads from a run's ``config.yaml``), the ``key=value`` overrides, then
    ``updates`` (a nested mapping, from a command's own options such as ``--dataset``).
    """
    data = to_dict(base)
    if config_file is not None:
        loaded = load_yaml(config_file)
        if file_keys is not None:
            loaded = {key: value for key, value in loaded.items() if key in file_keys}
        data = merge(data, loaded)
    for text in overrides:
        data = merge(data, parse_override(text))
    return from_dict(cls, merge(data, updates or {}))


def to_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def save(config: Any, path: str | Path) -> Path:
    """Write the resolved configuration as YAML, atomically."""
    return atomic_write_text(Path(path), to_yaml(config))
