"""Learned masks: a gate per prunable channel, trained with an L1 penalty, then thresholded.

A gate multiplies a block's output after its LayerNorm: dense channel ``c`` by ``g_c``, output
token ``t`` of the sparse operator by ``g_t`` (the dense-to-sparse tokens are not gated). The
gates start at one and are trained with the weights under the task loss plus
``l1 * sum |g|`` (network slimming, Liu et al., ICCV 2017), so the channels the task does
not need fall towards zero; their ``|g|`` ranks the channels (the stage breaks ties, gates the
task left at the penalty's common drift, by magnitude). After thresholding, a dense gate
is folded into the LayerNorm's gain and bias (exactly); a token gate cannot be folded (the
LayerNorm over a token's channels shares its gain with every token) and is dropped: the
fine-tuning that follows absorbs that change.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle
from torchrec.datasets.utils import Batch

from torchrec_nas.models import NASRecSubnet
from torchrec_nas.prune.graph import ChannelGraph, GroupKey


def _name(key: GroupKey) -> str:
    return f"block{key[0]}_{key[1]}"


class GatedSubnet(nn.Module):
    """A model with a gate on every prunable channel of ``graph`` (see the module docstring).

    Args:
        graph: the channel graph of the model to gate (its model is wrapped, not copied).

    Example::

        gated = GatedSubnet(ChannelGraph(model, 13))
        logits = gated(batch)          # the model's logits with gates (all one: unchanged)
        scores = gated.scores()        # |g| per channel
        gated.fold_and_remove()        # dense gates into the LayerNorms; hooks removed
    """

    def __init__(self, graph: ChannelGraph) -> None:
        super().__init__()
        self.graph = graph
        self.model: NASRecSubnet = graph.model
        device = next(self.model.parameters()).device
        self.gates = nn.ParameterDict(
            {_name(k): nn.Parameter(torch.ones(n, device=device)) for k, n in graph.groups.items()}
        )
        self._handles: list[RemovableHandle] = []
        for i, block in graph.blocks.items():
            dense = self.gates[_name((i, "dense"))] if (i, "dense") in graph.groups else None
            tokens = self.gates[_name((i, "tokens"))] if (i, "tokens") in graph.groups else None
            if dense is None and tokens is None:
                continue
            if dense is not None and not block.dense_out and block.dense is not None:
                # The dense result feeds only the dense-to-sparse projection: gate it there.
                self._handles.append(block.dense.register_forward_hook(_scale_hook(dense)))
                dense = None
            self._handles.append(block.register_forward_hook(_block_hook(dense, tokens)))

    def forward(self, batch: Batch) -> torch.Tensor:
        logits: torch.Tensor = self.model(batch)
        return logits

    def penalty(self) -> torch.Tensor:
        """``sum |g|`` over every gate."""
        return sum((g.abs().sum() for g in self.gates.values()), torch.zeros(()))

    def scores(self) -> dict[GroupKey, torch.Tensor]:
        """``|g|`` of every gated channel."""
        return {k: self.gates[_name(k)].detach().abs().cpu() for k in self.graph.groups}

    @torch.no_grad()
    def fold_and_remove(self) -> NASRecSubnet:
        """Folds the dense gates into the LayerNorms that precede them, drops the others and
        removes the hooks; returns the (now ungated) model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for (i, kind), _ in self.graph.groups.items():
            norm = self.graph.blocks[i].dense_norm
            if kind == "dense" and norm is not None:
                gate = self.gates[_name((i, kind))]
                norm.weight.mul_(gate)
                norm.bias.mul_(gate)
        return self.model


def _scale_hook(gate: nn.Parameter) -> Any:
    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return output * gate

    return hook


def _block_hook(dense: nn.Parameter | None, tokens: nn.Parameter | None) -> Any:
    def hook(module: nn.Module, inputs: Any, output: tuple[Any, Any]) -> tuple[Any, Any]:
        dense_out, sparse_out = output
        if dense is not None and dense_out is not None:
            dense_out = dense_out * dense
        if tokens is not None and sparse_out is not None:
            extra = sparse_out.shape[1] - tokens.shape[0]
            scale = F.pad(tokens, (0, extra), value=1.0) if extra else tokens
            sparse_out = sparse_out * scale.view(1, -1, 1)
        return dense_out, sparse_out

    return hook
