"""``build_data``: a config in, a spec and re-iterable train/val/test ``Batch`` streams out."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torchrec.datasets.utils import Batch

from torchrec_nas.data.batching import BatchStream, FeatureArrays
from torchrec_nas.data.config import DataConfig
from torchrec_nas.data.spec import DataSpec
from torchrec_nas.data.split import split_indices
from torchrec_nas.data.synthetic import generate_synthetic

logger = logging.getLogger(__name__)


@dataclass
class DataSplits:
    """What :func:`build_data` returns.

    Args:
        spec: feature names and table sizes.
        train: re-iterable train batches (this rank's shard).
        val: re-iterable validation batches (all of them, on every rank).
        test: re-iterable test batches (all of them, on every rank).
        info: how the data was made: rows per split, skipped bad rows, cache use.
    """

    spec: DataSpec
    train: Iterable[Batch]
    val: Iterable[Batch]
    test: Iterable[Batch]
    info: dict[str, Any] = field(default_factory=dict)


def _fold(arrays: FeatureArrays, cards: list[int], cap: int | None) -> list[int]:
    """Applies the table-size cap to ids that are already table rows."""
    if cap is None:
        return cards
    out = []
    for f, c in enumerate(cards):
        if c > cap:
            arrays.sparse[:, f] %= cap
        out.append(min(c, cap))
    return out


def streams_from_arrays(
    cfg: DataConfig,
    spec: DataSpec,
    parts: list[FeatureArrays],
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    info: dict[str, Any] | None = None,
) -> DataSplits:
    """Wraps train/val/test arrays into :class:`DataSplits` of :class:`BatchStream`s."""
    keys = list(spec.sparse_names)
    train = BatchStream(
        parts[0],
        keys,
        cfg.batch_size,
        drop_last=cfg.drop_last_train,
        shuffle=cfg.shuffle_train,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    val = BatchStream(parts[1], keys, cfg.batch_size)
    test = BatchStream(parts[2], keys, cfg.batch_size)
    info = dict(info or {})
    info.update(rows={"train": len(parts[0]), "val": len(parts[1]), "test": len(parts[2])})
    return DataSplits(spec=spec, train=train, val=val, test=test, info=info)


def build_synthetic(cfg: DataConfig, seed: int, rank: int = 0, world_size: int = 1) -> DataSplits:
    """The synthetic source (see :mod:`torchrec_nas.data.synthetic`)."""
    arrays, cards = generate_synthetic(cfg.synthetic)
    cards = _fold(arrays, cards, cfg.max_rows_per_table)
    spec = DataSpec(
        dense_names=[f"int_{i}" for i in range(cfg.synthetic.num_dense)],
        sparse_names=[f"cat_{i}" for i in range(cfg.synthetic.num_sparse)],
        num_embeddings=cards,
    )
    index = split_indices(arrays.labels, cfg.split_fractions, cfg.split, cfg.split_seed)
    parts = [arrays.take(np.sort(i) if cfg.split == "time" else i) for i in index]
    return streams_from_arrays(cfg, spec, parts, seed, rank, world_size, {"source": "synthetic"})


def build_data(
    cfg: DataConfig | None = None, seed: int = 2018, rank: int = 0, world_size: int = 1
) -> DataSplits:
    """Builds the data set a config describes.

    Args:
        cfg: the ``data:`` config section (default: the synthetic data set).
        seed: seed of the per-epoch train batch shuffle (when ``shuffle_train``).
        rank: this process's rank; it gets a disjoint shard of the train batches.
        world_size: number of ranks; every rank gets the same number of train batches.

    Returns:
        :class:`DataSplits` with the spec and re-iterable train/val/test ``Batch`` streams.

    Example::

        data = build_data(DataConfig(source="criteo_tsv", path="train.txt", cache_dir="cache"))
        model = NASRecModel(tables=data.spec.tables(16), dense_in_features=13, space=space)
        for batch in data.train:
            ...
    """
    cfg = cfg or DataConfig()
    cfg.validate()
    if cfg.source == "synthetic":
        return build_synthetic(cfg, seed, rank, world_size)
    from torchrec_nas.data.pipeline import build_from_source

    return build_from_source(cfg, seed, rank, world_size)
