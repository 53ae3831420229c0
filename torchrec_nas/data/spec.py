"""What a model needs to know about a data set's features (plain data; torch only for ``tables``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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

    Example::

        spec = DataSpec(["d0"], ["user", "item"], [1000, 500])
        ebc = EmbeddingBagCollection(tables=spec.tables(embedding_dim=16))
    """

    dense_names: list[str]
    sparse_names: list[str]
    num_embeddings: list[int]
    multi_hot: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.num_embeddings) != len(self.sparse_names):
            raise ValueError(
                f"DataSpec: {len(self.num_embeddings)} table sizes for "
                f"{len(self.sparse_names)} sparse features"
            )

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

    def to_dict(self) -> dict[str, list[str] | list[int]]:
        """Plain JSON-able form (for cache manifests)."""
        return {
            "dense_names": list(self.dense_names),
            "sparse_names": list(self.sparse_names),
            "num_embeddings": list(self.num_embeddings),
            "multi_hot": list(self.multi_hot),
        }

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:  # type: ignore[type-arg]
        """Inverse of :meth:`to_dict`."""
        return cls(
            dense_names=list(d["dense_names"]),
            sparse_names=list(d["sparse_names"]),
            num_embeddings=[int(n) for n in d["num_embeddings"]],
            multi_hot=list(d.get("multi_hot", [])),
        )
