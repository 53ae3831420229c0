"""From a file source's raw rows to train/val/test arrays: collect rows, compact ids, split.

The steps every file source shares:

1. stream the reader's :class:`RawChunk`s to per-column raw files (so that memory holds one
   chunk at a time while parsing);
2. compact each categorical column's raw ids into table rows (min frequency, row cap), which
   sizes ``DataSpec.num_embeddings`` from the data;
3. split (stratified or time-ordered); bucketize numeric columns by quantile bins of the train
   split (:mod:`torchrec_nas.data.bucketize`); fill missing dense values with 0 and
   standardize dense columns with train statistics;
4. keep the splits in memory, or write them as ``.npy`` files into a cache directory (whose
   manifest :func:`torchrec_nas.data.build.preprocess` writes, see :mod:`torchrec_nas.data.cache`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from torchrec_nas.data.arrays import SPLIT_NAMES, FeatureArrays, RawChunk, SplitArrays, take_jagged
from torchrec_nas.data.bucketize import (
    bucket_feature_name,
    bucket_rows,
    bucket_table_rows,
    fit_quantile_edges,
    planned_bins,
)
from torchrec_nas.data.config import DataConfig
from torchrec_nas.data.errors import DataError
from torchrec_nas.data.ids import compact_ids
from torchrec_nas.data.readers.base import RowReader
from torchrec_nas.data.spec import DataSpec
from torchrec_nas.data.split import split_indices

logger = logging.getLogger(__name__)


class _RawStore:
    """Appends chunks to one raw file per column in ``root``."""

    def __init__(self, root: Path, num_sparse: int, num_multi: int) -> None:
        self.root = root
        self.rows = 0
        self.num_dense: int | None = None
        names = ["dense", "labels", "order"]
        names += [f"sparse_{j}" for j in range(num_sparse)]
        names += [f"mh_{k}_values" for k in range(num_multi)]
        names += [f"mh_{k}_lengths" for k in range(num_multi)]
        self._files = {n: open(root / f"{n}.raw", "wb") for n in names}  # noqa: SIM115
        self.has_order = False
        # Per numeric column: missing values, smallest and largest value (summary only).
        self.missing: np.ndarray | None = None
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None

    def add(self, chunk: RawChunk) -> None:
        self.rows += len(chunk)
        self.num_dense = chunk.dense.shape[1]
        self._track(chunk.dense)
        f = self._files
        f["dense"].write(np.ascontiguousarray(chunk.dense, dtype=np.float32).tobytes())
        f["labels"].write(np.ascontiguousarray(chunk.labels, dtype=np.float32).tobytes())
        if chunk.order is not None:
            self.has_order = True
            f["order"].write(np.ascontiguousarray(chunk.order, dtype=np.float64).tobytes())
        for j in range(chunk.sparse.shape[1]):
            f[f"sparse_{j}"].write(np.ascontiguousarray(chunk.sparse[:, j], np.int64).tobytes())
        for k, (values, lengths) in enumerate(chunk.multi_hot):
            f[f"mh_{k}_values"].write(np.ascontiguousarray(values, np.int64).tobytes())
            f[f"mh_{k}_lengths"].write(np.ascontiguousarray(lengths, np.int64).tobytes())

    def _track(self, dense: np.ndarray) -> None:
        if len(dense) == 0:
            return
        missing = np.isnan(dense).sum(axis=0)
        with np.errstate(all="ignore"):
            low, high = np.fmin.reduce(dense, axis=0), np.fmax.reduce(dense, axis=0)
        if self.missing is None or self.low is None or self.high is None:
            self.missing, self.low, self.high = missing, low, high
        else:
            self.missing = self.missing + missing
            self.low, self.high = np.fmin(self.low, low), np.fmax(self.high, high)

    def dense_summary(self, names: list[str]) -> dict[str, dict[str, float | None]]:
        """Per numeric column: ``min``, ``max`` (``None`` when all missing), ``missing`` share."""
        out: dict[str, dict[str, float | None]] = {}
        for j, name in enumerate(names):
            low = None if self.low is None else float(self.low[j])
            high = None if self.high is None else float(self.high[j])
            missing = 0 if self.missing is None else int(self.missing[j])
            out[name] = {
                "min": low if low is not None and np.isfinite(low) else None,
                "max": high if high is not None and np.isfinite(high) else None,
                "missing": round(missing / self.rows, 6) if self.rows else 0.0,
            }
        return out

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def load(self, name: str, dtype: type) -> np.ndarray:
        return np.fromfile(self.root / f"{name}.raw", dtype=dtype)


def _allocator(
    out_dir: Path | None,
) -> Callable[[str, np.dtype, tuple[int, ...], bool], np.ndarray]:
    """Makes output arrays: ``.npy`` memory maps in ``out_dir``, or plain arrays."""

    def alloc(
        name: str, dtype: np.dtype, shape: tuple[int, ...], fortran: bool = False
    ) -> np.ndarray:
        if out_dir is None:
            return np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        return np.lib.format.open_memmap(
            out_dir / f"{name}.npy", mode="w+", dtype=dtype, shape=shape, fortran_order=fortran
        )

    return alloc


def materialize(
    reader: RowReader, cfg: DataConfig, workdir: Path, out_dir: Path | None = None
) -> SplitArrays:
    """Reads every row of ``reader``: the spec, the three splits and a summary as ``info``.

    Memory holds one parsed chunk while reading, then one column at a time: each split's
    arrays are filled column by column (as ``.npy`` memory maps when ``out_dir`` is given).

    Args:
        reader: the source.
        cfg: ids (min frequency, row cap) and split settings.
        workdir: an empty directory for the raw column files.
        out_dir: write the splits as ``{split}_{array}.npy`` here (the cache layout).

    Raises:
        DataError: the source has no rows (or, under ``on_bad_row: skip``, only bad ones).

    Example::

        with tempfile.TemporaryDirectory() as tmp:
            arrays = materialize(make_reader(cfg), cfg, Path(tmp))
    """
    start = time.perf_counter()
    num_sparse, num_multi = len(reader.sparse_names), len(reader.multi_hot_names)
    store = _RawStore(workdir, num_sparse, num_multi)
    try:
        for chunk in reader.chunks():
            store.add(chunk)
    finally:
        store.close()
    parse_s = time.perf_counter() - start
    n = store.rows
    if n == 0:
        files = ", ".join(map(str, reader.files))
        if reader.bad.skipped:
            raise DataError(
                f"{files}: no rows to read: all {reader.bad.skipped} rows are bad "
                f"(on_bad_row: skip); the first: {reader.bad.examples[0]}"
            )
        raise DataError(f"{files}: no rows to read")
    numeric = reader.dense_names
    kept = [j for j in range(len(numeric)) if not reader.dense_kept or reader.dense_kept[j]]
    bins = bucket_plan(reader, cfg)
    bucketed = [j for j in range(len(numeric)) if bins[j]]
    num_one_hot = num_sparse + len(bucketed)
    labels = store.load("labels", np.float32)
    order = store.load("order", np.float64) if store.has_order else None
    index = split_indices(labels, cfg.split_fractions, cfg.split, cfg.split_seed, order)
    alloc = _allocator(out_dir)

    shape = (n, len(numeric))
    dense_all: np.ndarray = (
        np.memmap(workdir / "dense.raw", dtype=np.float32, mode="r", shape=shape)
        if len(numeric)
        else np.zeros(shape, dtype=np.float32)  # an empty file cannot be memory-mapped
    )
    parts = []
    for split, idx in zip(SPLIT_NAMES, index):
        dense = alloc(f"{split}_dense", np.dtype(np.float32), (len(idx), len(kept)), False)
        dense[:] = dense_all[idx] if len(kept) == len(numeric) else dense_all[idx][:, kept]
        split_labels = alloc(f"{split}_labels", np.dtype(np.float32), (len(idx),), False)
        split_labels[:] = labels[idx]
        # Column-major: ids are written a column at a time here, and a batch reads each
        # feature's ids as one contiguous run.
        sparse = alloc(f"{split}_sparse", np.dtype(np.int32), (len(idx), num_one_hot), True)
        parts.append(FeatureArrays(dense, sparse, split_labels, []))
    fit_rows = index[0] if len(index[0]) else index[1]
    edges: dict[str, list[float]] = {}
    for b, j in enumerate(bucketed):
        column_edges = fit_quantile_edges(dense_all[fit_rows, j], int(bins[j] or 0))
        edges[bucket_feature_name(numeric[j])] = [float(e) for e in column_edges]
        for part, idx in zip(parts, index):
            part.sparse[:, num_sparse + b] = bucket_rows(dense_all[idx, j], column_edges)
    del dense_all

    for part in parts:  # a missing dense value reads as 0; in row blocks, one pass
        for start in range(0, len(part), 1 << 20):
            block = part.dense[start : start + (1 << 20)]
            block[np.isnan(block)] = 0.0
    stats = {}
    for k, j in enumerate(kept):
        if reader.standardize[j]:
            train_col = parts[0].dense[:, k] if len(index[0]) else parts[1].dense[:, k]
            mean, std = float(train_col.mean()), float(train_col.std())
            clip = reader.clip[j] if reader.clip else None
            for part in parts:
                scaled = (part.dense[:, k] - mean) / (std if std > 0 else 1.0)
                part.dense[:, k] = scaled if clip is None else np.clip(scaled, -clip, clip)
            stats[numeric[j]] = {"mean": mean, "std": std}

    def compact_column(j: int) -> int:
        raw = store.load(f"sparse_{j}", np.int64)
        rows, size = compact_ids(raw, reader.min_frequency[j], cfg.max_rows_per_table)
        for part, idx in zip(parts, index):
            part.sparse[:, j] = rows[idx]
        return size

    # Columns are independent and numpy/Arrow release the GIL: compact them in parallel.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        tables: list[int] = list(pool.map(compact_column, range(num_sparse)))
    tables += [bucket_table_rows(e) for e in edges.values()]
    for k in range(num_multi):
        rows, size = compact_ids(
            store.load(f"mh_{k}_values", np.int64),
            reader.min_frequency[num_sparse + k],
            cfg.max_rows_per_table,
        )
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(store.load(f"mh_{k}_lengths", np.int64), out=offsets[1:])
        for split, part, idx in zip(SPLIT_NAMES, parts, index):
            values, split_offsets = take_jagged(rows, offsets, idx)
            out_values = alloc(f"{split}_mh{k}_values", np.dtype(np.int32), values.shape, False)
            out_values[:] = values
            out_offsets = alloc(
                f"{split}_mh{k}_offsets", np.dtype(np.int64), split_offsets.shape, False
            )
            out_offsets[:] = split_offsets
            part.multi_hot.append((out_values, out_offsets))
        tables.append(size)
    for part in parts:
        for arr in (part.dense, part.sparse, part.labels):
            if isinstance(arr, np.memmap):
                arr.flush()

    spec = DataSpec(
        dense_names=[numeric[j] for j in kept],
        sparse_names=[*reader.sparse_names, *edges, *reader.multi_hot_names],
        num_embeddings=tables,
        multi_hot=list(reader.multi_hot_names),
        bucket_edges=edges,
    )
    if not spec.sparse_names:
        raise DataError(
            f"{', '.join(map(str, reader.files))}: no sparse feature, and the models need at "
            "least one embedding table: bucketize a numeric column (data.bucketize_dense)"
        )
    total_s = time.perf_counter() - start
    summary: dict[str, Any] = {
        "rows_read": n,
        "skipped_bad_rows": reader.bad.skipped,
        "bad_row_examples": list(reader.bad.examples),
        "rows": {s: len(p) for s, p in zip(SPLIT_NAMES, parts)},
        "positives": {s: int(p.labels.sum()) for s, p in zip(SPLIT_NAMES, parts)},
        "standardize": stats,
        "dense": {
            name: figures
            for j, (name, figures) in enumerate(store.dense_summary(numeric).items())
            if j in kept
        },
        "parse_seconds": round(parse_s, 3),
        "seconds": round(total_s, 3),
        "rows_per_second": round(n / total_s) if total_s > 0 else None,
    }
    if reader.bad.skipped:
        logger.warning(
            "%s: skipped %d bad rows (on_bad_row: skip); first: %s",
            ", ".join(map(str, reader.files)),
            reader.bad.skipped,
            reader.bad.examples[:1],
        )
    return SplitArrays(spec, parts, summary)


def bucket_plan(reader: RowReader, cfg: DataConfig) -> list[int | None]:
    """Per numeric column of ``reader``, its number of quantile bins (``None``: not bucketized).

    A reader's own bins (a table's ``schema.bucketize``) come first; ``cfg.bucketize_dense``
    adds the dense features it names (all when ``columns`` is unset).

    Raises:
        DataError: ``bucketize_dense.columns`` names a column that is not a dense feature.
    """
    bins: list[int | None] = list(reader.bins) or [None] * len(reader.dense_names)
    dense = [
        name
        for j, name in enumerate(reader.dense_names)
        if not reader.dense_kept or reader.dense_kept[j]
    ]
    planned = planned_bins(dense, cfg.bucketize_dense, cfg.source)
    return [b if b is not None else planned.get(n) for n, b in zip(reader.dense_names, bins)]
