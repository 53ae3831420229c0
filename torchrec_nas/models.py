"""Models: the NASRec supernet and its subnets on TorchRec embeddings, and hand-designed
baselines from ``torchrec.models`` (DLRM, DCN-v2), all taking a ``Batch`` and returning logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchrec.datasets.utils import Batch
from torchrec.models.dlrm import DLRM, DLRM_DCN, SparseArch
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from torchrec_nas.modules.interaction import NASRecInteraction
from torchrec_nas.modules.subnet import SubnetInteraction
from torchrec_nas.space import Architecture, SearchSpace


def _check_tables(tables: list[EmbeddingBagConfig], embedding_dim: int) -> None:
    if not tables:
        raise ValueError("at least one EmbeddingBagConfig is required")
    for t in tables:
        if t.embedding_dim != embedding_dim:
            raise ValueError(
                f"table {t.name!r} has embedding_dim {t.embedding_dim}; the search space's "
                f"tokens are {embedding_dim} wide"
            )


class NASRecModel(nn.Module):
    """The NASRec supernet on a TorchRec ``EmbeddingBagCollection``.

    Sparse arch (TorchRec's ``SparseArch`` over an EBC, giving one token per feature), then the
    :class:`NASRecInteraction` supernet whose classifier gives the logit. Laid out like
    ``torchrec.models.dlrm.DLRM`` so that ``DistributedModelParallel`` shards ``sparse_arch``.

    Args:
        tables: embedding tables (all of the space's ``embedding_dim``).
        dense_in_features: number of dense features.
        space: the search space.
        device: where to build the EBC (``"meta"`` for sharding later).
        norm_gain_init: initial LayerNorm gain (see :class:`NASRecInteraction`).

    Example::

        tables = [EmbeddingBagConfig(name=f"t_{f}", embedding_dim=16, num_embeddings=100,
                                     feature_names=[f]) for f in ("f1", "f2")]
        model = NASRecModel(tables, dense_in_features=13,
                            space=SearchSpace.preset("nasrec-full"))
        arch = model.space.sample(random.Random(0))
        logits = model(batch, arch)          # [B]
        subnet = model.materialize(arch)     # subnet(batch) == logits in eval mode
    """

    def __init__(
        self,
        tables: list[EmbeddingBagConfig],
        dense_in_features: int,
        space: SearchSpace,
        device: torch.device | str | None = None,
        norm_gain_init: float = 0.03,
    ) -> None:
        super().__init__()
        _check_tables(tables, space.embedding_dim)
        self.space = space
        self.tables = list(tables)
        self.dense_in_features = dense_in_features
        self.sparse_arch = SparseArch(EmbeddingBagCollection(tables=tables, device=device))
        self.num_sparse_features = len(self.sparse_arch.sparse_feature_names)
        self.interaction = NASRecInteraction(
            space,
            dense_in_features,
            self.num_sparse_features,
            norm_gain_init=norm_gain_init,
        )

    def forward(self, batch: Batch, arch: Architecture) -> torch.Tensor:
        """Logits ``[B]`` of subnet ``arch`` on ``batch``."""
        tokens = self.sparse_arch(batch.sparse_features)
        return self.interaction(batch.dense_features, tokens, arch)

    def head_features(self, batch: Batch, arch: Architecture) -> torch.Tensor:
        """The classifier's input for ``arch`` on ``batch`` (see
        :meth:`NASRecInteraction.head_features`)."""
        tokens = self.sparse_arch(batch.sparse_features)
        return self.interaction.head_features(batch.dense_features, tokens, arch)

    def materialize(self, arch: Architecture) -> NASRecSubnet:
        """A standalone model of ``arch`` with copies of the supernet weights it uses.

        Embedding tables are copied only if the embeddings can reach the logit.
        """
        interaction = self.interaction.materialize(arch)
        sparse_arch = None
        if interaction.uses_sparse_input:
            ebc = EmbeddingBagCollection(tables=self.tables, device=torch.device("cpu"))
            ebc.load_state_dict(self.sparse_arch.embedding_bag_collection.state_dict())
            sparse_arch = SparseArch(ebc)
        device = next(self.interaction.parameters()).device
        return NASRecSubnet(sparse_arch, interaction, self.space, self.tables).to(device)


class NASRecSubnet(nn.Module):
    """A fixed model found by the search: TorchRec sparse arch plus a materialized interaction.

    Args:
        sparse_arch: TorchRec ``SparseArch`` over the EBC, or ``None`` if no embedding reaches
            the logit.
        interaction: the materialized interaction.
        space: the space the architecture comes from (kept for saving and cost models).
        tables: the embedding table configs.

    Example::

        subnet = NASRecSubnet.build(tables, 13, space, arch)   # fresh weights
        logits = subnet(batch)
    """

    def __init__(
        self,
        sparse_arch: SparseArch | None,
        interaction: SubnetInteraction,
        space: SearchSpace,
        tables: list[EmbeddingBagConfig],
    ) -> None:
        super().__init__()
        self.sparse_arch = sparse_arch
        self.interaction = interaction
        self.space = space
        self.tables = list(tables)

    @property
    def arch(self) -> Architecture:
        return self.interaction.arch

    @staticmethod
    def build(
        tables: list[EmbeddingBagConfig],
        dense_in_features: int,
        space: SearchSpace,
        arch: Architecture,
        norm_gain_init: float = 0.03,
    ) -> NASRecSubnet:
        """A freshly initialized subnet of ``arch`` (for training from scratch)."""
        space.validate(arch)
        model = NASRecModel(tables, dense_in_features, space, norm_gain_init=norm_gain_init)
        return model.materialize(arch)

    def forward(self, batch: Batch) -> torch.Tensor:
        tokens = self.sparse_arch(batch.sparse_features) if self.sparse_arch is not None else None
        return self.interaction(batch.dense_features, tokens)


class BatchModel(nn.Module):
    """Adapts a TorchRec model that takes ``(dense_features, sparse_features)`` and returns
    ``[B, 1]`` logits to the ``Batch`` in, ``[B]`` out convention used here.

    Args:
        model: for example ``torchrec.models.dlrm.DLRM``.
        name: a label for reports.
    """

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model = model
        self.name = name

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model(batch.dense_features, batch.sparse_features).squeeze(-1)


def build_baseline(
    name: str,
    tables: list[EmbeddingBagConfig],
    dense_in_features: int,
    **options: Any,
) -> BatchModel:
    """TorchRec's hand-designed models on the same tables.

    Args:
        name: ``"dlrm"`` or ``"dcn"`` (``DLRM_DCN``, DCN-v2 low-rank cross layers).
        tables: embedding tables (one width).
        dense_in_features: number of dense features.
        options: ``dense_arch_layer_sizes``, ``over_arch_layer_sizes``, and for DCN
            ``dcn_num_layers``, ``dcn_low_rank_dim``.

    Example::

        dlrm = build_baseline("dlrm", tables, 13)
        logits = dlrm(batch)   # [B]
    """
    dim = tables[0].embedding_dim
    _check_tables(tables, dim)
    dense_sizes = list(options.pop("dense_arch_layer_sizes", [512, 256, dim]))
    over_sizes = list(options.pop("over_arch_layer_sizes", [512, 256, 1]))
    if dense_sizes[-1] != dim:
        dense_sizes.append(dim)
    if over_sizes[-1] != 1:
        over_sizes.append(1)
    ebc = EmbeddingBagCollection(tables=tables, device=torch.device("cpu"))
    if name == "dlrm":
        if options:
            raise ValueError(f"unknown DLRM options: {sorted(options)}")
        return BatchModel(DLRM(ebc, dense_in_features, dense_sizes, over_sizes), "dlrm")
    if name == "dcn":
        layers = int(options.pop("dcn_num_layers", 3))
        rank = int(options.pop("dcn_low_rank_dim", 64))
        if options:
            raise ValueError(f"unknown DCN options: {sorted(options)}")
        model = DLRM_DCN(ebc, dense_in_features, dense_sizes, over_sizes, layers, rank)
        return BatchModel(model, "dcn")
    raise ValueError(f"unknown baseline {name!r}; known: dlrm, dcn")
