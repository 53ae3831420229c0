"""The Criteo Display Advertising TSV (Kaggle ``train.txt``, Terabyte ``day_N``), streamed.

Format: no header, tab-separated, 40 fields a row: ``label`` (0/1), ``I1..I13`` (integer
counts, may be empty or negative), ``C1..C26`` (8-hex-digit hashed categories, may be empty).

Parsing, as TorchRec's preprocessing does it:

- an empty integer is 0 (the format's missing value); a negative integer is 0; then
  ``log(1 + x)`` (an empty integer is read as ``NaN``, so that bucketizing,
  ``data.bucketize_dense``, gives it a row of its own; as a dense feature it is 0);
- a category is its 32-bit hex value, optionally hashed into ``hash_buckets`` buckets; an empty
  category is missing and ends as the reserved table row 0 (see :mod:`torchrec_nas.data.ids`);
- anything else (a label other than 0/1, a non-numeric integer, a category that is not 8 hex
  digits, a row without 40 fields) is a bad row, handled by ``on_bad_row``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from torchrec_nas.data.arrays import RawChunk, keep_rows
from torchrec_nas.data.config import DataConfig
from torchrec_nas.data.errors import BadRows
from torchrec_nas.data.ids import bucketize
from torchrec_nas.data.readers.base import RowReader, register_reader
from torchrec_nas.data.readers.columns import RowChecker, hex8, to_int
from torchrec_nas.data.readers.text_blocks import TextBlock, iter_blocks
from torchrec_nas.data.readers.text_input import expand_paths, input_path

INT_NAMES = [f"I{i}" for i in range(1, 14)]
CAT_NAMES = [f"C{i}" for i in range(1, 27)]
COLUMNS = ["label", *INT_NAMES, *CAT_NAMES]
_TYPES: dict[str, pa.DataType] = {
    "label": pa.int64(),
    **{n: pa.int64() for n in INT_NAMES},
    **{n: pa.string() for n in CAT_NAMES},
}


@register_reader("criteo_tsv")
class CriteoTsvReader(RowReader):
    """Streams Criteo TSV files (one or more, e.g. Terabyte days) as :class:`RawChunk`s.

    Args:
        paths: the TSV files, read in order.
        hash_buckets: per categorical column, buckets to hash into (``None``: raw 32-bit value).
        bad: the bad-row policy.
        min_frequency: categorical values seen fewer times map to row 0.
        block_bytes: bytes parsed per block (about 250 bytes a row).

    Example::

        reader = CriteoTsvReader(["train.txt"], [None] * 26, BadRows("skip"))
        for chunk in reader.chunks():
            print(len(chunk), chunk.labels.mean())
        print(reader.bad.skipped)
    """

    def __init__(
        self,
        paths: list[str | Path],
        hash_buckets: list[int | None],
        bad: BadRows,
        min_frequency: int = 1,
        block_bytes: int = 8 << 20,
    ) -> None:
        super().__init__(
            dense_names=list(INT_NAMES),
            sparse_names=list(CAT_NAMES),
            multi_hot_names=[],
            files=[input_path(p) for p in paths],
            bad=bad,
            min_frequency=[min_frequency] * len(CAT_NAMES),
            standardize=[False] * len(INT_NAMES),
        )
        self.hash_buckets = hash_buckets
        self.block_bytes = block_bytes

    @classmethod
    def from_config(cls, cfg: DataConfig) -> CriteoTsvReader:
        """The reader for ``source: criteo_tsv``.

        ``path`` may list several files joined by ``,`` and use globs (``day_*`` for the
        Terabyte days, read in sorted order); compressed files (gzip, bzip2, xz,
        zstd) are decompressed as they are read.
        """
        assert cfg.path is not None
        return cls(
            paths=list(expand_paths(cfg.path)),
            hash_buckets=cfg.buckets_for(len(CAT_NAMES)),
            bad=BadRows(cfg.on_bad_row),
            min_frequency=cfg.min_frequency,
            block_bytes=max(1 << 16, cfg.chunk_rows * 256),
        )

    def chunks(self) -> Iterator[RawChunk]:
        for path in self.files:
            yield from iter_blocks(
                path, COLUMNS, _TYPES, self.bad, self._convert, block_bytes=self.block_bytes
            )

    def _convert(self, block: TextBlock) -> RawChunk:
        table = block.table
        check = RowChecker(block, self.bad)
        labels, ok, missing = to_int(table["label"])
        bad_label = ~ok | missing | ((labels != 0) & (labels != 1))
        check.flag(bad_label, "label", "{value} is not 0 or 1")
        dense = np.empty((table.num_rows, len(INT_NAMES)), dtype=np.float32)
        for j, name in enumerate(INT_NAMES):
            values, ok, missing = to_int(table[name])
            check.flag(~ok, name, "{value} is not an integer")
            dense[:, j] = np.where(missing, np.nan, np.log1p(np.maximum(values, 0)))
        sparse = np.empty((table.num_rows, len(CAT_NAMES)), dtype=np.int64, order="F")
        for j, name in enumerate(CAT_NAMES):
            raw, ok = hex8(table[name])
            check.flag(~ok, name, "{value} is not an 8-digit hex category")
            sparse[:, j] = bucketize(raw, self.hash_buckets[j])
        keep = check.resolve()
        return keep_rows(RawChunk(dense, sparse, labels.astype(np.float32)), keep)
