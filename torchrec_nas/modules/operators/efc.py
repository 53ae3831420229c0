"""EFC ("embedded FC"): a linear map over the token axis, shared by every embedding channel."""

from __future__ import annotations

import torch
from torch import nn

from torchrec_nas.hardware.layers import Layer
from torchrec_nas.modules.elastic import ElasticLinear
from torchrec_nas.modules.operators.base import (
    Bits,
    LayerRecords,
    LinearWeights,
    OperatorPlan,
    OperatorShape,
    SparseOperator,
    activation_quantizer,
    copy_quantizer,
    quantize_input,
    token_linear,
)
from torchrec_nas.modules.operators.registry import builtin_spec
from torchrec_nas.modules.quant import ActivationQuantizer, quantize_weight


def mix_tokens(
    tokens: torch.Tensor,
    weights: LinearWeights,
    bits: Bits,
    quantizer: ActivationQuantizer | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W tokens + b, tokens)`` with fake quantization; the (quantized) tokens are returned
    too, for operators that read them again."""
    tokens = quantize_input(tokens, bits, quantizer)
    weight = LinearWeights(quantize_weight(weights.weight, bits.weight), weights.bias)
    return token_linear(tokens, weight), tokens


class EmbeddedFC(nn.Module):
    """``W tokens + b`` over the token axis: ``[B, T_in, E]`` to ``[B, T_out, E]``.

    Args:
        token_mixing: the map ``[T_out, T_in]`` (an ``nn.Linear`` whose rows are output tokens).
        bits: precision of the product.
        input_quantizer: activation range of the tokens (quantized spaces).

    Example::

        efc = EmbeddedFC(nn.Linear(26, 16))
        y = efc(torch.randn(4, 26, 16))   # [4, 16, 16]
    """

    def __init__(
        self,
        token_mixing: nn.Linear,
        bits: Bits | None = None,
        input_quantizer: ActivationQuantizer | None = None,
    ) -> None:
        super().__init__()
        self.token_mixing = token_mixing
        self.bits = bits or Bits()
        self.input_quantizer = input_quantizer

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        weights = LinearWeights.of(self.token_mixing)
        return mix_tokens(tokens, weights, self.bits, self.input_quantizer)[0]


class EmbeddedFCOperator(SparseOperator):
    """The supernet's EFC: one elastic token map over every token slot of the block."""

    spec = builtin_spec("efc")

    def __init__(self, shape: OperatorShape) -> None:
        super().__init__(shape)
        self.token_mixing = ElasticLinear(
            shape.token_columns, shape.max_tokens, fan_in=shape.token_fan_in
        )
        self.input_quantizer = activation_quantizer(shape.quantized)

    def weights(self, plan: OperatorPlan) -> LinearWeights:
        return LinearWeights(*self.token_mixing.sliced(plan.width, plan.cols))

    def forward(self, tokens: torch.Tensor, plan: OperatorPlan) -> torch.Tensor:
        return mix_tokens(tokens, self.weights(plan), plan.bits, self.input_quantizer)[0]

    @classmethod
    def layers(cls, plan: OperatorPlan, shape: OperatorShape, prefix: str) -> list[Layer]:
        records = LayerRecords(prefix, plan.config)
        records.linear("token_mixing", len(plan.cols), plan.width, shape.embedding_dim)
        return records.layers

    def materialize(self, plan: OperatorPlan) -> EmbeddedFC:
        return EmbeddedFC(
            self.weights(plan).to_linear(), plan.bits, copy_quantizer(self.input_quantizer)
        )
