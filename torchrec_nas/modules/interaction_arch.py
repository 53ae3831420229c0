"""A fixed NASRec interaction with the contract of TorchRec's DLRM ``InteractionArch``."""

from __future__ import annotations

import torch
from torch import nn

from torchrec_nas.modules.interaction import NASRecInteraction
from torchrec_nas.modules.subnet import SubnetInteraction, run_blocks
from torchrec_nas.space import Architecture, SearchSpace


class NASRecInteractionArch(nn.Module):
    """The blocks of one NASRec architecture between DLRM's dense/sparse archs and its over arch.

    ``torchrec.models.dlrm.DLRM`` calls ``inter_arch(dense_features=..., sparse_features=...)``
    with the dense arch's output ``[B, D]`` and the pooled embeddings ``[B, F, E]``; this module
    returns the NASRec classifier's input, the last block's dense output and its flattened
    tokens, ``[B, out_features]``, for DLRM's ``OverArch`` to turn into a logit.

    Args:
        interaction: a materialized interaction; its blocks are used, not its classifier.

    Example::

        inter_arch = NASRecInteractionArch.build(space, arch, dense_in_features=16,
                                                 num_sparse_features=26)
        features = inter_arch(dense_features=torch.randn(8, 16),
                              sparse_features=torch.randn(8, 26, 16))   # [8, out_features]
    """

    def __init__(self, interaction: SubnetInteraction) -> None:
        super().__init__()
        self.architecture = interaction.arch
        self.blocks = interaction.blocks
        self.live_index = list(interaction.live_index)
        self.out_features: int = interaction.classifier.in_features

    @staticmethod
    def build(
        space: SearchSpace,
        architecture: Architecture,
        dense_in_features: int,
        num_sparse_features: int,
        norm_gain_init: float = 0.03,
    ) -> NASRecInteractionArch:
        """A freshly initialized interaction arch of ``architecture``."""
        space.validate(architecture)
        supernet = NASRecInteraction(
            space, dense_in_features, num_sparse_features, norm_gain_init=norm_gain_init
        )
        return NASRecInteractionArch(supernet.materialize(architecture))

    def forward(self, dense_features: torch.Tensor, sparse_features: torch.Tensor) -> torch.Tensor:
        """
        Args:
            dense_features: ``[B, D]``.
            sparse_features: pooled embeddings ``[B, F, E]``.

        Returns:
            ``[B, out_features]``.
        """
        return run_blocks(self.blocks, self.live_index, dense_features, sparse_features)
