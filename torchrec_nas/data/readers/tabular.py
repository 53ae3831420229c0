"""Any table (CSV, TSV or Parquet) read by a schema in the config.

The schema (:class:`~torchrec_nas.data.config.TableSchema`) names:

- the label column and its 0/1 rule (``rating >= 4``), or the text values that mean 1
  (``positive: ['>50K']``);
- dense columns and their transforms: ``log`` (``log(1 + max(x, 0))``) and/or ``standardize``
  (with the train split's mean and standard deviation, optionally clipped); an empty dense field
  is missing and reads as 0;
- numeric columns to bucketize (quantile bins of the train split, a row for missing values):
  one-hot features ``{column}_bucket``;
- categorical columns: the text of each value hashed into ``buckets``, or, without ``buckets``,
  a vocabulary of the values seen at least ``min_frequency`` times (row 0: missing or rare);
- multi-valued columns: values joined by ``separator`` (``"Action|Comedy"``) become a multi-hot
  feature (a row may have 0, 1 or many ids).

``format: auto`` knows a Parquet file by its first bytes (``PAR1``) whatever its name, and a
compressed CSV/TSV file likewise (gzip, bzip2, xz, zstd); CSV and TSV by the extension under
the compression's. CSV/TSV files need a header line; Parquet files are read in record batches,
and their "line" in error messages is the 1-based row number. Bad rows: an empty or
non-numeric label, a non-numeric dense value, a wrong number of fields. A label column with no
number in a block and no ``positive`` list is one error, not a bad row per line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from torchrec_nas.data.arrays import RawChunk, keep_rows
from torchrec_nas.data.config import DataConfig, TableSchema
from torchrec_nas.data.errors import BadRows, DataError
from torchrec_nas.data.ids import bucketize, hash_string_array
from torchrec_nas.data.label_rule import parse_label_rule
from torchrec_nas.data.readers.base import RowReader, register_reader
from torchrec_nas.data.readers.columns import RowChecker, show, to_float
from torchrec_nas.data.readers.text_blocks import TextBlock, iter_blocks
from torchrec_nas.data.readers.text_input import (
    PARQUET_MAGIC,
    InputPath,
    check_readable,
    input_name,
    input_path,
    open_binary,
    printable_names,
    read_head,
    read_header,
    sniff_compression,
)

logger = logging.getLogger(__name__)

_COMPRESSED_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd")


def table_format(path: InputPath, schema: TableSchema) -> str:
    """``csv``, ``tsv`` or ``parquet``: ``schema.format``, or for ``auto`` from the content.

    Example::

        table_format(Path("x.parquet.brotli"), TableSchema())  # "parquet" (starts with PAR1)
    """
    if schema.format != "auto":
        return schema.format
    if read_head(path, 4) == PARQUET_MAGIC:
        return "parquet"
    name = input_name(path)
    if sniff_compression(path) and name.suffix.lower() in _COMPRESSED_SUFFIXES:
        name = name.with_suffix("")
    suffix = name.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    return "csv"


@register_reader("tabular")
class TableReader(RowReader):
    """Reads a CSV/TSV/Parquet table by schema as :class:`RawChunk`s (see the module docstring).

    Args:
        path: the table file.
        schema: which columns are what.
        bad: the bad-row policy.
        block_bytes: bytes per text block; Parquet reads ``block_bytes // 64`` rows a batch.

    Example::

        schema = TableSchema(label=LabelRule("rating", ">= 4"),
                             categorical=[ColumnConfig("userId"), ColumnConfig("movieId")],
                             multi_hot=[ColumnConfig("genres", separator="|")])
        reader = TableReader("ratings.csv", schema, BadRows())
    """

    def __init__(
        self, path: str | Path, schema: TableSchema, bad: BadRows, block_bytes: int = 8 << 20
    ) -> None:
        dense = {c.column: c for c in schema.dense}
        bins = {c.column: c.bins for c in schema.bucketize}
        # Numeric columns: the dense ones, then those that are bucketized only.
        numeric = [*dense, *(c for c in bins if c not in dense)]
        steps = {name: col.transforms() for name, col in dense.items()}
        super().__init__(
            dense_names=numeric,
            sparse_names=[c.column for c in schema.categorical],
            multi_hot_names=[c.column for c in schema.multi_hot],
            files=[input_path(path)],
            bad=bad,
            min_frequency=[c.min_frequency for c in [*schema.categorical, *schema.multi_hot]],
            standardize=["standardize" in steps.get(n, []) for n in numeric],
            clip=[dense[n].clip if n in dense else None for n in numeric],
            bins=[bins.get(n) for n in numeric],
            dense_kept=[n in dense for n in numeric],
        )
        self.schema = schema
        self.block_bytes = block_bytes
        self.label_rule = parse_label_rule(schema.label.rule)
        self.positive = None if schema.label.positive is None else set(schema.label.positive)
        self.log = ["log" in steps.get(n, []) for n in numeric]
        # Per multi-hot column: whether a value held its separator, and a sample value.
        self._separated = [False] * len(schema.multi_hot)
        self._sample: list[str | None] = [None] * len(schema.multi_hot)
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: DataConfig) -> TableReader:
        """The reader for ``source: tabular``."""
        assert cfg.path is not None and cfg.schema is not None
        return cls(cfg.path, cfg.schema, BadRows(cfg.on_bad_row), max(1 << 16, cfg.chunk_rows * 64))

    def _needed(self) -> list[str]:
        s = self.schema
        cols = [s.label.column, *self.dense_names, *self.sparse_names, *self.multi_hot_names]
        if s.time_column:
            cols.append(s.time_column)
        return list(dict.fromkeys(cols))  # a column may be the label and bucketized, say

    def _check_columns(self, path: InputPath, available: list[str]) -> None:
        missing = [c for c in self._needed() if c not in available]
        if missing:
            raise DataError(
                f"{path}:1: schema column {missing[0]!r} is not in the file "
                f"(columns: {printable_names(available)})"
            )

    def chunks(self) -> Iterator[RawChunk]:
        path = check_readable(self.files[0])
        self._separated = [False] * len(self.schema.multi_hot)
        self._sample = [None] * len(self.schema.multi_hot)
        fmt = table_format(path, self.schema)
        if fmt == "parquet":
            yield from self._parquet_chunks(path)
        else:
            yield from self._text_chunks(path, fmt)
        self._warn_unseparated(path)

    def _warn_unseparated(self, path: InputPath) -> None:
        for col, separated, sample in zip(self.schema.multi_hot, self._separated, self._sample):
            if not separated and sample is not None:
                logger.warning(
                    "%s: multi-hot column %r: no value holds its separator %r (a value: %s); "
                    "is schema.multi_hot's separator right?",
                    path,
                    col.column,
                    col.separator,
                    sample,
                )

    def _text_chunks(self, path: InputPath, fmt: str) -> Iterator[RawChunk]:
        delimiter = "\t" if fmt == "tsv" else self.schema.delimiter
        header = read_header(path, delimiter)
        self._check_columns(path, header)
        types = {n: pa.string() for n in header}
        yield from iter_blocks(
            path,
            header,
            types,
            self.bad,
            self._convert,
            delimiter=delimiter,
            header=True,
            quote=True,
            block_bytes=self.block_bytes,
        )

    def _parquet_chunks(self, path: InputPath) -> Iterator[RawChunk]:
        # A local file by its path (pyarrow memory-maps it); a URL on an fsspec file object.
        source = path if isinstance(path, Path) else open_binary(path)
        try:
            try:
                pf = pq.ParquetFile(source)
            except (pa.ArrowInvalid, OSError) as e:
                raise DataError(f"{path}: not a readable Parquet file: {e}") from e
            self._check_columns(path, pf.schema_arrow.names)
            row0 = 1
            for batch in pf.iter_batches(
                batch_size=max(1024, self.block_bytes // 64), columns=self._needed()
            ):
                table = pa.Table.from_batches([batch])
                lines = np.arange(row0, row0 + table.num_rows)
                row0 += table.num_rows
                yield self._convert(TextBlock(table=table, path=path, lines=lines))
        finally:
            if not isinstance(source, Path):
                source.close()

    def _convert(self, block: TextBlock) -> RawChunk:
        s = self.schema
        table = block.table
        n = table.num_rows
        check = RowChecker(block, self.bad)
        labels = self._labels(block, check)
        dense = np.empty((n, len(self.dense_names)), dtype=np.float32)
        for j, name in enumerate(self.dense_names):
            x, ok, missing = to_float(table[name])
            check.flag(~ok, name, "{value} is not a number")
            x = np.log1p(np.maximum(x, 0)) if self.log[j] else x
            dense[:, j] = np.where(missing, np.nan, x)
        sparse = np.empty((n, len(s.categorical)), dtype=np.int64, order="F")
        for j, col in enumerate(s.categorical):
            sparse[:, j] = bucketize(hash_string_array(table[col.column]), col.buckets)
        multi = []
        for k, col in enumerate(s.multi_hot):
            values, lengths, separated, sample = _split_multi(
                table[col.column], col.separator, col.buckets
            )
            multi.append((values, lengths))
            with self._lock:  # blocks are converted in worker threads
                self._separated[k] |= separated
                if self._sample[k] is None:
                    self._sample[k] = sample
        order = None
        if s.time_column:
            t, ok, _ = to_float(table[s.time_column])
            check.flag(~ok, s.time_column, "{value} is not a number")
            order = t
        keep = check.resolve()
        return keep_rows(RawChunk(dense, sparse, labels, multi, order), keep)

    def _labels(self, block: TextBlock, check: RowChecker) -> np.ndarray:
        """0/1 labels of a block: by the ``positive`` values, or by the numeric rule."""
        name = self.schema.label.column
        column = block.table[name]
        if self.positive is not None:
            arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            text = pc.utf8_trim_whitespace(pc.cast(arr, pa.string()))
            check.flag(arr.is_null().to_numpy(zero_copy_only=False), name, "{value} is empty")
            positive = pa.array(sorted(self.positive), type=pa.string())
            hits = pc.is_in(text, value_set=positive).fill_null(False)
            return hits.to_numpy(zero_copy_only=False).astype(np.float32)
        values, ok, missing = to_float(column)
        given = ~missing
        if given.any() and not (ok & given).any():
            first = show(column[int(np.flatnonzero(given)[0])])
            raise DataError(
                f"{block.path}: label column {name!r} must be numeric for the rule "
                f"{self.schema.label.rule!r}, and it holds text such as {first}: list the "
                f"values that mean 1 in schema.label.positive (e.g. positive: [{first}])"
            )
        check.flag(~ok | missing, name, "{value} is not a number")
        return np.asarray(self.label_rule(values), dtype=np.float32)


def _split_multi(
    col: pa.ChunkedArray | pa.Array, separator: str, buckets: int | None
) -> tuple[np.ndarray, np.ndarray, bool, str | None]:
    """``(raw ids, lengths, a value held the separator, a sample value)`` of a multi-valued
    text column; empty tokens are dropped."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    lists = pc.split_pattern(arr.fill_null(""), separator)
    list_lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    given = pc.drop_null(pc.filter(arr, pc.not_equal(arr, "")))
    sample = show(given[0]) if len(given) else None
    tokens = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    ids = hash_string_array(tokens)
    nonempty = pc.not_equal(tokens, "").to_numpy(zero_copy_only=False)
    rows = np.repeat(np.arange(len(arr)), list_lengths)
    lengths = np.bincount(rows[nonempty], minlength=len(arr)).astype(np.int64)
    separated = bool((list_lengths > 1).any())
    return bucketize(ids[nonempty], buckets), lengths, separated, sample
