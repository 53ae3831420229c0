"""NASRec operators, one file each, and their registry.

Importing this package imports no torch: it exposes the torch-free registry
(:mod:`torchrec_nas.modules.operators.registry`). The operator base classes live in
:mod:`torchrec_nas.modules.operators.base`; the built-in operators in ``fc``, ``gating``,
``sum``, ``dot``, ``cross`` (DCN-v2), ``dlrm_dot`` (DLRM's interaction), ``efc`` and
``attention``.
"""

from torchrec_nas.modules.operators.registry import (
    BUILTIN_OPERATORS,
    OperatorError,
    OperatorKind,
    OperatorSpec,
    known_operators,
    operator_class,
    operator_spec,
    register_operator,
)

__all__ = [
    "BUILTIN_OPERATORS",
    "OperatorError",
    "OperatorKind",
    "OperatorSpec",
    "known_operators",
    "operator_class",
    "operator_spec",
    "register_operator",
]
