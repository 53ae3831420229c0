"""The NASRec supernet interaction: choice blocks plus the classifier, over pooled embeddings.

It takes what any EmbeddingBagCollection-based TorchRec model has at the point where DLRM calls
its ``InteractionArch``: dense features ``[B, D]`` and sparse embeddings as tokens ``[B, F, E]``,
and returns logits ``[B]``. It replaces DLRM's interaction *and* over arch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchrec_nas.modules.block import ChoiceBlock
from torchrec_nas.modules.elastic import ElasticLinear
from torchrec_nas.modules.layout import ArchitecturePlan, SlotSizes, plan_architecture
from torchrec_nas.modules.operators.base import LinearWeights
from torchrec_nas.modules.operators.registry import operator_class
from torchrec_nas.modules.quant import ActivationQuantizer
from torchrec_nas.modules.subnet import SubnetBlock, SubnetInteraction, head_input
from torchrec_nas.space import Architecture, SearchSpace


class NASRecInteraction(nn.Module):
    """Weight-sharing supernet over the NASRec search space.

    Args:
        space: the search space.
        dense_in_features: D, width of the dense input.
        num_sparse_features: F, number of embedding tokens (one per sparse feature).
        norm_gain_init: initial gain of the LayerNorms after operators. Adagrad's first
            updates move every weight by about the learning rate whatever the gradient's scale,
            so a layer reading ``K`` unit-scale features moves its output by about ``lr * K``
            per step; small initial gains keep activations small at first (as a DLRM's
            near-zero embeddings do), so early steps stay small at the reference lr.

    When the space searches bit widths, operators fake-quantize their weights and inputs
    (:mod:`torchrec_nas.modules.quant`) with activation ranges tracked in training and frozen
    in eval mode.

    Example::

        space = SearchSpace.preset("nasrec-small")
        inter = NASRecInteraction(space, dense_in_features=13, num_sparse_features=26)
        arch = space.sample(random.Random(0))
        logits = inter(torch.randn(8, 13), torch.randn(8, 26, 16), arch)   # [8]
        subnet = inter.materialize(arch)     # standalone, same logits in eval mode
    """

    def __init__(
        self,
        space: SearchSpace,
        dense_in_features: int,
        num_sparse_features: int,
        norm_gain_init: float = 0.03,
    ) -> None:
        super().__init__()
        space.check_operators()
        self.space = space
        self.sizes = SlotSizes.of(space, dense_in_features, num_sparse_features)
        self.blocks = nn.ModuleList(
            ChoiceBlock(i, space, self.sizes, norm_gain_init) for i in range(space.num_blocks)
        )
        typical_in = space.max_dense_dim + space.max_sparse_tokens * space.embedding_dim
        self.classifier = ElasticLinear(
            self.sizes.dense_slot + self.sizes.token_slot * self.sizes.embedding_dim,
            1,
            fan_in=typical_in,
        )

    def plan(self, arch: Architecture) -> ArchitecturePlan:
        """The cached index plan of ``arch``."""
        return plan_architecture(arch, self.sizes)

    def forward(
        self, dense_features: torch.Tensor, sparse_tokens: torch.Tensor, arch: Architecture
    ) -> torch.Tensor:
        """
        Args:
            dense_features: ``[B, D]``.
            sparse_tokens: ``[B, F, E]`` pooled embeddings, one token per feature.
            arch: the subnet to run.

        Returns:
            logits ``[B]``.
        """
        w, b = self.classifier_weights(arch)
        return F.linear(self.head_features(dense_features, sparse_tokens, arch), w, b).squeeze(-1)

    def classifier_weights(self, arch: Architecture) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The classifier's active weight ``[1, features]`` and bias for ``arch``."""
        return self.classifier.sliced(1, self.plan(arch).classifier_cols)

    def head_features(
        self, dense_features: torch.Tensor, sparse_tokens: torch.Tensor, arch: Architecture
    ) -> torch.Tensor:
        """The classifier's input for ``arch``: the last block's dense output and (with
        ``arch.head_tokens``) its flattened tokens, ``[B, features]``. Fine-tuning only the
        classifier needs no more."""
        plan = self.plan(arch)
        dense_outputs: list[torch.Tensor | None] = [dense_features]
        sparse_outputs: list[torch.Tensor | None] = [sparse_tokens]
        for block, bplan in zip(self.blocks, plan.blocks):
            assert isinstance(block, ChoiceBlock)
            d = s = None
            if bplan.live.alive:
                d, s = block(bplan, dense_outputs, sparse_outputs)
            dense_outputs.append(d)
            sparse_outputs.append(s)
        return head_input(dense_outputs[-1], sparse_outputs[-1])

    @torch.no_grad()
    def materialize(self, arch: Architecture) -> SubnetInteraction:
        """A standalone interaction holding copies of only the weights ``arch`` uses.

        Its ``forward(dense_features, sparse_tokens)`` gives the same logits as
        ``self(dense_features, sparse_tokens, arch)`` in eval mode.
        """
        self.space.validate(arch)
        plan = self.plan(arch)
        blocks: list[SubnetBlock | None] = []
        for block, bplan in zip(self.blocks, plan.blocks):
            assert isinstance(block, ChoiceBlock)
            blocks.append(block.materialize(bplan) if bplan.live.alive else None)
        classifier = LinearWeights(*self.classifier.sliced(1, plan.classifier_cols)).to_linear()
        return SubnetInteraction(
            arch,
            blocks,
            classifier,
            uses_dense_input=plan.uses_dense_input,
            uses_sparse_input=plan.uses_sparse_input,
        )


def build_subnet_interaction(
    space: SearchSpace,
    arch: Architecture,
    dense_in_features: int,
    num_sparse_features: int,
    norm_gain_init: float = 0.03,
    device: torch.device | str | None = None,
) -> SubnetInteraction:
    """A freshly initialized :class:`SubnetInteraction` of ``arch``, allocating only its own
    weights.

    The supernet is laid out on the ``meta`` device (no storage), materialized there, and the
    resulting modules (the same classes and ``state_dict`` keys as
    :meth:`NASRecInteraction.materialize` gives) get real storage and a fresh initialization:
    ``nn.Linear`` and ``nn.MultiheadAttention`` their PyTorch defaults (uniform in
    ``±1/sqrt(in_features)`` of the subnet's own layer), the LayerNorms after operators a gain
    of ``norm_gain_init`` and a zero bias, activation quantizers an unseen range.

    Args:
        space: the search space.
        arch: an architecture of ``space``.
        dense_in_features: number of dense features.
        num_sparse_features: number of embedding features (tokens).
        norm_gain_init: initial gain of the LayerNorms after operators.
        device: where to allocate the weights (default CPU).

    Example::

        inter = build_subnet_interaction(space, arch, 13, 26)
        logits = inter(torch.randn(8, 13), torch.randn(8, 26, 16))   # [8]
    """
    space.validate(arch)
    # Operator modules are imported outside the meta context, so none of their module-level
    # tensors is made on the meta device.
    for name in (*space.dense_ops, *space.sparse_ops):
        operator_class(name)
    with torch.device("meta"):
        supernet = NASRecInteraction(space, dense_in_features, num_sparse_features)
    subnet = supernet.materialize(arch)
    target = torch.device(device) if device is not None else torch.device("cpu")
    with torch.no_grad():
        # Children first, so a parent's initialization (attention, norms) has the last word.
        for module in reversed(list(subnet.modules())):
            _allocate(module, target)
            _reset(module, norm_gain_init)
    return subnet


def _allocate(module: nn.Module, device: torch.device) -> None:
    # Only what the meta supernet left without storage; constant buffers (Gram indices) stay.
    for name, param in module.named_parameters(recurse=False):
        if param.is_meta:
            empty = torch.empty_like(param, device=device)
            setattr(module, name, nn.Parameter(empty, requires_grad=param.requires_grad))
    for name, buffer in module.named_buffers(recurse=False):
        if buffer is not None and buffer.is_meta:
            setattr(module, name, torch.empty_like(buffer, device=device))
    for name, buffer in module.named_buffers(recurse=False):
        if buffer is not None and buffer.device != device:
            setattr(module, name, buffer.to(device))


def _reset(module: nn.Module, norm_gain_init: float) -> None:
    if isinstance(module, SubnetBlock):
        # The LayerNorms after operators start at the supernet's gain.
        for norm in (module.dense_norm, module.sparse_norm):
            if norm is not None:
                nn.init.constant_(norm.weight, norm_gain_init)
                nn.init.zeros_(norm.bias)
    elif isinstance(module, nn.MultiheadAttention):
        module._reset_parameters()
    elif isinstance(module, ActivationQuantizer):
        module.running_max_abs.zero_()
        module.initialized.fill_(False)
    elif callable(reset := getattr(module, "reset_parameters", None)):
        # nn.Linear, nn.LayerNorm, and operator modules with weights of their own (the cross).
        reset()
