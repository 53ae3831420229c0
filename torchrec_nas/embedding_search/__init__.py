"""Embedding-size search (AdaS&S, He Wei et al., 2024) on TorchRec: a one-shot embedding
supernet trained with adaptive width sampling, then a resource-aware search of one width per
feature (REINFORCE with a moving-average baseline, and regularized evolution), and the
mixed-width ``EmbeddingBagCollection`` of the result.

Example::

    from torchrec_nas.embedding_search import EmbeddingSizeSearch, embedding_bag_configs

    result = EmbeddingSizeSearch(Config.load("configs/demo.yaml"), "runs/emb").run()
    tables = embedding_bag_configs("runs/emb/embedding_dims.json", my_uniform_tables)
"""

from __future__ import annotations

import importlib

# Loading a config imports this package's torch-free ``config``: the rest loads on use.
_LAZY = {
    "EmbeddingSearchConfig": "torchrec_nas.embedding_search.config",
    "EmbeddingDimsError": "torchrec_nas.embedding_search.dims",
    "embedding_bag_configs": "torchrec_nas.embedding_search.dims",
    "embedding_params": "torchrec_nas.embedding_search.dims",
    "load_embedding_dims": "torchrec_nas.embedding_search.dims",
    "AdaptiveWidthSampler": "torchrec_nas.embedding_search.sampling",
    "ElasticSparseArch": "torchrec_nas.embedding_search.modules",
    "EmbeddingSupernet": "torchrec_nas.embedding_search.modules",
    "ProjectedSparseArch": "torchrec_nas.embedding_search.modules",
    "use_embedding_dims": "torchrec_nas.embedding_search.modules",
    "WidthPolicy": "torchrec_nas.embedding_search.policy",
    "evolve_widths": "torchrec_nas.embedding_search.policy",
    "EmbeddingSizeSearch": "torchrec_nas.embedding_search.search",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
