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
import math
from dataclasses import dataclass

import torch

from torchrec_nas.space import Architecture, BlockConfig, BlockLiveness, SearchSpace, liveness


def dot_tokens(dense_dim: int) -> int:
    """Tokens the dot-product operator keeps so that its pair count covers ``dense_dim``.

    ``round(sqrt(2 * dim))`` tokens give ``n (n + 1) / 2 >= dim`` products (lower triangle with
    the diagonal), so the operator's parameters grow linearly with ``dim``.
    """
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


@dataclass(frozen=True)
class BlockPlan:
    """Column indices a block's layers use for one architecture.

    ``dense_cols`` index the concatenated dense inputs in the dense slot space; ``left_cols`` and
    ``right_cols`` split them for binary operators (left: the first input; right: the others, or
    the first again when it is alone). ``token_cols`` index the concatenated sparse inputs in the
    token slot space; ``dot_token_cols`` the same, shifted behind the projected dense token.
    """

    config: BlockConfig
    live: BlockLiveness
    dense_cols: torch.Tensor
    left_cols: torch.Tensor
    right_cols: torch.Tensor
    left_inputs: tuple[int, ...]
    right_inputs: tuple[int, ...]
    token_cols: torch.Tensor
    dot_token_cols: torch.Tensor
    dot_tokens: int
    dot_pairs: torch.Tensor
    out_token_count: int


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
        left, right = d_in[:1], (d_in[1:] or d_in[:1])
        token_cols = _token_cols(arch, s_in, sizes)
        n = dot_tokens(b.dense_dim) if b.dense_op == "dot" else 0
        blocks.append(
            BlockPlan(
                config=b,
                live=lv,
                dense_cols=_index(_dense_cols(arch, d_in, sizes)),
                left_cols=_index(_dense_cols(arch, left, sizes)),
                right_cols=_index(_dense_cols(arch, right, sizes)),
                left_inputs=left,
                right_inputs=right,
                token_cols=_index(token_cols),
                dot_token_cols=_index([0] + [c + 1 for c in token_cols]),
                dot_tokens=n,
                dot_pairs=tril_pair_index(n, b.dense_dim) if n else _index([]),
                out_token_count=len(sizes.block_token_positions(b)),
            )
        )
    last = len(arch.blocks)
    cls_cols = list(range(arch.blocks[-1].dense_dim))
    for p in _output_token_positions(arch, last, sizes):
        start = sizes.dense_slot + p * sizes.embedding_dim
        cls_cols += range(start, start + sizes.embedding_dim)
    uses_dense = any(lv.dense_op and 0 in b.dense_inputs for b, lv in zip(arch.blocks, live))
    uses_sparse = any(
        (lv.sparse_op or (lv.dense_op and b.dense_op == "dot")) and 0 in b.sparse_inputs
        for b, lv in zip(arch.blocks, live)
    )
    return ArchitecturePlan(arch, tuple(blocks), _index(cls_cols), uses_dense, uses_sparse)
