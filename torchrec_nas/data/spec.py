"""What a model needs to know about a data set's features (plain data; torch only for ``tables``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchrec.modules.embedding_configs import EmbeddingBagConfig


@dataclass(frozen=True)
class DataSpec:
    """Names of the dense and sparse features and the rows of each sparse feature's table.

    Args:
        dense_names: dense feature names, in the order of the columns of ``dense_features``.
        sparse_names: sparse feature names, the keys of ``sparse_features``.
        num_embeddings: rows of each sparse feature's embedding table (ids are in
            ``[0, num_embeddings[i])``), one per sparse feature.
        multi_hot: names of the sparse features that may carry several ids a row.
        bucket_edges: per bucketized sparse feature (``{column}_bucket``), the inner edges of
            its quantile bins, fitted on the train split (see :mod:`torchrec_nas.data.bucketize`).

    Example::

        spec = DataSpec(["d0"], ["user", "item"], [1000, 500])
        ebc = EmbeddingBagCollection(tables=spec.tables(embedding_dim=16))
    """

    dense_names: list[str]
    sparse_names: list[str]
    num_embeddings: list[int]
    multi_hot: list[str] = field(default_factory=list)
    bucket_edges: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.num_embeddings) != len(self.sparse_names):
            raise ValueError(
                f"DataSpec: {len(self.num_embeddings)} table sizes for "
                f"{len(self.sparse_names)} sparse features"
            )
        dups = sorted({n for n in self.sparse_names if self.sparse_names.count(n) > 1})
        if dups:
            raise ValueError(f"DataSpec: sparse feature {dups[0]!r} appears twice")
        unknown = sorted(set(self.bucket_edges) - set(self.sparse_names))
        if unknown:
            raise ValueError(f"DataSpec: bucket edges of {unknown[0]!r}, not a sparse feature")

    @property
    def num_dense(self) -> int:
        """Width of ``Batch.dense_features``."""
        return len(self.dense_names)

    def tables(self, embedding_dim: int) -> list[EmbeddingBagConfig]:
        """One ``EmbeddingBagConfig`` per sparse feature, named ``t_{feature}``.

        Args:
            embedding_dim: the width of every table.
        """
        # Imported here: the spec is plain data that cache manifests and configs read without torch.
        from torchrec.modules.embedding_configs import EmbeddingBagConfig

        return [
            EmbeddingBagConfig(
                name=f"t_{name}",
                embedding_dim=embedding_dim,
                num_embeddings=rows,
                feature_names=[name],
            )
            for name, rows in zip(self.sparse_names, self.num_embeddings)
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for cache manifests and checkpoints).

        ``bucket_edges`` appears only when a feature is bucketized, so a spec without one
        has the same form as before bucketizing existed.
        """
        out: dict[str, Any] = {
            "dense_names": list(self.dense_names),
            "sparse_names": list(self.sparse_names),
            "num_embeddings": list(self.num_embeddings),
            "multi_hot": list(self.multi_hot),
        }
        if self.bucket_edges:
            out["bucket_edges"] = {k: list(v) for k, v in self.bucket_edges.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:  # type: ignore[type-arg]
        """Inverse of :meth:`to_dict`."""
        return cls(
            dense_names=list(d["dense_names"]),
            sparse_names=list(d["sparse_names"]),
            num_embeddings=[int(n) for n in d["num_embeddings"]],
            multi_hot=list(d.get("multi_hot", [])),
            bucket_edges={k: [float(e) for e in v] for k, v in d.get("bucket_edges", {}).items()},
        )
