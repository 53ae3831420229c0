"""Dot product: pairwise inner products of the dense input (as one token) and sparse tokens.

The dense input is projected to one token of the embedding width and put in front of the sparse
tokens; an embedded FC compresses those to ``n = round(sqrt(2 dim))`` tokens (operator
balancing: parameters grow linearly with the number of features), and the first ``dim``
entries of the lower triangle of their Gram matrix are the output.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

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
    quantize_input,
    token_linear,
)
from torchrec_nas.modules.operators.registry import builtin_spec
from torchrec_nas.modules.quant import ActivationQuantizer, quantize_weight


def dot_tokens(dense_dim: int) -> int:
    """Tokens the dot-product operator keeps so that its pair count covers ``dense_dim``:
    ``round(sqrt(2 dim))`` tokens give ``n (n + 1) / 2 >= dim`` products."""
    return round(math.sqrt(2 * dense_dim))


def tril_pair_index(tokens: int, count: int) -> torch.Tensor:
    """Flat indices into a ``[tokens, tokens]`` Gram matrix of the first ``count`` pairs of its
    lower triangle (with the diagonal), row by row. Pairs among the first ``k`` tokens come
    first, so widths share a prefix."""
    rows, cols = torch.tril_indices(tokens, tokens)
    flat = rows * tokens + cols
    if count > flat.numel():
        raise ValueError(f"{tokens} tokens give {flat.numel()} pairs, fewer than {count}")
    return flat[:count].clone()


def dot_product(
    dense: torch.Tensor,
    tokens: torch.Tensor,
    projection: LinearWeights,
    compression: LinearWeights,
    pairs: torch.Tensor,
    bits: Bits,
    dense_quantizer: ActivationQuantizer | None,
    token_quantizer: ActivationQuantizer | None,
) -> torch.Tensor:
    dense = quantize_input(dense, bits, dense_quantizer)
    tokens = quantize_input(tokens, bits, token_quantizer)
    weight = quantize_weight(projection.weight, bits.weight)
    dense_token = F.linear(dense, weight, projection.bias).unsqueeze(1)
    compression = LinearWeights(quantize_weight(compression.weight, bits.weight), compression.bias)
    z = token_linear(torch.cat([dense_token, tokens], dim=1), compression)
    gram = torch.bmm(z, z.transpose(1, 2))
    return gram.flatten(1).index_select(1, pairs)


class DotProduct(nn.Module):
    """Pairwise dot products of ``n`` compressed tokens (see the module docstring).

    Args:
        projection: the dense input to one token, ``[E, D]``.
        compression: the embedded FC over ``1 + T`` tokens, ``[n, 1 + T]``.
        pairs: flat Gram indices of the kept products (:func:`tril_pair_index`).
        bits: precision of the products.
        dense_quantizer: activation range of the dense input (quantized spaces).
        token_quantizer: activation range of the tokens.

    Example::

        dot = DotProduct(nn.Linear(12, 16), nn.Linear(6, 8), tril_pair_index(8, 32))
        y = dot([torch.randn(4, 12)], torch.randn(4, 5, 16))   # [4, 32]
    """

    pairs: torch.Tensor

    def __init__(
        self,
        projection: nn.Linear,
        compression: nn.Linear,
        pairs: torch.Tensor,
        bits: Bits | None = None,
        dense_quantizer: ActivationQuantizer | None = None,
        token_quantizer: ActivationQuantizer | None = None,
    ) -> None:
        super().__init__()
        self.projection = projection
        self.compression = compression
        self.register_buffer("pairs", pairs.clone(), persistent=False)
        self.bits = bits or Bits()
        self.dense_quantizer = dense_quantizer
        self.token_quantizer = token_quantizer

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None
    ) -> torch.Tensor:
        assert tokens is not None, "the dot product reads sparse inputs"
        dense = torch.cat(dense_inputs, dim=1) if len(dense_inputs) > 1 else dense_inputs[0]
        return dot_product(
            dense,
            tokens,
            LinearWeights.of(self.projection),
            LinearWeights.of(self.compression),
            self.pairs,
            self.bits,
            self.dense_quantizer,
            self.token_quantizer,
        )


@dataclass(frozen=True, eq=False)
class DotPlan(OperatorPlan):
    """A dot-product plan: ``gram_tokens`` compressed tokens, the compression's input columns
    (the projected dense token first) and the kept Gram ``pairs``."""

    gram_tokens: int = 0
    compression_cols: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))
    pairs: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))


class DotProductOperator(DenseOperator):
    """The supernet's dot product: an elastic projection and compression at their largest."""

    spec = builtin_spec("dot")

    def __init__(self, shape: OperatorShape) -> None:
        super().__init__(shape)
        emb = shape.embedding_dim
        self.projection = ElasticLinear(shape.dense_columns, emb, fan_in=shape.dense_fan_in)
        self.compression = ElasticLinear(
            shape.token_columns + 1, dot_tokens(shape.max_dense_dim), fan_in=shape.token_fan_in + 1
        )
        self.dense_quantizer = activation_quantizer(shape.quantized)
        self.token_quantizer = activation_quantizer(shape.quantized)
        self._pairs: dict[tuple[int, torch.device], torch.Tensor] = {}

    @classmethod
    def plan(cls, plan: OperatorPlan) -> DotPlan:
        n = dot_tokens(plan.width)
        shifted = torch.cat([torch.zeros(1, dtype=torch.long), plan.token_cols + 1])
        fields = {f.name: getattr(plan, f.name) for f in dataclasses.fields(OperatorPlan)}
        pairs = tril_pair_index(n, plan.width)
        return DotPlan(**fields, gram_tokens=n, compression_cols=shifted, pairs=pairs)

    def weights(self, plan: DotPlan) -> tuple[LinearWeights, LinearWeights]:
        emb = self.shape.embedding_dim
        projection = LinearWeights(*self.projection.sliced(emb, plan.cols))
        compression = LinearWeights(
            *self.compression.sliced(plan.gram_tokens, plan.compression_cols)
        )
        return projection, compression

    def _device_pairs(self, plan: DotPlan, device: torch.device) -> torch.Tensor:
        # The Gram indices depend on the width alone; keep one copy per device.
        key = (plan.width, device)
        pairs = self._pairs.get(key)
        if pairs is None:
            pairs = self._pairs[key] = plan.pairs.to(device)
        return pairs

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None, plan: OperatorPlan
    ) -> torch.Tensor:
        assert isinstance(plan, DotPlan) and tokens is not None
        dense = torch.cat(dense_inputs, dim=1) if len(dense_inputs) > 1 else dense_inputs[0]
        projection, compression = self.weights(plan)
        return dot_product(
            dense,
            tokens,
            projection,
            compression,
            self._device_pairs(plan, dense.device),
            plan.bits,
            self.dense_quantizer,
            self.token_quantizer,
        )

    @classmethod
    def layers(cls, plan: OperatorPlan, shape: OperatorShape, prefix: str) -> list[Layer]:
        assert isinstance(plan, DotPlan)
        emb, n = shape.embedding_dim, plan.gram_tokens
        records = LayerRecords(prefix, plan.config)
        records.linear("projection", len(plan.cols), emb)
        records.linear("compression", len(plan.compression_cols), n, emb)
        # The whole Gram matrix is computed; its lower triangle is kept.
        records.activation("gram", macs=n * n * emb)
        return records.layers

    def materialize(self, plan: OperatorPlan) -> DotProduct:
        assert isinstance(plan, DotPlan)
        projection, compression = self.weights(plan)
        return DotProduct(
            projection.to_linear(),
            compression.to_linear(),
            plan.pairs,
            plan.bits,
            copy_quantizer(self.dense_quantizer),
            copy_quantizer(self.token_quantizer),
        )
