"""From a file source's raw rows to train/val/test arrays: collect rows, compact ids, split.

The steps every file source shares:

1. stream the reader's :class:`RawChunk`s to per-column raw files (so that memory holds one
   chunk at a time while parsing);
2. compact each categorical column's raw ids into table rows (min frequency, row cap), which
   sizes ``DataSpec.num_embeddings`` from the data;
3. split (stratified or time-ordered), standardize dense columns with train statistics;
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

    def add(self, chunk: RawChunk) -> None:
        self.rows += len(chunk)
        self.num_dense = chunk.dense.shape[1]
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
    num_dense = len(reader.dense_names)
    labels = store.load("labels", np.float32)
    order = store.load("order", np.float64) if store.has_order else None
    index = split_indices(labels, cfg.split_fractions, cfg.split, cfg.split_seed, order)
    alloc = _allocator(out_dir)

    dense_all = np.memmap(workdir / "dense.raw", dtype=np.float32, mode="r", shape=(n, num_dense))
    parts = []
    for split, idx in zip(SPLIT_NAMES, index):
        dense = alloc(f"{split}_dense", np.dtype(np.float32), (len(idx), num_dense), False)
        dense[:] = dense_all[idx]
        split_labels = alloc(f"{split}_labels", np.dtype(np.float32), (len(idx),), False)
        split_labels[:] = labels[idx]
        # Column-major: ids are written a column at a time here, and a batch reads each
        # feature's ids as one contiguous run.
        sparse = alloc(f"{split}_sparse", np.dtype(np.int32), (len(idx), num_sparse), True)
        parts.append(FeatureArrays(dense, sparse, split_labels, []))
    del dense_all

    stats = {}
    for j, name in enumerate(reader.dense_names):
        if reader.standardize[j]:
            train_col = parts[0].dense[:, j] if len(index[0]) else parts[1].dense[:, j]
            mean, std = float(train_col.mean()), float(train_col.std())
            for part in parts:
                part.dense[:, j] = (part.dense[:, j] - mean) / (std if std > 0 else 1.0)
            stats[name] = {"mean": mean, "std": std}

    def compact_column(j: int) -> int:
        raw = store.load(f"sparse_{j}", np.int64)
        rows, size = compact_ids(raw, reader.min_frequency[j], cfg.max_rows_per_table)
        for part, idx in zip(parts, index):
            part.sparse[:, j] = rows[idx]
        return size

    # Columns are independent and numpy/Arrow release the GIL: compact them in parallel.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        tables: list[int] = list(pool.map(compact_column, range(num_sparse)))
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
        dense_names=list(reader.dense_names),
        sparse_names=[*reader.sparse_names, *reader.multi_hot_names],
        num_embeddings=tables,
        multi_hot=list(reader.multi_hot_names),
    )
    total_s = time.perf_counter() - start
    summary: dict[str, Any] = {
        "rows_read": n,
        "skipped_bad_rows": reader.bad.skipped,
        "bad_row_examples": list(reader.bad.examples),
        "rows": {s: len(p) for s, p in zip(SPLIT_NAMES, parts)},
        "positives": {s: int(p.labels.sum()) for s, p in zip(SPLIT_NAMES, parts)},
        "standardize": stats,
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
