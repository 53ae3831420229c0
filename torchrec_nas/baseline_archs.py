"""TorchRec's hand-designed models as architectures of a NASRec search space.

:func:`dlrm_architecture` and :func:`dcn_architecture` return the :class:`Architecture` that
computes ``torchrec.models.dlrm.DLRM`` and ``DLRM_DCN`` (as :func:`torchrec_nas.models.
build_baseline` builds them) in NASRec's block structure, in a space whose dense operators
include ``dlrm_dot`` and ``cross`` (the ``nasrec-full-x`` preset, or any space listing them,
for example ``dense_ops: [fc, gating, sum, dot, cross, dlrm_dot]``):

- one ``fc`` block per layer of the dense arch (``relu(W x + b)``), reading the block before
  (the first reads the raw dense features);
- one ``dlrm_dot`` or ``cross`` block reading the dense arch's output and the raw embedding
  tokens: the interaction *and* the over arch's first layer, whose width is the block's;
- one ``fc`` block per further hidden layer of the over arch; the classifier is its last layer.

Unused leading blocks (the space has more blocks than the model has layers) are dead: they
cannot reach the logit and cost nothing. With ``layer_norm=False`` (the architecture's gene; or
in a space with ``layer_norm: false``), in a space with ``head_tokens: [false]`` (or ``[true,
false]``) the architecture computes the baseline's function (DLRM up to ``dlrm_dot``'s extra layer, below); otherwise it differs as follows:

- with LayerNorms (the default) every block's dense output goes through a LayerNorm
  (NASRec's blocks), where DLRM feeds the ReLU output straight into the next layer;
- in a space whose ``head_tokens`` allows ``false`` the classifier reads the over arch's last
  hidden layer only, as DLRM's does; otherwise the last block's sparse path is live: an
  ``efc`` (if the space has it) of the raw tokens to the fewest tokens the space allows, whose
  flattened tokens the classifier reads beside that layer;
- ``dlrm_dot`` projects its dense input to the embedding width (``W_d``) before the dot
  products, one ``E x E`` layer more than DLRM (the identity reproduces DLRM).

Example::

    space = SearchSpace.from_mapping({"preset": "nasrec-full-x",
                                      "dense_dims": [16, 32, 64, 128, 256]})
    arch = dcn_architecture(space, [256, 64], [256, 64])
    space.validate(arch)
"""

from __future__ import annotations

from collections.abc import Sequence

from torchrec_nas.architecture import Architecture, ArchitectureError, BlockConfig
from torchrec_nas.modules.operators.cross_sizes import CROSS_LAYERS, cross_rank
from torchrec_nas.space import SearchSpace


def dlrm_architecture(
    space: SearchSpace,
    dense_arch_layer_sizes: Sequence[int],
    over_arch_layer_sizes: Sequence[int],
    layer_norm: bool = True,
) -> Architecture:
    """DLRM (``torchrec.models.dlrm.DLRM``) as an architecture of ``space``.

    Args:
        space: a space with the ``fc`` and ``dlrm_dot`` dense operators.
        dense_arch_layer_sizes: the dense arch's layers; the embedding width is appended if it
            is not last (as :func:`~torchrec_nas.models.build_baseline` does).
        over_arch_layer_sizes: the over arch's layers; a final ``1`` (the logit) is the
            classifier's.
        layer_norm: the architecture's ``layer_norm`` gene (``False``: no LayerNorm after
            its blocks, as in DLRM, whatever the space).

    Raises:
        ArchitectureError: if a layer size is not among the space's ``dense_dims``, an
            operator is missing, or the space has too few blocks.
    """
    return _baseline(space, "dlrm_dot", dense_arch_layer_sizes, over_arch_layer_sizes, layer_norm)


def dcn_architecture(
    space: SearchSpace,
    dense_arch_layer_sizes: Sequence[int],
    over_arch_layer_sizes: Sequence[int],
    num_layers: int = CROSS_LAYERS,
    low_rank: int | None = None,
    layer_norm: bool = True,
) -> Architecture:
    """DCN-v2 (``torchrec.models.dlrm.DLRM_DCN``) as an architecture of ``space``.

    Args:
        space: a space with the ``fc`` and ``cross`` dense operators.
        dense_arch_layer_sizes: the dense arch's layers (see :func:`dlrm_architecture`).
        over_arch_layer_sizes: the over arch's layers; the first is the ``cross`` block's
            width.
        num_layers: the cross layers (``dcn_num_layers``); the ``cross`` operator has
            :data:`~torchrec_nas.modules.operators.cross_sizes.CROSS_LAYERS`.
        low_rank: the cross layers' rank (``dcn_low_rank_dim``); ``None`` accepts the
            operator's, :func:`~torchrec_nas.modules.operators.cross_sizes.cross_rank` of the
            block's width.

    Raises:
        ArchitectureError: as :func:`dlrm_architecture`, or if the ``cross`` operator cannot
            have ``num_layers`` layers of rank ``low_rank`` at that width.
    """
    width = _over_hidden(over_arch_layer_sizes)[0]
    if num_layers != CROSS_LAYERS:
        raise ArchitectureError(
            f"num_layers: the cross operator has {CROSS_LAYERS} layers, not {num_layers}"
        )
    if low_rank is not None and low_rank != cross_rank(width):
        raise ArchitectureError(
            f"low_rank: a cross block of width {width} has rank {cross_rank(width)}, not {low_rank}"
        )
    return _baseline(space, "cross", dense_arch_layer_sizes, over_arch_layer_sizes, layer_norm)


def _over_hidden(over_arch_layer_sizes: Sequence[int]) -> list[int]:
    sizes = list(over_arch_layer_sizes)
    if sizes and sizes[-1] == 1:
        sizes = sizes[:-1]
    if not sizes:
        raise ArchitectureError("over_arch_layer_sizes: at least one layer before the logit")
    return sizes


def _baseline(
    space: SearchSpace,
    interaction: str,
    dense_arch_layer_sizes: Sequence[int],
    over_arch_layer_sizes: Sequence[int],
    layer_norm: bool = True,
) -> Architecture:
    bottom = list(dense_arch_layer_sizes)
    if not bottom or bottom[-1] != space.embedding_dim:
        bottom.append(space.embedding_dim)
    over = _over_hidden(over_arch_layer_sizes)
    for op in ("fc", interaction):
        if op not in space.dense_ops:
            raise ArchitectureError(f"dense_op: the space has no {op!r} operator")
    for size in bottom + over:
        if size not in space.dense_dims:
            raise ArchitectureError(
                f"dense_dim: layer size {size} is not among the space's choices "
                f"{list(space.dense_dims)}"
            )
    ops = ["fc"] * len(bottom) + [interaction] + ["fc"] * (len(over) - 1)
    dims = bottom + over
    dead = space.num_blocks - len(ops)
    if dead < 0:
        raise ArchitectureError(
            f"num_blocks: the model has {len(ops)} layers; space {space.name!r} has "
            f"{space.num_blocks} blocks"
        )
    sparse_op = "efc" if "efc" in space.sparse_ops else space.sparse_ops[0]
    tokens = min(space.sparse_tokens)
    # Full precision where the space searches bit widths: its widest choice.
    bits = max(space.bit_choices) if space.bit_choices else None

    def block(op: str, dim: int, dense_input: int) -> BlockConfig:
        return BlockConfig(
            op, sparse_op, dim, tokens, (dense_input,), (0,), False, False, bits, bits
        )

    blocks = [block(space.dense_ops[0], min(space.dense_dims), 0)] * dead
    for k, (op, dim) in enumerate(zip(ops, dims)):
        # Output 0 is the raw input and block i's output is i + 1: the first live block reads
        # the raw dense features, the others the block before; every sparse path (read by the
        # interaction and the classifier) reads the raw tokens.
        blocks.append(block(op, dim, dead + k if k > 0 else 0))
    return Architecture(tuple(blocks), head_tokens=min(space.head_tokens), layer_norm=layer_norm)
