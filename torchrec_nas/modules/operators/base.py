"""What every NASRec operator is: elastic weights in the supernet, a subnet forward on slices of
them, hardware layer records, and a materialized module of ordinary ``nn`` layers.

A block asks its operator to run with an :class:`OperatorPlan`: the widths the architecture
chose and the columns of the slot space its inputs occupy (see
:mod:`torchrec_nas.modules.layout`). The supernet operator slices its weights with the plan and
calls the same arithmetic as the module it materializes into, so both compute one function.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from torchrec_nas.architecture import BlockConfig
from torchrec_nas.hardware.layers import ActivationOp, Layer, LinearLayer
from torchrec_nas.modules.operators.registry import OperatorSpec
from torchrec_nas.modules.quant import ActivationQuantizer, quantize_weight


class LinearWeights(NamedTuple):
    """A weight ``[N, K]`` and bias ``[N]`` (or ``None``): a slice of an elastic layer or the
    parameters of an ``nn.Linear``."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    @staticmethod
    def of(linear: nn.Linear) -> LinearWeights:
        return LinearWeights(linear.weight, linear.bias)

    def to_linear(self) -> nn.Linear:
        """An ``nn.Linear`` holding copies of these weights."""
        out_features, in_features = self.weight.shape
        linear = nn.Linear(in_features, out_features, bias=self.bias is not None)
        linear.to(self.weight.device)
        with torch.no_grad():
            linear.weight.copy_(self.weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear


@dataclass(frozen=True)
class Bits:
    """Precision of one block's matrix products (``None``: full precision).

    Args:
        weight: bits per weight.
        activation: bits per input activation.
    """

    weight: int | None = None
    activation: int | None = None

    @staticmethod
    def of(config: BlockConfig) -> Bits:
        return Bits(config.weight_bits, config.activation_bits)


def quantize_input(
    x: torch.Tensor, bits: Bits, quantizer: ActivationQuantizer | None
) -> torch.Tensor:
    """``x`` fake-quantized to ``bits.activation`` with ``quantizer``'s running range."""
    if bits.activation is None or quantizer is None:
        return x
    return quantizer(x, bits.activation)


def quantized_linear(
    x: torch.Tensor,
    weights: LinearWeights,
    bits: Bits,
    quantizer: ActivationQuantizer | None = None,
) -> torch.Tensor:
    """``F.linear`` with fake-quantized input (running range) and weight (per tensor)."""
    x = quantize_input(x, bits, quantizer)
    return F.linear(x, quantize_weight(weights.weight, bits.weight), weights.bias)


def token_linear(tokens: torch.Tensor, weights: LinearWeights) -> torch.Tensor:
    """A linear map over the token axis, shared by every embedding channel: ``[B, T_in, E]``
    with a weight ``[T_out, T_in]`` gives ``[B, T_out, E]``."""
    out = torch.matmul(weights.weight, tokens)
    if weights.bias is not None:
        out = out + weights.bias.unsqueeze(-1)
    return out


def activation_quantizer(quantized: bool) -> ActivationQuantizer | None:
    """A running-range activation quantizer if the space searches bit widths, else ``None``."""
    return ActivationQuantizer(bits=None) if quantized else None


def copy_quantizer(quantizer: ActivationQuantizer | None) -> ActivationQuantizer | None:
    return copy.deepcopy(quantizer) if quantizer is not None else None


@dataclass(frozen=True)
class OperatorShape:
    """The largest sizes an operator of one supernet block is built for.

    Args:
        dense_columns: columns of the dense slot space the block can read.
        token_columns: tokens of the sparse slot space the block can read.
        dense_fan_in: fan-in used to initialize layers over dense slots (a typical subnet
            reads a few slots, not all).
        token_fan_in: the same for layers over token slots.
        max_dense_dim: the largest dense width.
        max_tokens: the largest number of tokens a sparse operator outputs.
        embedding_dim: the width of a token.
        attention_heads: heads of attention operators.
        quantized: whether the space searches bit widths (operators then keep activation
            ranges).
    """

    dense_columns: int
    token_columns: int
    dense_fan_in: int
    token_fan_in: int
    max_dense_dim: int
    max_tokens: int
    embedding_dim: int
    attention_heads: int = 2
    quantized: bool = False


@dataclass(frozen=True, eq=False)
class OperatorPlan:
    """What one block asks of its operator for one architecture.

    Args:
        config: the block's choices.
        width: the output width: ``dense_dim`` for a dense operator, ``sparse_tokens`` for a
            sparse one.
        cols: slot-space columns of the concatenated inputs of the operator's path (dense
            columns for a dense operator, token positions for a sparse one).
        first_cols: a binary operator's left input (the first input's columns).
        rest_cols: a binary operator's right input (the others, or the first when alone).
        token_cols: token positions of the block's sparse inputs (for sparse operators and
            dense operators that read sparse inputs).
    """

    config: BlockConfig
    width: int
    cols: torch.Tensor
    first_cols: torch.Tensor
    rest_cols: torch.Tensor
    token_cols: torch.Tensor

    @property
    def bits(self) -> Bits:
        return Bits.of(self.config)


class LayerRecords:
    """Collects the hardware layer records of one operator (see
    :mod:`torchrec_nas.hardware.layers`), named ``PREFIX.SUFFIX``, at the block's bit widths.

    Example::

        records = LayerRecords("block0.dense.fc", plan.config)
        records.linear("linear", in_features=20, out_features=32)
        records.activation("relu", elementwise=32)
    """

    def __init__(self, prefix: str, config: BlockConfig) -> None:
        self.prefix = prefix
        self.weight_bits = config.weight_bits or 8
        self.activation_bits = config.activation_bits or 8
        self.layers: list[Layer] = []

    def linear(self, suffix: str, in_features: int, out_features: int, vectors: int = 1) -> None:
        self.layers.append(
            LinearLayer(
                f"{self.prefix}.{suffix}",
                in_features,
                out_features,
                vectors,
                weight_bits=self.weight_bits,
                activation_bits=self.activation_bits,
            )
        )

    def activation(self, suffix: str, macs: int = 0, elementwise: int = 0) -> None:
        self.layers.append(
            ActivationOp(f"{self.prefix}.{suffix}", macs, elementwise, self.activation_bits)
        )


class Operator(nn.Module, ABC):
    """A supernet operator: owns its elastic weights at their largest size.

    Subclasses declare ``spec`` (an :class:`OperatorSpec`) and implement ``forward`` (dense
    operators: :class:`DenseOperator`; sparse ones: :class:`SparseOperator`), :meth:`layers`
    and :meth:`materialize`.

    Args:
        shape: the largest sizes of the block it belongs to.
    """

    spec: ClassVar[OperatorSpec]

    def __init__(self, shape: OperatorShape) -> None:
        super().__init__()
        self.shape = shape

    @classmethod
    def plan(cls, plan: OperatorPlan) -> OperatorPlan:
        """Adds what this operator precomputes per architecture (plans are cached); the
        default adds nothing."""
        return plan

    @classmethod
    @abstractmethod
    def layers(cls, plan: OperatorPlan, shape: OperatorShape, prefix: str) -> list[Layer]:
        """The layer records one sample runs through this operator under ``plan``."""

    @abstractmethod
    def materialize(self, plan: OperatorPlan) -> nn.Module:
        """An ordinary module holding copies of the weights ``plan`` uses, computing what
        ``forward`` computes under ``plan`` (``DenseOperator``/``SparseOperator`` say how it
        is called)."""

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}"


class DenseOperator(Operator):
    """A dense operator: ``forward(dense_inputs, tokens, plan) -> [B, plan.width]``.

    ``dense_inputs`` are the block's dense inputs in sorted order, ``[B, D_j]`` each; ``tokens``
    is the concatenation of its sparse inputs ``[B, T, E]`` when ``spec.reads_sparse``, else
    ``None``. The materialized module is called as ``module(dense_inputs, tokens)``.
    """

    @abstractmethod
    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None, plan: OperatorPlan
    ) -> torch.Tensor: ...


class SparseOperator(Operator):
    """A sparse operator: ``forward(tokens, plan) -> [B, plan.width, E]`` over the concatenated
    sparse inputs ``[B, T, E]``. The materialized module is called as ``module(tokens)``."""

    @abstractmethod
    def forward(self, tokens: torch.Tensor, plan: OperatorPlan) -> torch.Tensor: ...
