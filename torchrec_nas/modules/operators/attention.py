"""Attention: output tokens made by an EFC attend over the input tokens (one transformer
attention layer with a residual connection).

Importing this module registers PyTorch's FLOP formula of scaled-dot-product attention for the
CPU kernel too, so ``torch.utils.flop_counter.FlopCounterMode`` counts attention on every
device.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
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
    return query + multi_head_attention(query, tokens, attention)


def multi_head_attention(
    query: torch.Tensor, tokens: torch.Tensor, attention: nn.MultiheadAttention
) -> torch.Tensor:
    """``attention(query, tokens, tokens, need_weights=False)[0]`` of a batch-first
    ``nn.MultiheadAttention`` (packed projections with biases, no masks), computed on its
    weights with the head axis laid out for ``scaled_dot_product_attention`` by views alone:
    the module's own path transposes to sequence-first and copies in both directions.

    Args:
        query: ``[B, T_out, E]``.
        tokens: keys and values ``[B, T_in, E]``.
        attention: the layer whose weights are used.
    """
    batch, t_out, emb = query.shape
    t_in = tokens.shape[1]
    heads = attention.num_heads
    head_dim = emb // heads
    weight, bias = attention.in_proj_weight, attention.in_proj_bias
    q = F.linear(query, weight[:emb], bias[:emb]).view(batch, t_out, heads, head_dim)
    kv = F.linear(tokens, weight[emb:], bias[emb:]).view(batch, t_in, 2, heads, head_dim)
    k, v = kv.unbind(2)  # backward stacks; selecting each would zero-fill kv's gradient twice
    dropout = attention.dropout if attention.training else 0.0
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p=dropout
    )
    out = out.transpose(1, 2).reshape(batch, t_out, emb)
    return F.linear(out, attention.out_proj.weight, attention.out_proj.bias)


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
