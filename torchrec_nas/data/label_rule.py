"""Label rules of tables read by schema: ``">= 4"`` turns a rating column into 0/1 labels."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

_OPS: dict[str, Callable[[Any, float], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_RULE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)\s*$")


def parse_label_rule(rule: str) -> Callable[[Any], Any]:
    """A vectorized 0/1 rule from text such as ``">= 4"`` (applies to numpy arrays).

    Args:
        rule: a comparison operator and a number.

    Raises:
        ValueError: ``rule`` is not such a comparison.

    Example::

        parse_label_rule(">= 4")(np.array([3.0, 4.5]))  # array([False, True])
    """
    m = _RULE.match(rule)
    if not m:
        raise ValueError(f"rule: {rule!r} is not a comparison like '>= 4' (ops: {list(_OPS)})")
    op, threshold = _OPS[m.group(1)], float(m.group(2))
    return lambda x: op(x, threshold)
