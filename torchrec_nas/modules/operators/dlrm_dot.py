"""DLRM's dot interaction: inner products of every pair of the dense vector and the tokens, then
a projection to the block's width.

Naumov et al., "Deep Learning Recommendation Model for Personalization and Recommendation
Systems", 2019; the math of ``torchrec.models.dlrm.InteractionArch``.

With the block's dense inputs concatenated (``[B, D]``) and its sparse inputs' tokens
``t_1 .. t_T`` (``[B, T, E]``):

- ``d = W_d x + b_d``, the dense inputs projected to one vector of the embedding width (DLRM's
  dense arch ends at that width; a block reading it can set ``W_d`` to the identity);
- the ``(T + 1) T / 2`` inner products of distinct pairs of ``[d, t_1, ..., t_T]``: the upper
  triangle of their Gram matrix without the diagonal, row by row (DLRM's order);
- ``[d, pairs]``, ``InteractionArch``'s output, then ``relu(P [d, pairs] + c)`` with
  ``P: [dense_dim, E + (T + 1) T / 2]``: DLRM's first over-arch layer, whose width is the
  block's ``dense_dim`` (a block's output is ``dense_dim`` wide; DLRM's interaction is wider).

How ``dot`` differs: it compresses ``[d, tokens]`` to ``round(sqrt(2 dense_dim))`` tokens with a
learned token map, keeps the first ``dense_dim`` products of the lower triangle *with* the
diagonal as its output, and neither concatenates ``d`` nor projects.

In the supernet, vector ``0`` is ``d`` and token slot ``s`` is vector ``s + 1``; the pair of
vectors ``i < j`` owns column ``E + j (j - 1) / 2 + i`` of ``P`` (after ``d``'s ``E`` columns), so
a pair's weights are shared by every subnet that forms it.
"""

from __future__ import annotations

import dataclasses
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
)
from torchrec_nas.modules.operators.registry import builtin_spec
from torchrec_nas.modules.quant import ActivationQuantizer, quantize_weight


def upper_pair_index(vectors: int) -> torch.Tensor:
    """Flat indices into a ``[vectors, vectors]`` Gram matrix of its upper triangle without the
    diagonal, row by row (``InteractionArch``'s ``triu_indices(offset=1)`` order)."""
    rows, cols = torch.triu_indices(vectors, vectors, offset=1)
    return rows * vectors + cols


def pair_columns(token_cols: torch.Tensor) -> torch.Tensor:
    """Supernet columns (before ``d``'s ``E``) of the pairs :func:`upper_pair_index` keeps, for
    tokens at slot positions ``token_cols`` (ascending)."""
    slots = torch.cat([torch.zeros(1, dtype=torch.long), token_cols.long() + 1])
    rows, cols = torch.triu_indices(len(slots), len(slots), offset=1)
    i, j = slots[rows], slots[cols]
    return j * (j - 1) // 2 + i


def dlrm_dot(
    dense: torch.Tensor,
    tokens: torch.Tensor,
    projection: LinearWeights,
    over: LinearWeights,
    pair_index: torch.Tensor,
    bits: Bits,
    dense_quantizer: ActivationQuantizer | None,
    token_quantizer: ActivationQuantizer | None,
) -> torch.Tensor:
    dense = quantize_input(dense, bits, dense_quantizer)
    tokens = quantize_input(tokens, bits, token_quantizer)
    d = F.linear(dense, quantize_weight(projection.weight, bits.weight), projection.bias)
    vectors = torch.cat([d.unsqueeze(1), tokens], dim=1)
    gram = torch.bmm(vectors, vectors.transpose(1, 2))
    pairs = gram.flatten(1).index_select(1, pair_index)
    features = torch.cat([d, pairs], dim=1)
    return F.relu(F.linear(features, quantize_weight(over.weight, bits.weight), over.bias))


class DLRMDot(nn.Module):
    """DLRM's interaction of a projected dense vector and the tokens, then ``relu(P x + c)``
    (see the module docstring).

    Args:
        projection: the dense inputs to ``d``, ``[E, D]``.
        over: the layer over ``[d, pairs]``, ``[dense_dim, E + (T + 1) T / 2]``.
        bits: precision of the products.
        dense_quantizer: activation range of the dense input (quantized spaces).
        token_quantizer: activation range of the tokens.

    Example::

        dot = DLRMDot(nn.Linear(16, 16), nn.Linear(16 + 27 * 26 // 2, 256))
        y = dot([torch.randn(4, 16)], torch.randn(4, 26, 16))   # [4, 256]
    """

    pair_index: torch.Tensor

    def __init__(
        self,
        projection: nn.Linear,
        over: nn.Linear,
        bits: Bits | None = None,
        dense_quantizer: ActivationQuantizer | None = None,
        token_quantizer: ActivationQuantizer | None = None,
    ) -> None:
        super().__init__()
        self.projection = projection
        self.over = over
        emb = projection.out_features
        pairs = over.in_features - emb
        # (T + 1) T / 2 pairs of T + 1 vectors.
        vectors = round((1 + (1 + 8 * pairs) ** 0.5) / 2)
        if vectors * (vectors - 1) // 2 != pairs:
            raise ValueError(f"{over.in_features - emb} is not a number of pairs")
        self.register_buffer("pair_index", upper_pair_index(vectors), persistent=False)
        self.bits = bits or Bits()
        self.dense_quantizer = dense_quantizer
        self.token_quantizer = token_quantizer

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None
    ) -> torch.Tensor:
        assert tokens is not None, "the DLRM dot product reads sparse inputs"
        dense = torch.cat(dense_inputs, dim=1) if len(dense_inputs) > 1 else dense_inputs[0]
        return dlrm_dot(
            dense,
            tokens,
            LinearWeights.of(self.projection),
            LinearWeights.of(self.over),
            self.pair_index,
            self.bits,
            self.dense_quantizer,
            self.token_quantizer,
        )


@dataclass(frozen=True, eq=False)
class DLRMDotPlan(OperatorPlan):
    """A DLRM dot plan: the Gram ``pair_index`` of its ``1 + T`` vectors and the supernet
    columns of those pairs (:func:`pair_columns`)."""

    pair_index: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))
    pair_cols: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0))


class DLRMDotOperator(DenseOperator):
    """The supernet's DLRM dot: an elastic projection to ``d`` over the dense slots and an
    elastic ``P`` over ``d`` and every pair of token slots."""

    spec = builtin_spec("dlrm_dot")

    def __init__(self, shape: OperatorShape) -> None:
        super().__init__(shape)
        emb = shape.embedding_dim
        self.projection = ElasticLinear(shape.dense_columns, emb, fan_in=shape.dense_fan_in)
        vectors, typical = shape.token_columns + 1, shape.token_fan_in + 1
        self.over = ElasticLinear(
            emb + vectors * (vectors - 1) // 2,
            shape.max_dense_dim,
            fan_in=emb + typical * (typical - 1) // 2,
        )
        self.dense_quantizer = activation_quantizer(shape.quantized)
        self.token_quantizer = activation_quantizer(shape.quantized)

    @classmethod
    def plan(cls, plan: OperatorPlan) -> DLRMDotPlan:
        fields = {f.name: getattr(plan, f.name) for f in dataclasses.fields(OperatorPlan)}
        return DLRMDotPlan(
            **fields,
            pair_index=upper_pair_index(len(plan.token_cols) + 1),
            pair_cols=pair_columns(plan.token_cols),
        )

    def weights(self, plan: DLRMDotPlan) -> tuple[LinearWeights, LinearWeights]:
        emb = self.shape.embedding_dim
        projection = LinearWeights(*self.projection.sliced(emb, plan.cols))
        over_cols = torch.cat([torch.arange(emb), plan.pair_cols + emb])
        over = LinearWeights(*self.over.sliced(plan.width, over_cols))
        return projection, over

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None, plan: OperatorPlan
    ) -> torch.Tensor:
        assert isinstance(plan, DLRMDotPlan) and tokens is not None
        dense = torch.cat(dense_inputs, dim=1) if len(dense_inputs) > 1 else dense_inputs[0]
        projection, over = self.weights(plan)
        return dlrm_dot(
            dense,
            tokens,
            projection,
            over,
            plan.pair_index.to(dense.device),
            plan.bits,
            self.dense_quantizer,
            self.token_quantizer,
        )

    @classmethod
    def layers(cls, plan: OperatorPlan, shape: OperatorShape, prefix: str) -> list[Layer]:
        assert isinstance(plan, DLRMDotPlan)
        emb, vectors = shape.embedding_dim, len(plan.token_cols) + 1
        records = LayerRecords(prefix, plan.config)
        records.linear("projection", len(plan.cols), emb)
        # The whole Gram matrix is computed; its upper triangle is kept.
        records.activation("gram", macs=vectors * vectors * emb)
        records.linear("over", emb + len(plan.pair_cols), plan.width)
        records.activation("relu", elementwise=plan.width)
        return records.layers

    def materialize(self, plan: OperatorPlan) -> DLRMDot:
        assert isinstance(plan, DLRMDotPlan)
        projection, over = self.weights(plan)
        return DLRMDot(
            projection.to_linear(),
            over.to_linear(),
            plan.bits,
            copy_quantizer(self.dense_quantizer),
            copy_quantizer(self.token_quantizer),
        )
