"""Modules of the embedding-size search: the elastic sparse arch of the supernet, the
mixed-width sparse arch of a final model, and the supernet itself.

Tokens of different widths reach the interaction through one projection per feature to the
interaction's token width ``T``; a feature at width ``T`` needs none (identity). A projection
starts as zero padding / truncation (``W[:, :T] = I``, bias 0), so every width starts from
the tokens a plain prefix gives, and it counts in the searched model's parameters.

The supernet shares weights along the width: each feature's table is built at the largest
width ``D`` and width ``d`` uses its first ``d`` columns; each feature's projection is one
``[T, D]`` weight of which width ``d`` uses the first ``d`` columns (a sliced shared weight,
as the NASRec supernet's elastic layers, rather than one ``nn.Linear`` per (feature, width)).
In the supernet every width goes through it, the token width included, so that all widths of
a feature reach the shared interaction in one coordinate system (an identity at ``T`` scored
far below its neighbours); a final model needs none at ``T``, since its freely trained table
rows absorb any affine map ``W e + b``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchrec.datasets.utils import Batch
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor


def padding_init(weight: torch.Tensor) -> None:
    """``weight [T, d]`` as zero padding (``d < T``) or truncation (``d >= T``) of a token."""
    with torch.no_grad():
        weight.zero_()
        n = min(weight.shape)
        weight[:n, :n] = torch.eye(n, dtype=weight.dtype)


class ElasticSparseArch(nn.Module):
    """The supernet's sparse arch: pooled embeddings at the largest width, each feature cut to
    its width and projected to the token width.

    ``forward(features, widths)`` gives tokens ``[B, F, T]`` where feature ``f``'s token is
    ``W_f[:, :d_f] e_f[:d_f] + b_f``, for every width (see the module's docstring).

    Args:
        embedding_bag_collection: one table per feature, all at the largest width.
        token_width: the interaction's token width ``T``.

    Example::

        arch = ElasticSparseArch(EmbeddingBagCollection(tables=tables_at_64), token_width=16)
        tokens = arch(kjt, {"c0": 8, "c1": 64})   # [B, 2, 16]
    """

    def __init__(self, embedding_bag_collection: EmbeddingBagCollection, token_width: int) -> None:
        super().__init__()
        configs = embedding_bag_collection.embedding_bag_configs()
        self.embedding_bag_collection = embedding_bag_collection
        self.feature_names = [f for t in configs for f in t.feature_names]
        self.max_width = configs[0].embedding_dim
        if any(t.embedding_dim != self.max_width for t in configs):
            raise ValueError("ElasticSparseArch: every table must be at the largest width")
        self.token_width = token_width
        device = next(embedding_bag_collection.parameters()).device
        device = torch.device("cpu") if device.type == "meta" else device
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(token_width, self.max_width, device=device))
            for _ in self.feature_names
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(token_width, device=device)) for _ in self.feature_names
        )
        for w in self.weights:
            padding_init(w)

    def pooled(self, features: KeyedJaggedTensor) -> torch.Tensor:
        """Pooled embeddings at the largest width, ``[B, F, D]``."""
        values = self.embedding_bag_collection(features).to_dict()
        return torch.stack([values[f] for f in self.feature_names], dim=1)

    def project(self, pooled: torch.Tensor, widths: Mapping[str, int]) -> torch.Tensor:
        """Tokens ``[B, F, T]`` of pooled embeddings ``[B, F, D]`` at ``widths``."""
        tokens = []
        for i, f in enumerate(self.feature_names):
            d = widths[f]
            w = self.weights[i][:, :d]
            tokens.append(nn.functional.linear(pooled[:, i, :d], w, self.biases[i]))
        return torch.stack(tokens, dim=1)

    def forward(self, features: KeyedJaggedTensor, widths: Mapping[str, int]) -> torch.Tensor:
        return self.project(self.pooled(features), widths)


class ProjectedSparseArch(nn.Module):
    """A mixed-width sparse arch with TorchRec's ``SparseArch`` contract (``[B, F, T]``
    tokens), so it replaces the sparse arch of ``DLRM``, ``DLRM_DCN`` or a NASRec subnet,
    whose interactions need one width: each table has its own ``embedding_dim`` and each
    feature narrower or wider than ``T`` goes through an ``nn.Linear(d, T)`` (see the
    module's docstring for the initialization).

    Args:
        embedding_bag_collection: tables of any widths (one ``EmbeddingBagConfig`` each).
        token_width: the interaction's token width ``T``.

    Example::

        ebc = EmbeddingBagCollection(tables=embedding_bag_configs(dims, tables))
        model.sparse_arch = ProjectedSparseArch(ebc, token_width=16)
    """

    def __init__(self, embedding_bag_collection: EmbeddingBagCollection, token_width: int) -> None:
        super().__init__()
        self.embedding_bag_collection = embedding_bag_collection
        configs = embedding_bag_collection.embedding_bag_configs()
        self._sparse_feature_names = [f for t in configs for f in t.feature_names]
        self.widths = {f: t.embedding_dim for t in configs for f in t.feature_names}
        self.token_width = token_width
        self.projections = nn.ModuleDict()
        for f, d in self.widths.items():
            if d != token_width:
                layer = nn.Linear(d, token_width)
                padding_init(layer.weight)
                nn.init.zeros_(layer.bias)
                self.projections[f] = layer

    @property
    def sparse_feature_names(self) -> list[str]:
        return self._sparse_feature_names

    def forward(self, features: KeyedJaggedTensor) -> torch.Tensor:
        values = self.embedding_bag_collection(features).to_dict()
        tokens = [
            self.projections[f](values[f]) if f in self.projections else values[f]
            for f in self._sparse_feature_names
        ]
        return torch.stack(tokens, dim=1)


def use_embedding_dims(
    model: nn.Module, tables: Sequence[EmbeddingBagConfig], token_width: int
) -> nn.Module:
    """``model`` (a ``BatchModel`` over DLRM/DCN-v2, or a ``NASRecSubnet``) with its sparse
    arch replaced by a :class:`ProjectedSparseArch` over ``tables`` (mixed widths); the
    rest of the model is untouched. A NASRec subnet whose embeddings cannot reach the logit
    is returned as it is.

    Example::

        model = use_embedding_dims(build_baseline("dlrm", tables, 13), mixed_tables, 16)
    """
    host = getattr(model, "model", model)  # BatchModel wraps the TorchRec model
    if getattr(host, "sparse_arch", None) is None:
        return model
    ebc = EmbeddingBagCollection(tables=list(tables), device=torch.device("cpu"))
    host.sparse_arch = ProjectedSparseArch(ebc, token_width)
    if hasattr(model, "tables"):
        setattr(model, "tables", list(tables))  # noqa: B010 (a list, not a module attribute)
    return model


class EmbeddingSupernet(nn.Module):
    """The embedding supernet: an :class:`ElasticSparseArch` and a fixed interaction head.

    ``forward(batch, widths)`` gives logits ``[B]`` of the subnet where feature ``f`` has
    width ``widths[f]``.

    Args:
        sparse_arch: the elastic sparse arch.
        head: ``head(dense_features, tokens) -> logits [B]`` (see :class:`DLRMHead`, or a
            NASRec ``SubnetInteraction``).

    Example::

        supernet = EmbeddingSupernet(ElasticSparseArch(ebc, 16), DLRMHead(dlrm))
        logits = supernet(batch, {f: 8 for f in supernet.feature_names})
    """

    def __init__(self, sparse_arch: ElasticSparseArch, head: nn.Module) -> None:
        super().__init__()
        self.sparse_arch = sparse_arch
        self.head = head

    @property
    def feature_names(self) -> list[str]:
        return self.sparse_arch.feature_names

    def forward(self, batch: Batch, widths: Mapping[str, int]) -> torch.Tensor:
        tokens = self.sparse_arch(batch.sparse_features, widths)
        logits: torch.Tensor = self.head(batch.dense_features, tokens)
        return logits


class DLRMHead(nn.Module):
    """The dense arch, interaction arch and over arch of a TorchRec ``DLRM`` (or
    ``DLRM_DCN``) as ``head(dense_features, tokens) -> logits [B]``.

    Args:
        dlrm: the model whose archs are taken (its sparse arch is not).
    """

    def __init__(self, dlrm: nn.Module) -> None:
        super().__init__()
        self.dense_arch: nn.Module = dlrm.dense_arch  # type: ignore[assignment]
        self.inter_arch: nn.Module = dlrm.inter_arch  # type: ignore[assignment]
        self.over_arch: nn.Module = dlrm.over_arch  # type: ignore[assignment]

    def forward(self, dense_features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        embedded = self.dense_arch(dense_features)
        features = self.inter_arch(dense_features=embedded, sparse_features=tokens)
        logits: torch.Tensor = self.over_arch(features).squeeze(-1)
        return logits
