"""The operator registry: which operators exist, their torch-free facts, and their classes.

This module imports no torch, so the search space (:mod:`torchrec_nas.space`) can ask what an
operator is (dense or sparse, binary, reading sparse inputs) without building a model. The
torch classes are imported only when a model asks for them (:func:`operator_class`).

An operator is named in a search space in one of three ways:

- a built-in name (``fc``, ``gating``, ``sum``, ``dot``, ``cross``, ``dlrm_dot``, ``efc``,
  ``attention``), one line each in :data:`BUILTIN_OPERATORS`;
- the name of a class registered with :func:`register_operator`;
- a reference ``"package.module:ClassName"``, imported (and registered) on first use.

Example::

    from torchrec_nas.modules.operators.registry import operator_spec, register_operator

    operator_spec("dot").reads_sparse        # True, without importing torch
    register_operator(MyOperator)            # MyOperator.spec.name is now usable in a space
    operator_spec("my_pkg.ops:MyOperator")   # imports my_pkg.ops on first use
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

OperatorKind = Literal["dense", "sparse"]


class OperatorError(ValueError):
    """An operator name that is unknown, cannot be imported, or is of the wrong kind."""


@dataclass(frozen=True)
class OperatorSpec:
    """What the search space needs to know about an operator, without torch.

    Args:
        name: the name used in search spaces and architecture JSON.
        kind: ``"dense"`` (its output is a ``[B, dense_dim]`` vector) or ``"sparse"`` (its
            output is ``[B, sparse_tokens, embedding_dim]`` tokens).
        reads_sparse: a dense operator that also reads the block's sparse inputs (so those
            stay alive whenever its result does).
        binary: a dense operator that combines a left input (the first one) and a right input
            (the others, or the first again when it is alone).

    Example::

        OperatorSpec("dot", "dense", reads_sparse=True)
    """

    name: str
    kind: OperatorKind
    reads_sparse: bool = False
    binary: bool = False

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise OperatorError(f"operator name {self.name!r}: use letters, digits and _")
        if self.kind not in ("dense", "sparse"):
            raise OperatorError(f"operator {self.name!r}: kind must be 'dense' or 'sparse'")
        if self.kind == "sparse" and (self.reads_sparse or self.binary):
            raise OperatorError(
                f"operator {self.name!r}: only dense operators are binary or read sparse inputs"
            )


class OperatorClass(Protocol):
    """What the registry needs of an operator class: its spec (see ``base.Operator``)."""

    spec: OperatorSpec


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_PACKAGE = "torchrec_nas.modules.operators"

#: The built-in operators: one line each, the spec and the class that implements it.
BUILTIN_OPERATORS: tuple[tuple[OperatorSpec, str], ...] = (
    (OperatorSpec("fc", "dense"), f"{_PACKAGE}.fc:FullyConnectedOperator"),
    (OperatorSpec("gating", "dense", binary=True), f"{_PACKAGE}.gating:GatingOperator"),
    (OperatorSpec("sum", "dense", binary=True), f"{_PACKAGE}.sum:SumOperator"),
    (OperatorSpec("dot", "dense", reads_sparse=True), f"{_PACKAGE}.dot:DotProductOperator"),
    (OperatorSpec("cross", "dense", reads_sparse=True), f"{_PACKAGE}.cross:CrossOperator"),
    (
        OperatorSpec("dlrm_dot", "dense", reads_sparse=True),
        f"{_PACKAGE}.dlrm_dot:DLRMDotOperator",
    ),
    (OperatorSpec("efc", "sparse"), f"{_PACKAGE}.efc:EmbeddedFCOperator"),
    (OperatorSpec("attention", "sparse"), f"{_PACKAGE}.attention:AttentionOperator"),
)

_BUILTIN_SPECS: dict[str, OperatorSpec] = {spec.name: spec for spec, _ in BUILTIN_OPERATORS}
_BUILTIN_PATHS: dict[str, str] = {spec.name: path for spec, path in BUILTIN_OPERATORS}
# Registered and already imported classes, by name and by reference.
_CLASSES: dict[str, Any] = {}

C = TypeVar("C")


def builtin_spec(name: str) -> OperatorSpec:
    """The spec of built-in operator ``name`` (for the built-in classes to declare)."""
    return _BUILTIN_SPECS[name]


def is_reference(name: str) -> bool:
    """Whether ``name`` is a ``"package.module:ClassName"`` reference."""
    return ":" in name


def check_operator_name(name: str) -> None:
    """Raises :class:`OperatorError` unless ``name`` is a built-in, registered or well-formed
    reference name. References are not imported here (a config can be read without them)."""
    if name in _BUILTIN_SPECS or name in _CLASSES:
        return
    if is_reference(name):
        if not _REFERENCE.fullmatch(name):
            raise OperatorError(f"operator {name!r}: a reference reads 'package.module:Class'")
        return
    raise OperatorError(f"unknown operator {name!r}; known: {known_operators()}")


def known_operators(kind: OperatorKind | None = None) -> list[str]:
    """Names of the built-in and registered operators (of one kind if given)."""
    specs = list(_BUILTIN_SPECS.values())
    specs += [cls.spec for key, cls in _CLASSES.items() if not is_reference(key)]
    names = [s.name for s in specs if kind is None or s.kind == kind]
    return list(dict.fromkeys(names))


def register_operator(cls: C) -> C:
    """Registers an operator class under ``cls.spec.name``; usable as a class decorator.

    Raises:
        OperatorError: if the name is a built-in or taken by another class.
    """
    spec = getattr(cls, "spec", None)
    if not isinstance(spec, OperatorSpec):
        raise OperatorError(f"{cls!r}: an operator class declares `spec = OperatorSpec(...)`")
    if spec.name in _BUILTIN_SPECS and _BUILTIN_PATHS[spec.name] != _reference_of(cls):
        raise OperatorError(f"operator {spec.name!r} is built in; choose another name")
    if _CLASSES.get(spec.name, cls) is not cls:
        raise OperatorError(f"operator {spec.name!r} is already registered")
    _CLASSES[spec.name] = cls
    return cls


def operator_spec(name: str) -> OperatorSpec:
    """The spec of the operator called ``name`` in a space (imports a reference's module)."""
    if name in _BUILTIN_SPECS:
        return _BUILTIN_SPECS[name]
    spec: OperatorSpec = operator_class(name).spec
    return spec


def operator_class(name: str) -> Any:
    """The class of the operator called ``name``, importing it on first use.

    Raises:
        OperatorError: naming the operator, if it is unknown or cannot be imported.
    """
    cls = _CLASSES.get(name)
    if cls is not None:
        return cls
    if name in _BUILTIN_PATHS:
        cls = _import(_BUILTIN_PATHS[name], name)
    elif is_reference(name):
        check_operator_name(name)
        cls = _import(name, name)
        register_operator(cls)
    else:
        raise OperatorError(f"unknown operator {name!r}; known: {known_operators()}")
    _CLASSES[name] = cls
    return cls


def _import(reference: str, name: str) -> Any:
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise OperatorError(f"operator {name!r}: cannot import {module_name!r}: {e}") from e
    cls = getattr(module, attr, None)
    if cls is None:
        raise OperatorError(f"operator {name!r}: {module_name!r} has no {attr!r}")
    if not isinstance(getattr(cls, "spec", None), OperatorSpec):
        raise OperatorError(f"operator {name!r}: {reference} declares no OperatorSpec `spec`")
    return cls


def _reference_of(cls: Any) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"
