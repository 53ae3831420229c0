"""Sum: ``(W_l x_left + b_l) + (W_r x_right + b_r)``."""

from __future__ import annotations

import torch

from torchrec_nas.modules.operators.binary import BinaryCombination, BinaryOperator
from torchrec_nas.modules.operators.registry import builtin_spec


class LinearSum(BinaryCombination):
    """The sum of a linear map of the left input and one of the right input.

    Example::

        total = LinearSum(nn.Linear(12, 32), nn.Linear(8, 32))
        y = total([torch.randn(4, 12), torch.randn(4, 8)], None)   # [4, 32]
    """

    @staticmethod
    def combine(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return left + right


class SumOperator(BinaryOperator):
    """The supernet's sum (see :class:`LinearSum`)."""

    spec = builtin_spec("sum")
    module_class = LinearSum
    combine_ops = 1
