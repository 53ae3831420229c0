"""Attention: output tokens made by an EFC attend over the input tokens (one transformer
attention layer with a residual connection).

Importing this module registers PyTorch's FLOP formula of scaled-dot-product attention for the
CPU kernel too, so ``torch.utils.flop_counter.FlopCounterMode`` counts attention on every
device.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import flop_registry, register_flop_formula, sdpa_flop_count

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
)
from torchrec_nas.modules.operators.efc import mix_tokens
from torchrec_nas.modules.operators.registry import builtin_spec
from torchrec_nas.modules.quant import ActivationQuantizer

_SDPA_CPU = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
if _SDPA_CPU not in flop_registry:

    @register_flop_formula(_SDPA_CPU)
    def _sdpa_cpu_flops(
        query_shape: torch.Size,
        key_shape: torch.Size,
        value_shape: torch.Size,
        *args: object,
        out_shape: object = None,
        **kwargs: object,
    ) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)


def attend(
    tokens: torch.Tensor,
    queries: LinearWeights,
    attention: nn.MultiheadAttention,
    bits: Bits,
    quantizer: ActivationQuantizer | None,
) -> torch.Tensor:
    query, tokens = mix_tokens(tokens, queries, bits, quantizer)
    attended, _ = attention(query, tokens, tokens, need_weights=False)
    return query + attended


class TokenAttention(nn.Module):
    """``q + MultiheadAttention(q, x, x)`` with queries ``q = W x + b`` mixed over the token
    axis: ``[B, T_in, E]`` to ``[B, T_out, E]``.

    Args:
        queries: the token map making ``T_out`` queries from ``T_in`` tokens.
        attention: a batch-first ``nn.MultiheadAttention`` over the embedding width.
        bits: precision of the query map.
        input_quantizer: activation range of the tokens (quantized spaces).

    Example::

        attn = TokenAttention(nn.Linear(26, 16), nn.MultiheadAttention(16, 2, batch_first=True))
        y = attn(torch.randn(4, 26, 16))   # [4, 16, 16]
    """

    def __init__(
        self,
        queries: nn.Linear,
        attention: nn.MultiheadAttention,
        bits: Bits | None = None,
        input_quantizer: ActivationQuantizer | None = None,
    ) -> None:
        super().__init__()
        self.queries = queries
        self.attention = attention
        self.bits = bits or Bits()
        self.input_quantizer = input_quantizer

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        queries = LinearWeights.of(self.queries)
        return attend(tokens, queries, self.attention, self.bits, self.input_quantizer)


class AttentionOperator(SparseOperator):
    """The supernet's attention: an elastic query map over every token slot of the block and
    one attention layer of the embedding width (shared by all widths)."""

    spec = builtin_spec("attention")

    def __init__(self, shape: OperatorShape) -> None:
        super().__init__(shape)
        if shape.embedding_dim % shape.attention_heads:
            raise ValueError(
                f"space.attention_heads ({shape.attention_heads}) must divide embedding_dim "
                f"({shape.embedding_dim})"
            )
        self.queries = ElasticLinear(
            shape.token_columns, shape.max_tokens, fan_in=shape.token_fan_in
        )
        self.attention = nn.MultiheadAttention(
            shape.embedding_dim, shape.attention_heads, batch_first=True
        )
        self.input_quantizer = activation_quantizer(shape.quantized)

    def weights(self, plan: OperatorPlan) -> LinearWeights:
        return LinearWeights(*self.queries.sliced(plan.width, plan.cols))

    def forward(self, tokens: torch.Tensor, plan: OperatorPlan) -> torch.Tensor:
        return attend(tokens, self.weights(plan), self.attention, plan.bits, self.input_quantizer)

    @classmethod
    def layers(cls, plan: OperatorPlan, shape: OperatorShape, prefix: str) -> list[Layer]:
        emb, t, t_in = shape.embedding_dim, plan.width, len(plan.cols)
        records = LayerRecords(prefix, plan.config)
        records.linear("queries", t_in, t, emb)
        records.linear("q_proj", emb, emb, t)
        records.linear("kv_proj", emb, 2 * emb, t_in)
        # Scores and their weighted sum; softmax, scaling and the residual are element-wise.
        records.activation("scores", macs=2 * t * t_in * emb, elementwise=3 * t * t_in)
        records.linear("out_proj", emb, emb, t)
        return records.layers

    def materialize(self, plan: OperatorPlan) -> TokenAttention:
        return TokenAttention(
            self.weights(plan).to_linear(),
            copy.deepcopy(self.attention),
            plan.bits,
            copy_quantizer(self.input_quantizer),
        )
