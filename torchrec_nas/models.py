"""Models: the NASRec supernet and its subnets on TorchRec embeddings, hand-designed baselines
from ``torchrec.models`` (DLRM, DCN-v2), and :class:`DLRM_NASRec`, TorchRec's DLRM with a searched
interaction, built like ``DLRM_DCN``.

``NASRecModel``, ``NASRecSubnet`` and ``BatchModel`` take a ``Batch`` and return logits ``[B]``;
``DLRM_NASRec`` keeps DLRM's ``forward(dense_features, sparse_features) -> [B, 1]``, so
TorchRec's ``DLRMTrain`` drives it; :class:`SupernetTrain` gives the supernet the same train
contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchrec.datasets.utils import Batch
from torchrec.models.dlrm import DLRM, DLRM_DCN, OverArch, SparseArch
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from torchrec_nas.hardware.embedding_memory import tables_at_widths
from torchrec_nas.modules.interaction import NASRecInteraction, build_subnet_interaction
from torchrec_nas.modules.interaction_arch import NASRecInteractionArch
from torchrec_nas.modules.subnet import SubnetInteraction
from torchrec_nas.modules.widths import load_prefixes, narrow_tokens, subnet_sparse_arch
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
        tokens = self.narrow(self.sparse_arch(batch.sparse_features), arch)
        return self.interaction(batch.dense_features, tokens, arch)

    def head_features(self, batch: Batch, arch: Architecture) -> torch.Tensor:
        """The classifier's input for ``arch`` on ``batch`` (see
        :meth:`NASRecInteraction.head_features`)."""
        tokens = self.narrow(self.sparse_arch(batch.sparse_features), arch)
        return self.interaction.head_features(batch.dense_features, tokens, arch)

    def narrow(self, tokens: torch.Tensor, arch: Architecture) -> torch.Tensor:
        """Tokens ``[B, F, D]`` at ``arch``'s embedding widths: a width ``d`` keeps the first
        ``d`` columns, zero-padded to ``D`` (see :mod:`torchrec_nas.modules.widths`)."""
        return narrow_tokens(tokens, self.sparse_arch.sparse_feature_names, arch.widths)

    def materialize(self, arch: Architecture) -> NASRecSubnet:
        """A standalone model of ``arch`` with copies of the supernet weights it uses.

        Embedding tables are copied only if the embeddings can reach the logit.
        """
        interaction = self.interaction.materialize(arch)
        sparse_arch: nn.Module | None = None
        tables = tables_at_widths(self.tables, arch.widths)
        if interaction.uses_sparse_input:
            ebc = EmbeddingBagCollection(tables=tables, device=torch.device("cpu"))
            load_prefixes(ebc, self.sparse_arch.embedding_bag_collection.state_dict())
            sparse_arch = subnet_sparse_arch(ebc, arch, self.space.embedding_dim)
        device = next(self.interaction.parameters()).device
        return NASRecSubnet(sparse_arch, interaction, self.space, tables).to(device)


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
        sparse_arch: nn.Module | None,
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
        """A freshly initialized subnet of ``arch`` (for training from scratch), allocating only
        its own weights (no supernet).

        Its modules and ``state_dict`` keys are those of ``NASRecModel(...).materialize(arch)``,
        so either loads the other's weights. The embedding tables (built only if the embeddings
        reach the logit) get TorchRec's default initialization; the interaction's layers get
        PyTorch's defaults for their own sizes and the LayerNorms after operators a gain of
        ``norm_gain_init`` (see
        :func:`~torchrec_nas.modules.interaction.build_subnet_interaction`).

        Args:
            tables: embedding tables (all of the space's ``embedding_dim``).
            dense_in_features: number of dense features.
            space: the search space.
            arch: an architecture of ``space``.
            norm_gain_init: initial LayerNorm gain after operators.

        Example::

            subnet = NASRecSubnet.build(tables, 13, SearchSpace.preset("nasrec-full"), arch)
            logits = subnet(batch)   # [B]
        """
        _check_tables(tables, space.embedding_dim)
        num_sparse = sum(len(t.feature_names) for t in tables)
        interaction = build_subnet_interaction(
            space, arch, dense_in_features, num_sparse, norm_gain_init=norm_gain_init
        )
        sparse_arch: nn.Module | None = None
        tables = tables_at_widths(tables, arch.widths)  # the joint search's widths, if any
        if interaction.uses_sparse_input:
            ebc = EmbeddingBagCollection(tables=tables, device=torch.device("cpu"))
            sparse_arch = subnet_sparse_arch(ebc, arch, space.embedding_dim)
        return NASRecSubnet(sparse_arch, interaction, space, tables)

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


class DLRM_NASRec(DLRM):
    """TorchRec's DLRM with a searched NASRec interaction in place of its pairwise dot products.

    Built like ``torchrec.models.dlrm.DLRM_DCN``: the same sparse arch (an
    ``EmbeddingBagCollection``), dense arch and over arch, with the interaction arch replaced by
    the blocks of one :class:`~torchrec_nas.space.Architecture` (a
    :class:`~torchrec_nas.modules.interaction_arch.NASRecInteractionArch`). The dense arch's
    output (of the embedding width) is the interaction's dense input; the over arch reads the
    last block's outputs.

    Args:
        embedding_bag_collection: the embeddings (all of the space's ``embedding_dim``).
        dense_in_features: number of dense features.
        dense_arch_layer_sizes: layer sizes of the dense arch; the last is the embedding dim.
        over_arch_layer_sizes: layer sizes of the over arch (at least two, as in DLRM); the
            last is 1.
        architecture: the interaction's architecture, fixed at construction.
        space: the space ``architecture`` belongs to.
        norm_gain_init: initial gain of the LayerNorms after operators.
        dense_device: where to build the dense part.

    Example::

        model = DLRM_NASRec(
            embedding_bag_collection=ebc,
            dense_in_features=13,
            dense_arch_layer_sizes=[64, 16],
            over_arch_layer_sizes=[64, 1],
            architecture=Architecture.load("best_arch.json"),
            space=SearchSpace.preset("nasrec-full"),
        )
        logits = model(dense_features=features, sparse_features=kjt)   # [B, 1]
        train_model = torchrec.models.dlrm.DLRMTrain(model)             # (loss, (loss, logits, labels))
    """

    def __init__(
        self,
        embedding_bag_collection: EmbeddingBagCollection,
        dense_in_features: int,
        dense_arch_layer_sizes: list[int],
        over_arch_layer_sizes: list[int],
        architecture: Architecture,
        space: SearchSpace,
        norm_gain_init: float = 0.03,
        dense_device: torch.device | None = None,
    ) -> None:
        super().__init__(
            embedding_bag_collection,
            dense_in_features,
            dense_arch_layer_sizes,
            over_arch_layer_sizes,
            dense_device,
        )
        _check_tables(embedding_bag_collection.embedding_bag_configs(), space.embedding_dim)
        self.inter_arch = NASRecInteractionArch.build(
            space,
            architecture,
            dense_in_features=dense_arch_layer_sizes[-1],
            num_sparse_features=len(self.sparse_arch.sparse_feature_names),
            norm_gain_init=norm_gain_init,
        ).to(dense_device)
        self.over_arch = OverArch(
            in_features=self.inter_arch.out_features,
            layer_sizes=over_arch_layer_sizes,
            device=dense_device,
        )
        self.space = space

    @property
    def architecture(self) -> Architecture:
        return self.inter_arch.architecture


class SupernetTrain(nn.Module):
    """The supernet with TorchRec's ``DLRMTrain`` contract, for TorchRec's train pipelines.

    Each training ``forward`` runs the architecture ``sampler(step)`` and counts the step (a
    buffer, so it is saved with the model); in eval mode the last sampled architecture, or
    ``eval_architecture`` when given, is used.

    Args:
        model: the supernet.
        sampler: the architecture of each training step (for example
            ``torchrec_nas.train.sampling.PathSampler``).
        eval_architecture: the architecture of eval-mode calls.

    Example::

        train_model = SupernetTrain(NASRecModel(tables, 13, space), PathSampler(space))
        loss, (loss_detached, logits, labels) = train_model(batch)
        pipeline = TrainPipelineSparseDist(train_model, optimizer, device)
    """

    step: torch.Tensor

    def __init__(
        self,
        model: NASRecModel,
        sampler: Callable[[int], Architecture],
        eval_architecture: Architecture | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.sampler = sampler
        self.eval_architecture = eval_architecture
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self._last: Architecture | None = None

    def architecture(self) -> Architecture:
        """The architecture the next call runs."""
        if self.training or (self.eval_architecture is None and self._last is None):
            return self.sampler(int(self.step))
        return self.eval_architecture or self._last  # type: ignore[return-value]

    def forward(
        self, batch: Batch
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(loss, (loss.detach(), logits.detach(), labels.detach()))``, logits ``[B]``."""
        arch = self.architecture()
        if self.training:
            self._last = arch
            self.step += 1
        logits = self.model(batch, arch)
        loss = self.loss_fn(logits, batch.labels.float())
        return loss, (loss.detach(), logits.detach(), batch.labels.detach())
