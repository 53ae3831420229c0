"""Standalone subnets materialized from the supernet: only the active weights, no slots."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchrec_nas.modules.block import Quantizer, _identity, block_forward
from torchrec_nas.modules.layout import BlockPlan
from torchrec_nas.space import Architecture


class SubnetBlock(nn.Module):
    """One block of a materialized subnet, computing exactly what the supernet block did.

    Args:
        plan: the block's plan (config, liveness and input order).
        weights: its own copies of the active weights, by name.
        attention: its own attention layer, when its sparse operator is attention.
    """

    def __init__(
        self,
        plan: BlockPlan,
        weights: dict[str, torch.Tensor],
        attention: nn.MultiheadAttention | None,
    ) -> None:
        super().__init__()
        self.plan = plan
        self.weights = nn.ParameterDict({k: nn.Parameter(v) for k, v in weights.items()})
        self.attention = attention
        self.register_buffer("pairs", plan.dot_pairs.clone(), persistent=False)

    def forward(
        self,
        dense_outputs: list[torch.Tensor | None],
        sparse_outputs: list[torch.Tensor | None],
        quantize: Quantizer = _identity,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        weights = {k: self.weights[k] for k in self.weights}
        pairs = self.get_buffer("pairs") if self.plan.dot_tokens else None
        return block_forward(
            self.plan, weights, self.attention, dense_outputs, sparse_outputs, pairs, quantize
        )


class SubnetInteraction(nn.Module):
    """A fixed NASRec interaction: the live blocks of one architecture and its classifier.

    Built by :meth:`torchrec_nas.modules.interaction.NASRecInteraction.materialize`; trainable
    on its own (its parameters are copies, not views of the supernet).

    Args:
        arch: the architecture it computes.
        blocks: one :class:`SubnetBlock` per block, ``None`` for blocks that cannot reach the
            logit.
        classifier_weight: ``[1, features]``.
        classifier_bias: ``[1]``.
        uses_dense_input: whether the dense features reach the logit.
        uses_sparse_input: whether the embeddings reach the logit (if not, a model built on
            this subnet needs no embedding tables).
        quantize: fake quantization of weights and activations.

    Example::

        subnet = supernet_interaction.materialize(arch)
        logits = subnet(dense_features, sparse_tokens)   # [B]
    """

    def __init__(
        self,
        arch: Architecture,
        blocks: list[SubnetBlock | None],
        classifier_weight: torch.Tensor,
        classifier_bias: torch.Tensor,
        uses_dense_input: bool = True,
        uses_sparse_input: bool = True,
        quantize: Quantizer = _identity,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.live_index = [i for i, b in enumerate(blocks) if b is not None]
        self.blocks = nn.ModuleList(b for b in blocks if b is not None)
        self.classifier = nn.Linear(classifier_weight.shape[1], 1)
        with torch.no_grad():
            self.classifier.weight.copy_(classifier_weight)
            self.classifier.bias.copy_(classifier_bias)
        self.num_blocks = len(blocks)
        self.uses_dense_input = uses_dense_input
        self.uses_sparse_input = uses_sparse_input
        self.quantize = quantize

    def forward(
        self, dense_features: torch.Tensor, sparse_tokens: torch.Tensor | None
    ) -> torch.Tensor:
        """
        Args:
            dense_features: ``[B, D]``.
            sparse_tokens: ``[B, F, E]``, or ``None`` when ``uses_sparse_input`` is false.

        Returns:
            logits ``[B]``.
        """
        dense_outputs: list[torch.Tensor | None] = [dense_features] + [None] * self.num_blocks
        sparse_outputs: list[torch.Tensor | None] = [sparse_tokens] + [None] * self.num_blocks
        for i, block in zip(self.live_index, self.blocks):
            d, s = block(dense_outputs, sparse_outputs, self.quantize)
            dense_outputs[i + 1], sparse_outputs[i + 1] = d, s
        dense, tokens = dense_outputs[-1], sparse_outputs[-1]
        assert dense is not None and tokens is not None
        return F.linear(
            torch.cat([dense, tokens.flatten(1)], dim=1),
            self.classifier.weight,
            self.classifier.bias,
        ).squeeze(-1)
