"""Cross: DCN-v2's low-rank cross network over a block's inputs, then a projection to its width.

Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale Learning
to Rank Systems", WWW 2021; the math of ``torchrec.modules.crossnet.LowRankCrossNet``.

With the block's dense inputs ``x_1 .. x_k`` (``[B, D_j]``, in sorted order) and its sparse
inputs' tokens ``[B, T, E]``:

- ``x0 = [x_1, ..., x_k, flatten(tokens)]``, ``N = sum_j D_j + T E`` wide;
- ``L`` (:data:`~torchrec_nas.modules.operators.cross_sizes.CROSS_LAYERS`) low-rank cross
  layers of rank ``r`` (:func:`~torchrec_nas.modules.operators.cross_sizes.cross_rank` of the
  width), ``x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l`` with ``V_l: [r, N]``,
  ``W_l: [N, r]``, ``b_l: [N]``, starting from ``x_l = x0``;
- the output ``relu(P x_L + c)`` with ``P: [dense_dim, N]``.

A block reading the output of DLRM's dense arch and the raw tokens thus computes
``DLRM_DCN``'s interaction (``x0`` is exactly ``InteractionDCNArch``'s cross input) followed
by its over arch's first layer, whose width is the block's ``dense_dim``: the block's output
must be ``dense_dim`` wide, while the cross runs at ``x0``'s width.

In the supernet, ``x0`` lives in a slot space: the block's dense slot columns, then channel
``e`` of token slot ``t`` at column ``dense_columns + t E + e``. Every weight is built over that
space and the largest rank; a subnet takes the rows/columns of its ``x0`` and the first ``r``
ranks (``V_l``'s first rows, ``W_l``'s first columns) and ``P``'s first ``dense_dim`` rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.modules.crossnet import LowRankCrossNet

from torchrec_nas.hardware.layers import Layer, LinearLayer
from torchrec_nas.modules.elastic import ElasticLinear, take
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
from torchrec_nas.modules.operators.cross_sizes import CROSS_LAYERS, cross_rank
from torchrec_nas.modules.operators.registry import builtin_spec
from torchrec_nas.modules.quant import ActivationQuantizer, quantize_weight


class CrossKernels(NamedTuple):
    """The cross layers' weights: ``V_l [r, N]``, ``W_l [N, r]`` and ``b_l [N]`` per layer
    (slices of the supernet's, or a ``LowRankCrossNet``'s parameters)."""

    v: Sequence[torch.Tensor]
    w: Sequence[torch.Tensor]
    b: Sequence[torch.Tensor]


def low_rank_cross(
    x0: torch.Tensor,
    v_kernels: Sequence[torch.Tensor],
    w_kernels: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
) -> torch.Tensor:
    """``x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l`` for each layer, from ``x_l = x0``
    (``LowRankCrossNet.forward``'s arithmetic, in its order)."""
    x_l = x0
    for v, w, b in zip(v_kernels, w_kernels, biases):
        x_l_v = F.linear(x_l, v)
        x_l_w = F.linear(x_l_v, w)
        x_l = x0 * (x_l_w + b) + x_l
    return x_l


def cross_interaction(
    dense_inputs: list[torch.Tensor],
    tokens: torch.Tensor,
    kernels: CrossKernels,
    projection: LinearWeights,
    bits: Bits,
    quantizer: ActivationQuantizer | None,
) -> torch.Tensor:
    """``relu(P cross(x0) + c)`` with ``x0 = [dense inputs, flatten(tokens)]`` (see the module
    docstring)."""
    x0 = torch.cat([*dense_inputs, tokens.flatten(1)], dim=1)
    x0 = quantize_input(x0, bits, quantizer)
    x = low_rank_cross(
        x0,
        [quantize_weight(v, bits.weight) for v in kernels.v],
        [quantize_weight(w, bits.weight) for w in kernels.w],
        kernels.b,
    )
    weight = quantize_weight(projection.weight, bits.weight)
    return F.relu(F.linear(x, weight, projection.bias))


class CrossInteraction(nn.Module):
    """DCN-v2's cross network over ``[dense inputs, flatten(tokens)]``, then ``relu(P x + c)``
    (see the module docstring).

    Args:
        crossnet: TorchRec's ``LowRankCrossNet`` over ``x0``'s ``N`` features (its weights).
        projection: the layer ``[dense_dim, N]``.
        bits: precision of the products.
        input_quantizer: activation range of ``x0`` (quantized spaces).

    Example::

        cross = CrossInteraction(LowRankCrossNet(432, num_layers=3, low_rank=64),
                                 nn.Linear(432, 256))
        y = cross([torch.randn(4, 16)], torch.randn(4, 26, 16))   # [4, 256]
    """

    def __init__(
        self,
        crossnet: LowRankCrossNet,
        projection: nn.Linear,
        bits: Bits | None = None,
        input_quantizer: ActivationQuantizer | None = None,
    ) -> None:
        super().__init__()
        self.crossnet = crossnet
        self.projection = projection
        self.bits = bits or Bits()
        self.input_quantizer = input_quantizer

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """``LowRankCrossNet``'s initialization (Xavier-normal kernels, zero biases) and
        PyTorch's default for the projection."""
        net = self.crossnet
        for v, w, b in zip(net.V_kernels, net.W_kernels, net.bias):
            nn.init.xavier_normal_(v)
            nn.init.xavier_normal_(w)
            nn.init.zeros_(b)
        self.projection.reset_parameters()

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None
    ) -> torch.Tensor:
        assert tokens is not None, "the cross reads sparse inputs"
        net = self.crossnet
        kernels = CrossKernels(list(net.V_kernels), list(net.W_kernels), list(net.bias))
        return cross_interaction(
            dense_inputs,
            tokens,
            kernels,
            LinearWeights.of(self.projection),
            self.bits,
            self.input_quantizer,
        )


class CrossOperator(DenseOperator):
    """The supernet's cross: per layer ``V_l [r_max, N_max]``, ``W_l [N_max, r_max]`` and
    ``b_l [N_max]`` over the block's ``x0`` slot space, and an elastic projection.

    Example::

        op = CrossOperator(shape)
        y = op(dense_inputs, tokens, plan)      # [B, plan.width]
        cross = op.materialize(plan)            # CrossInteraction(crossnet=LowRankCrossNet(...))
    """

    spec = builtin_spec("cross")

    def __init__(self, shape: OperatorShape) -> None:
        super().__init__(shape)
        emb = shape.embedding_dim
        n_max = shape.dense_columns + shape.token_columns * emb
        rank = cross_rank(shape.max_dense_dim)
        # Xavier-normal (LowRankCrossNet's init) for the x0 of a typical subnet.
        n_typical = shape.dense_fan_in + shape.token_fan_in * emb
        std = math.sqrt(2.0 / (n_typical + rank))
        self.V_kernels = nn.ParameterList(
            nn.Parameter(torch.randn(rank, n_max) * std) for _ in range(CROSS_LAYERS)
        )
        self.W_kernels = nn.ParameterList(
            nn.Parameter(torch.randn(n_max, rank) * std) for _ in range(CROSS_LAYERS)
        )
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(n_max)) for _ in range(CROSS_LAYERS))
        self.projection = ElasticLinear(n_max, shape.max_dense_dim, fan_in=n_typical)
        self.input_quantizer = activation_quantizer(shape.quantized)

    def x0_columns(self, plan: OperatorPlan) -> torch.Tensor:
        """Columns of the ``x0`` slot space that ``plan``'s ``x0`` occupies, in its order."""
        emb = self.shape.embedding_dim
        channels = torch.arange(emb, dtype=plan.token_cols.dtype)
        token = self.shape.dense_columns + (plan.token_cols * emb).unsqueeze(1) + channels
        return torch.cat([plan.cols, token.flatten()])

    def weights(self, plan: OperatorPlan) -> tuple[CrossKernels, LinearWeights]:
        device = self.projection.weight.device
        cols = self.x0_columns(plan).to(device)
        rank = cross_rank(plan.width)
        kernels = CrossKernels(
            [take(v, rank, cols) for v in self.V_kernels],
            [take(w, cols, rank) for w in self.W_kernels],
            [take(b, cols) for b in self.bias],
        )
        return kernels, LinearWeights(*self.projection.sliced(plan.width, cols))

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None, plan: OperatorPlan
    ) -> torch.Tensor:
        assert tokens is not None, "the cross reads sparse inputs"
        kernels, projection = self.weights(plan)
        return cross_interaction(
            dense_inputs, tokens, kernels, projection, plan.bits, self.input_quantizer
        )

    @classmethod
    def layers(cls, plan: OperatorPlan, shape: OperatorShape, prefix: str) -> list[Layer]:
        n = len(plan.cols) + len(plan.token_cols) * shape.embedding_dim
        rank = cross_rank(plan.width)
        records = LayerRecords(prefix, plan.config)
        for layer in range(CROSS_LAYERS):
            # V_l has no bias; b_l is counted as W_l's.
            records.layers.append(
                LinearLayer(
                    f"{prefix}.layer{layer}.V",
                    n,
                    rank,
                    weight_bits=records.weight_bits,
                    activation_bits=records.activation_bits,
                    bias=False,
                )
            )
            records.linear(f"layer{layer}.W", rank, n)
            # + b_l, * x0, + x_l
            records.activation(f"layer{layer}.cross", elementwise=3 * n)
        records.linear("projection", n, plan.width)
        records.activation("relu", elementwise=plan.width)
        return records.layers

    def materialize(self, plan: OperatorPlan) -> CrossInteraction:
        kernels, projection = self.weights(plan)
        n = kernels.v[0].shape[1]
        crossnet = LowRankCrossNet(n, CROSS_LAYERS, low_rank=cross_rank(plan.width))
        crossnet.to(self.projection.weight.device)
        with torch.no_grad():
            for target, source in zip(
                [*crossnet.V_kernels, *crossnet.W_kernels, *crossnet.bias],
                [*kernels.v, *kernels.w, *kernels.b],
            ):
                target.copy_(source)
        return CrossInteraction(
            crossnet, projection.to_linear(), plan.bits, copy_quantizer(self.input_quantizer)
        )
