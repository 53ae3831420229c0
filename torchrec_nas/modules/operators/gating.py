"""Sigmoid gating: ``sigmoid(W_l x_left + b_l) * (W_r x_right + b_r)``."""

from __future__ import annotations

import torch

from torchrec_nas.modules.operators.binary import BinaryCombination, BinaryOperator
from torchrec_nas.modules.operators.registry import builtin_spec


class SigmoidGating(BinaryCombination):
    """The left input, through a linear layer and a sigmoid, gates the right input's linear
    map: ``sigmoid(W_l x_left + b_l) * (W_r x_right + b_r)``.

    Example::

        gating = SigmoidGating(nn.Linear(12, 32), nn.Linear(8, 32))
        y = gating([torch.randn(4, 12), torch.randn(4, 8)], None)   # [4, 32]
    """

    @staticmethod
    def combine(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(left) * right


class GatingOperator(BinaryOperator):
    """The supernet's sigmoid gating (see :class:`SigmoidGating`)."""

    spec = builtin_spec("gating")
    module_class = SigmoidGating
    combine_ops = 2  # sigmoid, multiply
