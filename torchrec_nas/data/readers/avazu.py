"""Avazu click-through data (Kaggle ``train.csv``), streamed.

Format: CSV with a header, 24 columns: ``id``, ``click`` (0/1), ``hour`` (``YYMMDDHH``) and 21
categorical fields (``C1, banner_pos, site_id, ..., C21``), all read as text.

Features (a choice, as NASRec makes it: every field is categorical):

- sparse: the 21 categorical fields (their text hashed to 63 bits, then optionally into
  ``hash_buckets``), plus ``hour_of_day`` (0-23) and ``day_of_week`` (0 = Monday) from ``hour``:
  23 sparse features;
- dense: one feature, ``hour_of_day / 23``, because the models take at least one dense input;
  so ``dense_in_features`` is 1;
- ``id`` is dropped (unique per row); an empty categorical field is missing (row 0).

Bad rows: a ``click`` other than 0/1, an ``hour`` that is not a valid ``YYMMDDHH`` date, a wrong
number of fields.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from torchrec_nas.data.arrays import RawChunk, keep_rows
from torchrec_nas.data.config import DataConfig
from torchrec_nas.data.errors import BadRows, DataError
from torchrec_nas.data.ids import bucketize, hash_string_array
from torchrec_nas.data.readers.base import RowReader, register_reader
from torchrec_nas.data.readers.columns import RowChecker, to_int
from torchrec_nas.data.readers.text_blocks import TextBlock, iter_blocks
from torchrec_nas.data.readers.text_input import input_path, read_header

CATEGORICAL = [
    "C1",
    "banner_pos",
    "site_id",
    "site_domain",
    "site_category",
    "app_id",
    "app_domain",
    "app_category",
    "device_id",
    "device_ip",
    "device_model",
    "device_type",
    "device_conn_type",
    *[f"C{i}" for i in range(14, 22)],
]
COLUMNS = ["id", "click", "hour", *CATEGORICAL]
SPARSE_NAMES = [*CATEGORICAL, "hour_of_day", "day_of_week"]


def _weekdays(hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Day of week per ``YYMMDDHH`` value, and which values are valid dates."""
    uniq, inverse = np.unique(hours, return_inverse=True)
    days = np.full(len(uniq), -1, dtype=np.int64)
    for i, h in enumerate(uniq.tolist()):
        yy, mm, dd, hh = h // 1_000_000, h // 10_000 % 100, h // 100 % 100, h % 100
        try:
            if not (0 <= h < 100_000_000 and hh < 24):
                continue
            days[i] = datetime.date(2000 + yy, mm, dd).weekday()
        except ValueError:
            continue
    weekday = days[inverse.reshape(-1)]
    return weekday, weekday >= 0


@register_reader("avazu")
class AvazuReader(RowReader):
    """Streams the Avazu CSV as :class:`RawChunk`s (see the module docstring).

    Args:
        path: the CSV file (with its header).
        hash_buckets: buckets per sparse feature (23 entries; ``None``: no hashing).
        bad: the bad-row policy.
        min_frequency: values seen fewer times map to row 0.
        block_bytes: bytes parsed per block.

    Example::

        reader = AvazuReader("train.csv", [None] * 23, BadRows())
        chunk = next(iter(reader.chunks()))
    """

    def __init__(
        self,
        path: str | Path,
        hash_buckets: list[int | None],
        bad: BadRows,
        min_frequency: int = 1,
        block_bytes: int = 8 << 20,
    ) -> None:
        super().__init__(
            dense_names=["hour_frac"],
            sparse_names=list(SPARSE_NAMES),
            multi_hot_names=[],
            files=[input_path(path)],
            bad=bad,
            min_frequency=[min_frequency] * len(SPARSE_NAMES),
            standardize=[False],
        )
        self.hash_buckets = hash_buckets
        self.block_bytes = block_bytes

    @classmethod
    def from_config(cls, cfg: DataConfig) -> AvazuReader:
        """The reader for ``source: avazu``."""
        assert cfg.path is not None
        return cls(
            cfg.path,
            cfg.buckets_for(len(SPARSE_NAMES)),
            BadRows(cfg.on_bad_row),
            cfg.min_frequency,
            max(1 << 16, cfg.chunk_rows * 128),
        )

    def chunks(self) -> Iterator[RawChunk]:
        path = self.files[0]
        header = read_header(path, ",")
        if header != COLUMNS:
            raise DataError(
                f"{path}:1: header is not Avazu's: expected {','.join(COLUMNS)}, "
                f"got {','.join(header)}"
            )
        types = {n: pa.string() for n in COLUMNS}
        types["click"] = pa.int64()
        types["hour"] = pa.int64()
        yield from iter_blocks(
            path,
            COLUMNS,
            types,
            self.bad,
            self._convert,
            delimiter=",",
            header=True,
            block_bytes=self.block_bytes,
        )

    def _convert(self, block: TextBlock) -> RawChunk:
        table = block.table
        n = table.num_rows
        check = RowChecker(block, self.bad)
        click, ok, missing = to_int(table["click"])
        check.flag(~ok | missing | ((click != 0) & (click != 1)), "click", "{value} is not 0 or 1")
        hour, ok, missing = to_int(table["hour"])
        weekday, valid = _weekdays(hour)
        check.flag(~ok | missing | ~valid, "hour", "{value} is not a YYMMDDHH hour")
        hour_of_day = hour % 100
        sparse = np.empty((n, len(SPARSE_NAMES)), dtype=np.int64, order="F")
        for j, name in enumerate(CATEGORICAL):
            sparse[:, j] = bucketize(hash_string_array(table[name]), self.hash_buckets[j])
        sparse[:, -2] = bucketize(np.where(valid, hour_of_day, 0), self.hash_buckets[-2])
        sparse[:, -1] = bucketize(np.where(valid, weekday, 0), self.hash_buckets[-1])
        dense = (np.where(valid, hour_of_day, 0) / 23.0).astype(np.float32).reshape(n, 1)
        keep = check.resolve()
        chunk = RawChunk(dense, sparse, click.astype(np.float32), order=hour.astype(np.float64))
        return keep_rows(chunk, keep)
