"""Where each earlier output sits in a block's input, and which weight columns a subnet uses.

The supernet owns every layer at its largest size. A layer that reads the concatenation of
earlier outputs owns one fixed *slot* of columns per possible input: the raw input, then one slot
per earlier block at that block's largest width. A subnet uses, for each input it selects, the
first columns of that input's slot (the first ``k`` channels, once-for-all style). Materializing a
subnet copies exactly those columns, in the same order, so both compute the same function.

:class:`ArchitecturePlan` precomputes these column indices for one architecture; plans are cached
because the same architectures come back during the search.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from torchrec_nas.modules.operators.base import OperatorPlan, OperatorShape
from torchrec_nas.modules.operators.registry import operator_class, operator_spec
from torchrec_nas.space import Architecture, BlockConfig, BlockLiveness, SearchSpace, liveness


@dataclass(frozen=True)
class SlotSizes:
    """Sizes of the supernet's slots.

    Args:
        dense_in: width of the raw dense input (output 0 on the dense path).
        sparse_in: tokens of the raw sparse input (one per embedding feature).
        dense_slot: width of a block's dense slot (the largest dense width).
        token_slot: tokens of a block's sparse slot (largest operator tokens plus the
            dense-to-sparse tokens).
        op_tokens: the largest number of tokens a sparse operator outputs.
        extra_tokens: tokens appended by the dense-to-sparse interaction.
        embedding_dim: width of a token.
    """

    dense_in: int
    sparse_in: int
    dense_slot: int
    token_slot: int
    op_tokens: int
    extra_tokens: int
    embedding_dim: int

    @staticmethod
    def of(space: SearchSpace, dense_in_features: int, num_sparse_features: int) -> SlotSizes:
        return SlotSizes(
            dense_in=dense_in_features,
            sparse_in=num_sparse_features,
            dense_slot=space.max_dense_dim,
            token_slot=space.max_block_tokens,
            op_tokens=space.max_sparse_tokens,
            extra_tokens=space.dense_to_sparse_tokens if space.interaction_bits else 0,
            embedding_dim=space.embedding_dim,
        )

    def dense_columns(self, block: int) -> int:
        """Columns of the dense slot space that block ``block`` reads from."""
        return self.dense_in + block * self.dense_slot

    def token_columns(self, block: int) -> int:
        """Tokens of the sparse slot space that block ``block`` reads from."""
        return self.sparse_in + block * self.token_slot

    def dense_offset(self, output: int) -> int:
        return 0 if output == 0 else self.dense_in + (output - 1) * self.dense_slot

    def token_offset(self, output: int) -> int:
        return 0 if output == 0 else self.sparse_in + (output - 1) * self.token_slot

    def block_token_positions(self, b: BlockConfig) -> list[int]:
        """Positions, inside a block's token slot, of the tokens that block outputs."""
        positions = list(range(b.sparse_tokens))
        if b.dense_to_sparse:
            positions += list(range(self.op_tokens, self.op_tokens + self.extra_tokens))
        return positions


def _index(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


@dataclass(frozen=True, eq=False)
class BlockPlan:
    """What one block runs for one architecture.

    Args:
        config: the block's choices.
        live: which of its results reach the logit.
        dense: the dense operator's plan, ``None`` when its result is unused.
        sparse: the sparse operator's plan, ``None`` when its result is unused.
        out_token_count: tokens of the block's sparse output.
        layer_norm: whether its outputs pass through the space's LayerNorms (the
            architecture's ``layer_norm``).
    """

    config: BlockConfig
    live: BlockLiveness
    dense: OperatorPlan | None
    sparse: OperatorPlan | None
    out_token_count: int
    layer_norm: bool = True


@dataclass(frozen=True)
class ArchitecturePlan:
    """Everything index-like the supernet needs to run one architecture.

    Args:
        architecture: the architecture.
        blocks: one :class:`BlockPlan` per block.
        classifier_cols: columns of the classifier's input (dense slot, then flattened tokens).
        uses_dense_input: whether the raw dense features reach the logit.
        uses_sparse_input: whether the embeddings reach the logit.
    """

    architecture: Architecture
    blocks: tuple[BlockPlan, ...]
    classifier_cols: torch.Tensor
    uses_dense_input: bool
    uses_sparse_input: bool


def _output_width(arch: Architecture, output: int, sizes: SlotSizes) -> int:
    return sizes.dense_in if output == 0 else arch.blocks[output - 1].dense_dim


def _output_token_positions(arch: Architecture, output: int, sizes: SlotSizes) -> list[int]:
    if output == 0:
        return list(range(sizes.sparse_in))
    return sizes.block_token_positions(arch.blocks[output - 1])


def _dense_cols(arch: Architecture, inputs: tuple[int, ...], sizes: SlotSizes) -> list[int]:
    cols: list[int] = []
    for j in inputs:
        off = sizes.dense_offset(j)
        cols += range(off, off + _output_width(arch, j, sizes))
    return cols


def _token_cols(arch: Architecture, inputs: tuple[int, ...], sizes: SlotSizes) -> list[int]:
    cols: list[int] = []
    for j in inputs:
        off = sizes.token_offset(j)
        cols += [off + p for p in _output_token_positions(arch, j, sizes)]
    return cols


def operator_shape(
    space: SearchSpace, sizes: SlotSizes, block: int, quantized: bool | None = None
) -> OperatorShape:
    """The largest sizes of the operators of block ``block``."""
    dense_columns = sizes.dense_columns(block)
    token_columns = sizes.token_columns(block)
    return OperatorShape(
        dense_columns=dense_columns,
        token_columns=token_columns,
        # Initialize for a typical subnet, which reads about two slots, not all of them.
        dense_fan_in=min(dense_columns, sizes.dense_in + sizes.dense_slot),
        token_fan_in=min(token_columns, sizes.sparse_in + sizes.token_slot),
        max_dense_dim=sizes.dense_slot,
        max_tokens=sizes.op_tokens,
        embedding_dim=sizes.embedding_dim,
        attention_heads=space.attention_heads,
        quantized=bool(space.bit_choices) if quantized is None else quantized,
    )


def _operator_plan(
    name: str,
    b: BlockConfig,
    width: int,
    cols: list[int],
    first: list[int],
    rest: list[int],
    token_cols: list[int],
) -> OperatorPlan:
    plan = OperatorPlan(b, width, _index(cols), _index(first), _index(rest), _index(token_cols))
    result: OperatorPlan = operator_class(name).plan(plan)
    return result


@functools.lru_cache(maxsize=8192)
def plan_architecture(arch: Architecture, sizes: SlotSizes) -> ArchitecturePlan:
    """Builds (and caches) the :class:`ArchitecturePlan` of ``arch``.

    Inputs are taken in sorted order, so architectures that differ only in input order share
    a plan's arithmetic.
    """
    live = liveness(arch)
    blocks = []
    for b, lv in zip(arch.blocks, live):
        d_in = tuple(sorted(b.dense_inputs))
        s_in = tuple(sorted(b.sparse_inputs))
        token_cols = _token_cols(arch, s_in, sizes)
        dense = sparse = None
        if lv.dense_op:
            first, rest = d_in[:1], (d_in[1:] or d_in[:1])
            dense = _operator_plan(
                b.dense_op,
                b,
                b.dense_dim,
                _dense_cols(arch, d_in, sizes),
                _dense_cols(arch, first, sizes),
                _dense_cols(arch, rest, sizes),
                token_cols,
            )
        if lv.sparse_op:
            sparse = _operator_plan(b.sparse_op, b, b.sparse_tokens, token_cols, [], [], token_cols)
        tokens = len(sizes.block_token_positions(b))
        blocks.append(BlockPlan(b, lv, dense, sparse, tokens, arch.layer_norm))
    last = len(arch.blocks)
    cls_cols = list(range(arch.blocks[-1].dense_dim))
    if arch.head_tokens:
        for p in _output_token_positions(arch, last, sizes):
            start = sizes.dense_slot + p * sizes.embedding_dim
            cls_cols += range(start, start + sizes.embedding_dim)
    uses_dense = any(lv.dense_op and 0 in b.dense_inputs for b, lv in zip(arch.blocks, live))
    uses_sparse = any(
        (lv.sparse_op or (lv.dense_op and operator_spec(b.dense_op).reads_sparse))
        and 0 in b.sparse_inputs
        for b, lv in zip(arch.blocks, live)
    )
    return ArchitecturePlan(arch, tuple(blocks), _index(cls_cols), uses_dense, uses_sparse)
