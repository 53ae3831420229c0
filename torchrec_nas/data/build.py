"""``build_data``: a config in, a spec and re-iterable train/val/test ``Batch`` streams out.

The one place that composes the data steps: reader (:mod:`.readers`, looked up by ``source``)
-> materialize (:mod:`.materialize`: compact ids, split) -> cache (:mod:`.cache`) -> batches
(:mod:`.batching`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchrec.datasets.utils import Batch

from torchrec_nas.data.arrays import SplitArrays
from torchrec_nas.data.batching import BatchStream
from torchrec_nas.data.bucketize import add_bucketized
from torchrec_nas.data.cache import (
    clear_cache,
    fingerprint,
    load_cache,
    read_manifest,
    reuse_summary,
    write_manifest,
)
from torchrec_nas.data.config import DataConfig, check_local_inputs
from torchrec_nas.data.errors import DataError
from torchrec_nas.data.materialize import materialize
from torchrec_nas.data.readers import RowReader, SplitReader, make_reader
from torchrec_nas.data.spec import DataSpec

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

    Example::

        data = build_data(DataConfig())
        data.info["rows"]  # {"train": ..., "val": ..., "test": ...}
    """

    spec: DataSpec
    train: Iterable[Batch]
    val: Iterable[Batch]
    test: Iterable[Batch]
    info: dict[str, Any] = field(default_factory=dict)


def streams_from_arrays(
    cfg: DataConfig, arrays: SplitArrays, seed: int, rank: int = 0, world_size: int = 1
) -> DataSplits:
    """Wraps train/val/test arrays into :class:`DataSplits` of :class:`BatchStream` s.

    Args:
        cfg: batch size, train shuffling and ``drop_last_train``.
        arrays: the spec and the three splits.
        seed: seed of the per-epoch train batch shuffle.
        rank: this process's rank (its shard of the train batches).
        world_size: number of ranks.
    """
    keys = list(arrays.spec.sparse_names)
    train_rows, val_rows, test_rows = arrays.parts
    train = BatchStream(
        train_rows,
        keys,
        cfg.batch_size,
        drop_last=cfg.drop_last_train,
        shuffle=cfg.shuffle_train,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    val = BatchStream(val_rows, keys, cfg.batch_size)
    test = BatchStream(test_rows, keys, cfg.batch_size)
    info = dict(arrays.info)
    info.update(rows={"train": len(train_rows), "val": len(val_rows), "test": len(test_rows)})
    return DataSplits(spec=arrays.spec, train=train, val=val, test=test, info=info)


def load_arrays(cfg: DataConfig) -> SplitArrays:
    """The three splits a (validated) config describes, through the cache if it names one.

    Example::

        arrays = load_arrays(DataConfig(source="criteo_tsv", path="train.txt"))
    """
    reader = make_reader(cfg)
    if isinstance(reader, SplitReader):
        arrays = reader.read_splits()
        if cfg.bucketize_dense is not None:  # file sources bucketize while materializing
            arrays = add_bucketized(arrays, cfg.bucketize_dense, cfg.source)
        return arrays
    if cfg.cache_dir:
        summary = write_cache(reader, cfg, cfg.cache_dir)
        cached = load_cache(cfg.cache_dir)
        info = {"source": cfg.source, **summary, "cache_dir": str(cfg.cache_dir)}
        info.setdefault("skipped_bad_rows", cached.info["summary"].get("skipped_bad_rows", 0))
        return SplitArrays(cached.spec, cached.parts, info)
    with tempfile.TemporaryDirectory(prefix="torchrec_nas_data_") as tmp:
        arrays = materialize(reader, cfg, Path(tmp))
    arrays.info = {"source": cfg.source, **arrays.info}
    return arrays


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

    Raises:
        DataError: a missing or unreadable input, or a bad row under ``on_bad_row: error``.

    Example::

        data = build_data(DataConfig(source="criteo_tsv", path="train.txt", cache_dir="cache"))
        model = NASRecModel(tables=data.spec.tables(16), dense_in_features=13, space=space)
        for batch in data.train:
            ...
    """
    cfg = cfg or DataConfig()
    cfg.validate()
    check_local_inputs(cfg)
    return streams_from_arrays(cfg, load_arrays(cfg), seed, rank, world_size)


def write_cache(reader: RowReader, cfg: DataConfig, out_dir: str | Path) -> dict[str, Any]:
    """Materializes ``reader`` into the cache ``out_dir``, or reuses the cache already there.

    Returns:
        The summary of :func:`preprocess`.
    """
    fp = fingerprint(cfg, reader.files)
    old = read_manifest(out_dir)
    if old is not None and old.get("fingerprint") == fp:
        logger.info("%s: reusing the cache (same inputs and config)", out_dir)
        return reuse_summary(old, out_dir)
    root = clear_cache(out_dir)
    with tempfile.TemporaryDirectory(dir=root, prefix=".raw_") as tmp:
        arrays = materialize(reader, cfg, Path(tmp), out_dir=root)
    write_manifest(root, arrays.spec, arrays.parts, fp, arrays.info)
    logger.info("%s: wrote the cache: %s", out_dir, arrays.info["rows"])
    return {"reused": False, "cache_dir": str(out_dir), **arrays.info}


def preprocess(cfg: DataConfig, out_dir: str | Path) -> dict[str, Any]:
    """Turns a file source into a cache in ``out_dir``, or reuses the cache already there.

    Args:
        cfg: the ``data:`` config (its ``source`` must be a file source).
        out_dir: the cache directory.

    Returns:
        A summary: ``reused``, ``cache_dir``, rows per split, positives, skipped bad rows,
        seconds and rows per second.

    Example::

        summary = preprocess(DataConfig(source="criteo_tsv", path="train.txt"), "cache/")
        data = build_data(DataConfig(source="cache", path="cache/"))
    """
    reader = make_reader(cfg)
    if not isinstance(reader, RowReader):
        raise DataError(f"source {cfg.source!r}: nothing to preprocess (needs a file source)")
    return write_cache(reader, cfg, out_dir)


def preprocess_main(cfg: DataConfig, out_dir: str) -> dict[str, Any]:
    """Entry point of ``torchrec-nas preprocess``: validates ``cfg``, then :func:`preprocess`.

    Example::

        preprocess_main(Config.load("criteo.yaml").data, "cache/criteo")
    """
    cfg.validate()
    return preprocess(cfg, out_dir)
