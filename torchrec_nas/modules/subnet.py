"""Materialized subnets: the live blocks of one architecture as ordinary modules.

A :class:`SubnetBlock` holds the modules its operators materialize into (for example
``FullyConnected(linear=Linear(...))``), so printing a subnet says which operator each block
runs. :func:`block_outputs` is the one place where a block's interaction bits and LayerNorms
are written; the supernet's choice blocks call it too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchrec_nas.architecture import Architecture, BlockConfig
from torchrec_nas.modules.operators.base import (
    Bits,
    LinearWeights,
    quantized_linear,
)
from torchrec_nas.modules.quant import ActivationQuantizer


def factorization_machine(tokens: torch.Tensor) -> torch.Tensor:
    """Second-order FM term of ``[B, T, E]`` tokens: ``((sum t)^2 - sum t^2) / 2``, ``[B, E]``."""
    square_of_sum = tokens.sum(dim=1).pow(2)
    sum_of_square = tokens.pow(2).sum(dim=1)
    return 0.5 * (square_of_sum - sum_of_square)


def gather(outputs: list[torch.Tensor | None], inputs: tuple[int, ...]) -> list[torch.Tensor]:
    """The outputs ``inputs`` names, in sorted order (the supernet's concatenation order)."""
    gathered = []
    for j in sorted(inputs):
        out = outputs[j]
        if out is None:
            raise RuntimeError(f"output {j} was not computed but is read (liveness bug)")
        gathered.append(out)
    return gathered


def concat_tokens(outputs: list[torch.Tensor | None], inputs: tuple[int, ...]) -> torch.Tensor:
    tokens = gather(outputs, inputs)
    return torch.cat(tokens, dim=1) if len(tokens) > 1 else tokens[0]


def block_outputs(
    config: BlockConfig,
    dense_result: torch.Tensor | None,
    sparse_result: torch.Tensor | None,
    dense_out: bool,
    sparse_out: bool,
    dense_norm: LinearWeights | None,
    sparse_norm: LinearWeights | None,
    sparse_to_dense: LinearWeights | None = None,
    dense_to_sparse: LinearWeights | None = None,
    sparse_to_dense_quantizer: ActivationQuantizer | None = None,
    dense_to_sparse_quantizer: ActivationQuantizer | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A block's outputs from its operators' results.

    Args:
        config: the block's choices.
        dense_result: the dense operator's result ``[B, D]`` (``None`` if unused).
        sparse_result: the sparse operator's result ``[B, T, E]`` (``None`` if unused).
        dense_out: whether the dense output can reach the logit (if not, none is computed).
        sparse_out: the same for the sparse output.
        dense_norm: the dense LayerNorm's affine weights (``None``: no LayerNorm, the space's
            ``layer_norm: false``).
        sparse_norm: the same for the sparse output.
        sparse_to_dense: the FM term's projection, when that bit applies.
        dense_to_sparse: the projection to extra tokens, when that bit applies.
        sparse_to_dense_quantizer: activation range of the FM term (quantized spaces).
        dense_to_sparse_quantizer: activation range of the dense result.

    Returns:
        ``(dense_out, sparse_out)``, ``None`` for an output that cannot reach the logit.
    """
    bits = Bits.of(config)
    dense = tokens = None
    if dense_out:
        assert dense_result is not None
        y = dense_result
        if sparse_to_dense is not None:
            assert sparse_result is not None
            fm = factorization_machine(sparse_result)
            y = y + quantized_linear(fm, sparse_to_dense, bits, sparse_to_dense_quantizer)
        dense = y if dense_norm is None else _norm(y, dense_norm)
    if sparse_out:
        assert sparse_result is not None
        t = sparse_result
        if dense_to_sparse is not None:
            assert dense_result is not None
            extra = quantized_linear(dense_result, dense_to_sparse, bits, dense_to_sparse_quantizer)
            t = torch.cat([t, extra.view(t.shape[0], -1, t.shape[2])], dim=1)
        tokens = t if sparse_norm is None else _norm(t, sparse_norm)
    return dense, tokens


def _norm(x: torch.Tensor, weights: LinearWeights) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), weights.weight, weights.bias)


class SubnetBlock(nn.Module):
    """One block of a materialized subnet: its operators' modules, LayerNorms and interaction
    projections, computing what the supernet's block computed.

    Args:
        config: the block's choices.
        dense: the dense operator's module, called ``dense(dense_inputs, tokens)``; ``None``
            if its result cannot reach the logit.
        sparse: the sparse operator's module, called ``sparse(tokens)``, or ``None``.
        reads_sparse: whether the dense operator reads the sparse inputs.
        dense_norm: LayerNorm of the dense output (``None``: none, or the output is unused).
        sparse_norm: LayerNorm of the sparse output (the same).
        sparse_to_dense: projection of the FM term, when that bit applies.
        dense_to_sparse: projection to extra tokens, when that bit applies.
        sparse_to_dense_quantizer: activation range of the FM term (quantized spaces).
        dense_to_sparse_quantizer: activation range of the dense result.
        dense_out: whether the dense output reaches the logit (default: ``dense_norm`` is
            given, as in spaces with LayerNorms).
        sparse_out: the same for the sparse output.
    """

    def __init__(
        self,
        config: BlockConfig,
        dense: nn.Module | None,
        sparse: nn.Module | None,
        reads_sparse: bool,
        dense_norm: nn.LayerNorm | None,
        sparse_norm: nn.LayerNorm | None,
        sparse_to_dense: nn.Linear | None = None,
        dense_to_sparse: nn.Linear | None = None,
        sparse_to_dense_quantizer: ActivationQuantizer | None = None,
        dense_to_sparse_quantizer: ActivationQuantizer | None = None,
        dense_out: bool | None = None,
        sparse_out: bool | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.dense_out = dense_norm is not None if dense_out is None else dense_out
        self.sparse_out = sparse_norm is not None if sparse_out is None else sparse_out
        self.dense = dense
        self.sparse = sparse
        self.reads_sparse = reads_sparse
        self.dense_norm = dense_norm
        self.sparse_norm = sparse_norm
        self.sparse_to_dense = sparse_to_dense
        self.dense_to_sparse = dense_to_sparse
        self.sparse_to_dense_quantizer = sparse_to_dense_quantizer
        self.dense_to_sparse_quantizer = dense_to_sparse_quantizer

    def forward(
        self, dense_outputs: list[torch.Tensor | None], sparse_outputs: list[torch.Tensor | None]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        cfg = self.config
        tokens = None
        if self.sparse is not None or (self.dense is not None and self.reads_sparse):
            tokens = concat_tokens(sparse_outputs, cfg.sparse_inputs)
        sparse_result = self.sparse(tokens) if self.sparse is not None else None
        dense_result = None
        if self.dense is not None:
            dense_inputs = gather(dense_outputs, cfg.dense_inputs)
            dense_result = self.dense(dense_inputs, tokens if self.reads_sparse else None)
        return block_outputs(
            cfg,
            dense_result,
            sparse_result,
            self.dense_out,
            self.sparse_out,
            _weights(self.dense_norm),
            _weights(self.sparse_norm),
            _weights(self.sparse_to_dense),
            _weights(self.dense_to_sparse),
            self.sparse_to_dense_quantizer,
            self.dense_to_sparse_quantizer,
        )


def _weights(module: nn.Linear | nn.LayerNorm | None) -> LinearWeights | None:
    return LinearWeights(module.weight, module.bias) if module is not None else None


def run_blocks(
    blocks: nn.ModuleList,
    live_index: list[int],
    dense_features: torch.Tensor,
    sparse_features: torch.Tensor | None,
) -> torch.Tensor:
    """Runs materialized blocks and returns the classifier's input (:func:`head_input`).

    Args:
        blocks: the live :class:`SubnetBlock` s in order.
        live_index: the block index of each (the last is the architecture's last block).
        dense_features: ``[B, D]``.
        sparse_features: ``[B, F, E]``, or ``None`` when no block reads the embeddings.
    """
    num_outputs = live_index[-1] + 2
    dense_outputs: list[torch.Tensor | None] = [dense_features] + [None] * (num_outputs - 1)
    sparse_outputs: list[torch.Tensor | None] = [sparse_features] + [None] * (num_outputs - 1)
    for i, block in zip(live_index, blocks):
        dense_outputs[i + 1], sparse_outputs[i + 1] = block(dense_outputs, sparse_outputs)
    return head_input(dense_outputs[-1], sparse_outputs[-1])


def head_input(dense: torch.Tensor | None, tokens: torch.Tensor | None) -> torch.Tensor:
    """The classifier's input: the last dense output and, when the head reads them (the
    tokens are live), the flattened tokens, ``[B, features]``."""
    assert dense is not None, "the last block's dense output always reaches the logit"
    return dense if tokens is None else torch.cat([dense, tokens.flatten(1)], dim=1)


class SubnetInteraction(nn.Module):
    """A fixed NASRec interaction: the live blocks of one architecture and its classifier.

    Built by :meth:`torchrec_nas.modules.interaction.NASRecInteraction.materialize`; trainable
    on its own (its parameters are copies, not views of the supernet). It takes tensors only,
    so ``torch.export`` can trace it.

    Args:
        arch: the architecture it computes.
        blocks: one :class:`SubnetBlock` per block, ``None`` for blocks that cannot reach the
            logit.
        classifier: the linear layer from the last block's outputs to the logit.
        uses_dense_input: whether the dense features reach the logit.
        uses_sparse_input: whether the embeddings reach the logit (if not, a model built on
            this subnet needs no embedding tables).

    Example::

        subnet = supernet_interaction.materialize(arch)
        logits = subnet(dense_features, sparse_features)   # [B, D], [B, F, E] -> [B]
    """

    def __init__(
        self,
        arch: Architecture,
        blocks: list[SubnetBlock | None],
        classifier: nn.Linear,
        uses_dense_input: bool = True,
        uses_sparse_input: bool = True,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.live_index = [i for i, b in enumerate(blocks) if b is not None]
        self.blocks = nn.ModuleList(b for b in blocks if b is not None)
        self.classifier = classifier
        self.uses_dense_input = uses_dense_input
        self.uses_sparse_input = uses_sparse_input

    def head_features(
        self, dense_features: torch.Tensor, sparse_features: torch.Tensor | None
    ) -> torch.Tensor:
        """The classifier's input: the last block's dense output and flattened tokens."""
        return run_blocks(self.blocks, self.live_index, dense_features, sparse_features)

    def forward(
        self, dense_features: torch.Tensor, sparse_features: torch.Tensor | None
    ) -> torch.Tensor:
        """
        Args:
            dense_features: ``[B, D]``.
            sparse_features: pooled embeddings as tokens ``[B, F, E]``, or ``None`` when
                ``uses_sparse_input`` is false.

        Returns:
            logits ``[B]``.
        """
        return self.classifier(self.head_features(dense_features, sparse_features)).squeeze(-1)
