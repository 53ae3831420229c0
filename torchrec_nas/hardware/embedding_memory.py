"""Embedding memory of a candidate: TorchRec's own planner storage estimate, and the tables of
an architecture with searched widths.

:func:`embedding_memory_bytes` enumerates one sharding option per table with TorchRec's
``EmbeddingEnumerator`` (one CPU rank, ``table_wise`` sharding, the ``fused`` kernel) and sums
the storage :class:`~torchrec.distributed.planner.shard_estimators.EmbeddingStorageEstimator`
gives each shard: the table's weights and fused optimizer state plus the planner's input and
output buffers for ``batch_size`` samples. No sharding plan is needed (the enumerator prices
options before the planner picks any); the tables are built on the ``meta`` device, so no
weights are allocated. About a few milliseconds for 26 tables.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping, Sequence

import torch
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.planner.enumerators import EmbeddingEnumerator
from torchrec.distributed.planner.shard_estimators import EmbeddingStorageEstimator
from torchrec.distributed.planner.types import ParameterConstraints, Topology
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection


@functools.lru_cache(maxsize=1)
def _cpu_topology() -> Topology:
    # Built once: TorchRec logs a warning for a Topology made without its factory.
    logging.getLogger("torchrec.distributed.planner.types").setLevel(logging.ERROR)
    return Topology(world_size=1, compute_device="cpu")


def embedding_memory_bytes(tables: Sequence[EmbeddingBagConfig], batch_size: int = 512) -> int:
    """Bytes TorchRec's planner estimates for ``tables`` on one CPU rank (see the module).

    Example::

        embedding_memory_bytes(embedding_bag_configs({"c0": 8}, tables))
    """
    if not tables:
        return 0
    # The estimate takes tens of milliseconds and depends only on the tables' shapes: every
    # candidate of an interaction-only search, and most of a joint search, repeat a few.
    key = (
        batch_size,
        tuple(
            (t.name, t.num_embeddings, t.embedding_dim, tuple(t.feature_names), str(t.data_type))
            for t in tables
        ),
    )
    if key not in _ESTIMATES:
        _ESTIMATES[key] = _estimate(tables, batch_size)
    return _ESTIMATES[key]


_ESTIMATES: dict[tuple[object, ...], int] = {}


def _estimate(tables: Sequence[EmbeddingBagConfig], batch_size: int) -> int:
    topology = _cpu_topology()
    constraints = {
        t.name: ParameterConstraints(sharding_types=["table_wise"], compute_kernels=["fused"])
        for t in tables
    }
    enumerator = EmbeddingEnumerator(
        topology=topology,
        batch_size=batch_size,
        constraints=constraints,
        estimator=[EmbeddingStorageEstimator(topology=topology, constraints=constraints)],
    )
    ebc = EmbeddingBagCollection(tables=list(tables), device=torch.device("meta"))
    options = enumerator.enumerate(ebc, [EmbeddingBagCollectionSharder()])  # type: ignore[list-item]
    total = 0
    for option in options:
        for shard in option.shards:
            if shard.storage is not None:
                total += shard.storage.ddr + shard.storage.hbm
    return total


def tables_at_widths(
    tables: Sequence[EmbeddingBagConfig], widths: Mapping[str, int] | None
) -> list[EmbeddingBagConfig]:
    """``tables`` with each table's ``embedding_dim`` set to its feature's width (``widths``
    of an architecture's ``embedding_dims``); unchanged where ``widths`` is ``None`` or does
    not name the table's features (a table shared by features takes the widest)."""
    if widths is None:
        return list(tables)
    out = []
    for t in tables:
        own = [widths[f] for f in t.feature_names if f in widths]
        out.append(dataclasses.replace(t, embedding_dim=max(own)) if own else t)
    return out
