"""What the binary dense operators (gating, sum) share: a linear map of the left input and one
of the right input, combined element-wise.

The left input is the block's first dense input; the right input is the concatenation of the
others, or the first again when it is alone (see :class:`OperatorPlan`'s ``first_cols`` and
``rest_cols``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
from torch import nn

from torchrec_nas.hardware.layers import Layer
from torchrec_nas.modules.elastic import ElasticLinear
from torchrec_nas.modules.operators.base import (
    Bits,
    DenseOperator,
    LayerRecords,
    LinearWeights,
    OperatorPlan,
    OperatorShape,
    activation_quantizer,
    copy_quantizer,
    quantized_linear,
)
from torchrec_nas.modules.quant import ActivationQuantizer


def split_inputs(dense_inputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(left, right)``: the first input, and the others concatenated (or the first again)."""
    if len(dense_inputs) == 1:
        return dense_inputs[0], dense_inputs[0]
    rest = dense_inputs[1:]
    return dense_inputs[0], torch.cat(rest, dim=1) if len(rest) > 1 else rest[0]


class BinaryCombination(nn.Module):
    """``combine(W_l x_left + b_l, W_r x_right + b_r)``; subclasses define ``combine``.

    Args:
        left: the layer of the left input.
        right: the layer of the right input.
        bits: precision of the products.
        left_quantizer: activation range of the left input (quantized spaces).
        right_quantizer: activation range of the right input.
    """

    def __init__(
        self,
        left: nn.Linear,
        right: nn.Linear,
        bits: Bits | None = None,
        left_quantizer: ActivationQuantizer | None = None,
        right_quantizer: ActivationQuantizer | None = None,
    ) -> None:
        super().__init__()
        self.left = left
        self.right = right
        self.bits = bits or Bits()
        self.left_quantizer = left_quantizer
        self.right_quantizer = right_quantizer

    @staticmethod
    @abstractmethod
    def combine(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor: ...

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None
    ) -> torch.Tensor:
        x_left, x_right = split_inputs(dense_inputs)
        left = quantized_linear(x_left, LinearWeights.of(self.left), self.bits, self.left_quantizer)
        right = quantized_linear(
            x_right, LinearWeights.of(self.right), self.bits, self.right_quantizer
        )
        return self.combine(left, right)


class BinaryOperator(DenseOperator):
    """A supernet binary operator: elastic left and right layers over every dense slot.

    Subclasses set ``module_class`` (the :class:`BinaryCombination` it materializes into,
    whose ``combine`` both use) and ``combine_ops`` (element-wise operations per output).
    """

    module_class: ClassVar[type[BinaryCombination]]
    combine_ops: ClassVar[int]

    def __init__(self, shape: OperatorShape) -> None:
        super().__init__(shape)
        self.left = ElasticLinear(
            shape.dense_columns, shape.max_dense_dim, fan_in=shape.dense_fan_in
        )
        self.right = ElasticLinear(
            shape.dense_columns, shape.max_dense_dim, fan_in=shape.dense_fan_in
        )
        self.left_quantizer = activation_quantizer(shape.quantized)
        self.right_quantizer = activation_quantizer(shape.quantized)

    def weights(self, plan: OperatorPlan) -> tuple[LinearWeights, LinearWeights]:
        left = LinearWeights(*self.left.sliced(plan.width, plan.first_cols))
        right = LinearWeights(*self.right.sliced(plan.width, plan.rest_cols))
        return left, right

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None, plan: OperatorPlan
    ) -> torch.Tensor:
        x_left, x_right = split_inputs(dense_inputs)
        w_left, w_right = self.weights(plan)
        left = quantized_linear(x_left, w_left, plan.bits, self.left_quantizer)
        right = quantized_linear(x_right, w_right, plan.bits, self.right_quantizer)
        return self.module_class.combine(left, right)

    @classmethod
    def layers(cls, plan: OperatorPlan, shape: OperatorShape, prefix: str) -> list[Layer]:
        records = LayerRecords(prefix, plan.config)
        records.linear("left", len(plan.first_cols), plan.width)
        records.linear("right", len(plan.rest_cols), plan.width)
        records.activation("combine", elementwise=cls.combine_ops * plan.width)
        return records.layers

    def materialize(self, plan: OperatorPlan) -> BinaryCombination:
        left, right = self.weights(plan)
        return self.module_class(
            left.to_linear(),
            right.to_linear(),
            plan.bits,
            copy_quantizer(self.left_quantizer),
            copy_quantizer(self.right_quantizer),
        )
