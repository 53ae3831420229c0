"""Any table (CSV, TSV or Parquet) read by a schema in the config.

The schema (:class:`~torchrec_nas.data.config.TableSchema`) names:

- the label column and its 0/1 rule (``rating >= 4``);
- dense columns and their transform: ``none``, ``log`` (``log(1 + max(x, 0))``) or
  ``standardize`` (with the train split's mean and standard deviation); an empty dense field is
  missing and reads as 0;
- categorical columns: the text of each value hashed into ``buckets``, or, without ``buckets``,
  a vocabulary of the values seen at least ``min_frequency`` times (row 0: missing or rare);
- multi-valued columns: values joined by ``separator`` (``"Action|Comedy"``) become a multi-hot
  feature (a row may have 0, 1 or many ids).

CSV/TSV files need a header line; Parquet files are read in record batches, and their "line"
in error messages is the 1-based row number. Bad rows: an empty or non-numeric label, a
non-numeric dense value, a wrong number of fields.
"""

from __future__ import annotations

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
from torchrec_nas.data.readers.columns import RowChecker, to_float
from torchrec_nas.data.readers.text_blocks import (
    TextBlock,
    check_readable,
    iter_blocks,
    read_header,
)


def _table_format(path: Path, schema: TableSchema) -> str:
    if schema.format != "auto":
        return schema.format
    suffix = path.suffix.lower()
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
        super().__init__(
            dense_names=[c.column for c in schema.dense],
            sparse_names=[c.column for c in schema.categorical],
            multi_hot_names=[c.column for c in schema.multi_hot],
            files=[Path(path)],
            bad=bad,
            min_frequency=[c.min_frequency for c in [*schema.categorical, *schema.multi_hot]],
            standardize=[c.transform == "standardize" for c in schema.dense],
        )
        self.schema = schema
        self.block_bytes = block_bytes
        self.label_rule = parse_label_rule(schema.label.rule)

    @classmethod
    def from_config(cls, cfg: DataConfig) -> TableReader:
        """The reader for ``source: tabular``."""
        assert cfg.path is not None and cfg.schema is not None
        return cls(cfg.path, cfg.schema, BadRows(cfg.on_bad_row), max(1 << 16, cfg.chunk_rows * 64))

    def _needed(self) -> list[str]:
        s = self.schema
        cols = [s.label.column, *self.dense_names, *self.sparse_names, *self.multi_hot_names]
        if s.time_column and s.time_column not in cols:
            cols.append(s.time_column)
        return cols

    def _check_columns(self, path: Path, available: list[str]) -> None:
        missing = [c for c in self._needed() if c not in available]
        if missing:
            raise DataError(
                f"{path}:1: schema column {missing[0]!r} is not in the file "
                f"(columns: {', '.join(available)})"
            )

    def chunks(self) -> Iterator[RawChunk]:
        path = check_readable(self.files[0])
        fmt = _table_format(path, self.schema)
        if fmt == "parquet":
            yield from self._parquet_chunks(path)
            return
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

    def _parquet_chunks(self, path: Path) -> Iterator[RawChunk]:
        try:
            pf = pq.ParquetFile(path)
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

    def _convert(self, block: TextBlock) -> RawChunk:
        s = self.schema
        table = block.table
        n = table.num_rows
        check = RowChecker(block, self.bad)
        label_values, ok, missing = to_float(table[s.label.column])
        check.flag(~ok | missing, s.label.column, "{value} is not a number")
        labels = self.label_rule(label_values).astype(np.float32)
        dense = np.empty((n, len(s.dense)), dtype=np.float32)
        for j, col in enumerate(s.dense):
            x, ok, _ = to_float(table[col.column])
            check.flag(~ok, col.column, "{value} is not a number")
            dense[:, j] = np.log1p(np.maximum(x, 0)) if col.transform == "log" else x
        sparse = np.empty((n, len(s.categorical)), dtype=np.int64, order="F")
        for j, col in enumerate(s.categorical):
            sparse[:, j] = bucketize(hash_string_array(table[col.column]), col.buckets)
        multi = []
        for col in s.multi_hot:
            multi.append(_split_multi(table[col.column], col.separator, col.buckets))
        order = None
        if s.time_column:
            t, ok, _ = to_float(table[s.time_column])
            check.flag(~ok, s.time_column, "{value} is not a number")
            order = t
        keep = check.resolve()
        return keep_rows(RawChunk(dense, sparse, labels, multi, order), keep)


def _split_multi(
    col: pa.ChunkedArray | pa.Array, separator: str, buckets: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(raw ids, lengths)`` of a multi-valued text column; empty tokens are dropped."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    lists = pc.split_pattern(arr.fill_null(""), separator)
    list_lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    tokens = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    ids = hash_string_array(tokens)
    nonempty = pc.not_equal(tokens, "").to_numpy(zero_copy_only=False)
    rows = np.repeat(np.arange(len(arr)), list_lengths)
    lengths = np.bincount(rows[nonempty], minlength=len(arr)).astype(np.int64)
    return bucketize(ids[nonempty], buckets), lengths
