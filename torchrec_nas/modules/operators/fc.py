"""FC: a linear layer over the concatenated dense inputs, then ReLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
from torchrec_nas.modules.operators.registry import builtin_spec
from torchrec_nas.modules.quant import ActivationQuantizer


class FullyConnected(nn.Module):
    """``relu(W [x_1, ..., x_k] + b)`` over the concatenation of the dense inputs.

    Args:
        linear: the layer ``[dense_dim, sum_j D_j]``.
        bits: precision of the product.
        input_quantizer: the activation range of the input (quantized spaces).

    Example::

        fc = FullyConnected(nn.Linear(20, 32))
        y = fc([torch.randn(8, 12), torch.randn(8, 8)], None)   # [8, 32]
    """

    def __init__(
        self,
        linear: nn.Linear,
        bits: Bits | None = None,
        input_quantizer: ActivationQuantizer | None = None,
    ) -> None:
        super().__init__()
        self.linear = linear
        self.bits = bits or Bits()
        self.input_quantizer = input_quantizer

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None
    ) -> torch.Tensor:
        return fully_connected(
            dense_inputs, LinearWeights.of(self.linear), self.bits, self.input_quantizer
        )


def fully_connected(
    dense_inputs: list[torch.Tensor],
    weights: LinearWeights,
    bits: Bits,
    quantizer: ActivationQuantizer | None,
) -> torch.Tensor:
    x = torch.cat(dense_inputs, dim=1) if len(dense_inputs) > 1 else dense_inputs[0]
    return F.relu(quantized_linear(x, weights, bits, quantizer))


class FullyConnectedOperator(DenseOperator):
    """The supernet's FC: one elastic linear layer over every dense slot of the block.

    Example::

        op = FullyConnectedOperator(shape)
        y = op(dense_inputs, None, plan)          # [B, plan.width]
        fc = op.materialize(plan)                 # FullyConnected(linear=Linear(...))
    """

    spec = builtin_spec("fc")

    def __init__(self, shape: OperatorShape) -> None:
        super().__init__(shape)
        self.linear = ElasticLinear(
            shape.dense_columns, shape.max_dense_dim, fan_in=shape.dense_fan_in
        )
        self.input_quantizer = activation_quantizer(shape.quantized)

    def weights(self, plan: OperatorPlan) -> LinearWeights:
        return LinearWeights(*self.linear.sliced(plan.width, plan.cols))

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None, plan: OperatorPlan
    ) -> torch.Tensor:
        return fully_connected(dense_inputs, self.weights(plan), plan.bits, self.input_quantizer)

    @classmethod
    def layers(cls, plan: OperatorPlan, shape: OperatorShape, prefix: str) -> list[Layer]:
        records = LayerRecords(prefix, plan.config)
        records.linear("linear", len(plan.cols), plan.width)
        records.activation("relu", elementwise=plan.width)
        return records.layers

    def materialize(self, plan: OperatorPlan) -> FullyConnected:
        return FullyConnected(
            self.weights(plan).to_linear(), plan.bits, copy_quantizer(self.input_quantizer)
        )
