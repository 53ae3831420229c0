"""Typed configs from YAML: dataclasses filled from mappings with errors that name the field.

Every config section in torchrec_nas is a dataclass whose fields all have defaults that work.
:func:`from_mapping` fills one from a parsed YAML mapping and rejects unknown fields, wrong types,
non-finite numbers (``.nan``, ``.inf``) and values outside a field's allowed set, naming the file
and the dotted field path.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from torchrec_nas import storage

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or mapping that does not fit its schema.

    The message always names where: ``FILE: section.field: what is wrong``.
    """


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _to_float(value: Any) -> float | None:
    """A YAML number as a float, or ``None``; YAML 1.1 reads ``1e-2`` as a string, so numeric
    strings count as numbers (for float fields only)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Converts ``value`` to the annotated type ``tp`` or raises ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {tp}"
        )
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_mapping(tp, value, where)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(
                _convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(args, value))
            )
        items = [_convert(v, args[0], f"{where}[{i}]") if args else v for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        if not args:
            return dict(value)
        return {
            _convert(k, args[0], f"{where}.<key>"): _convert(v, args[1], f"{where}.{k}")
            for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        number = _to_float(value)
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):
            # YAML's .nan and .inf (or 1e999) would reach an optimizer or a budget as is.
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def from_mapping(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Builds dataclass ``cls`` from ``data``, checking every field.

    Args:
        cls: a dataclass type whose fields all have defaults.
        data: the parsed mapping (from YAML or JSON).
        where: prefix for error messages, for example ``"demo.yaml: train"``.

    Returns:
        An instance of ``cls``; after construction its ``validate()`` method is called if it
        has one that takes no arguments, and a ``ValueError`` it raises is re-raised as :class:`ConfigError` at ``where``.

    Example::

        @dataclasses.dataclass
        class Opt:
            lr: float = 0.1

        from_mapping(Opt, {"lr": 0.5})  # Opt(lr=0.5)
        from_mapping(Opt, {"lr": "x"})  # ConfigError: lr: expected a number, got 'x'
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    # "FILE:" names a file (fields follow after a space), anything else a dotted section.
    prefix = f"{where} " if where.endswith(":") else (f"{where}." if where else "")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown field of {cls.__name__}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _convert(value, hints[name], f"{prefix}{name}") for name, value in data.items()}
    try:
        obj = cls(**kwargs)
        validate = getattr(obj, "validate", None)
        # A no-argument validate() is the config's own check; others (SearchSpace.validate(arch))
        # are not config hooks.
        if callable(validate) and not inspect.signature(validate).parameters:
            validate()
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where.rstrip(':') or cls.__name__}: {e}") from e
    return obj


def to_mapping(obj: Any) -> Any:
    """Turns a (nested) config dataclass into plain lists and dicts for YAML or JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping (a local path or URL), with a clear error for a missing file or
    bad syntax."""
    p = str(path)
    if not storage.isfile(p):
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(storage.read_text(p))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping, got {type(data).__name__}")
    return data
