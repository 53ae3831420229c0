"""KDD Cup 2012 track 2 (``training.txt`` joined with ``userid_profile.txt``), streamed.

``training.txt``: tab-separated, no header, 12 integer fields a row: ``Click, Impression,
DisplayURL, AdID, AdvertiserID, Depth, Position, QueryID, KeywordID, TitleID, DescriptionID,
UserID``. ``userid_profile.txt``: tab-separated ``UserID, Gender, Age``.

Features:

- label: ``Click > 0``;
- dense: ``log(1 + Impression)``, ``log(1 + Depth)``, ``log(1 + Position)``;
- sparse: ``DisplayURL, AdID, AdvertiserID, QueryID, KeywordID, TitleID, DescriptionID,
  UserID`` (their integer values as raw ids) and the user's ``Gender`` and ``Age`` from the
  profile (missing when the user has no profile): 10 sparse features.

Bad rows: a field that is not a non-negative integer, a wrong number of fields; ``Impression``
must be at least ``Click``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from torchrec_nas import storage
from torchrec_nas.data.arrays import RawChunk, keep_rows
from torchrec_nas.data.config import DataConfig
from torchrec_nas.data.errors import BadRows, DataError
from torchrec_nas.data.ids import MISSING, bucketize
from torchrec_nas.data.readers.base import RowReader, register_reader
from torchrec_nas.data.readers.columns import RowChecker, to_int
from torchrec_nas.data.readers.text_blocks import TextBlock, iter_blocks
from torchrec_nas.data.readers.text_input import check_readable, input_path, open_binary

COLUMNS = [
    "Click",
    "Impression",
    "DisplayURL",
    "AdID",
    "AdvertiserID",
    "Depth",
    "Position",
    "QueryID",
    "KeywordID",
    "TitleID",
    "DescriptionID",
    "UserID",
]
DENSE = ["Impression", "Depth", "Position"]
ID_COLUMNS = [
    "DisplayURL",
    "AdID",
    "AdvertiserID",
    "QueryID",
    "KeywordID",
    "TitleID",
    "DescriptionID",
    "UserID",
]
SPARSE_NAMES = [*ID_COLUMNS, "Gender", "Age"]


def load_profiles(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(user_ids sorted, gender, age)`` from ``userid_profile.txt``."""
    p = check_readable(path, "data.kdd12_profile_path")
    try:
        with open_binary(p) as f:
            table = pacsv.read_csv(
                f,
                read_options=pacsv.ReadOptions(column_names=["UserID", "Gender", "Age"]),
                parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.int64() for c in ("UserID", "Gender", "Age")}
                ),
            )
    except pa.ArrowInvalid as e:
        raise DataError(f"{p}: not a UserID/Gender/Age profile file: {e}") from e
    users = table["UserID"].to_numpy()
    order = np.argsort(users, kind="stable")
    gender = table["Gender"].fill_null(MISSING).to_numpy()[order]
    age = table["Age"].fill_null(MISSING).to_numpy()[order]
    return users[order], gender, age


@register_reader("kdd12")
class Kdd12Reader(RowReader):
    """Streams KDD Cup 2012 track 2 as :class:`RawChunk`s (see the module docstring).

    Args:
        path: ``training.txt``.
        profile_path: ``userid_profile.txt``.
        hash_buckets: buckets per sparse feature (10 entries; ``None``: no hashing).
        bad: the bad-row policy.
        min_frequency: values seen fewer times map to row 0.
        block_bytes: bytes parsed per block.

    Example::

        reader = Kdd12Reader("training.txt", "userid_profile.txt", [None] * 10, BadRows())
    """

    def __init__(
        self,
        path: str | Path,
        profile_path: str | Path,
        hash_buckets: list[int | None],
        bad: BadRows,
        min_frequency: int = 1,
        block_bytes: int = 8 << 20,
    ) -> None:
        super().__init__(
            dense_names=list(DENSE),
            sparse_names=list(SPARSE_NAMES),
            multi_hot_names=[],
            files=[input_path(path), input_path(profile_path)],
            bad=bad,
            min_frequency=[min_frequency] * len(SPARSE_NAMES),
            standardize=[False] * len(DENSE),
        )
        self.hash_buckets = hash_buckets
        self.block_bytes = block_bytes
        self._profiles: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_config(cls, cfg: DataConfig) -> Kdd12Reader:
        """The reader for ``source: kdd12`` (profile default: beside ``path``)."""
        assert cfg.path is not None
        profile = cfg.kdd12_profile_path or storage.join(
            storage.parent(cfg.path), "userid_profile.txt"
        )
        return cls(
            cfg.path,
            profile,
            cfg.buckets_for(len(SPARSE_NAMES)),
            BadRows(cfg.on_bad_row),
            cfg.min_frequency,
            max(1 << 16, cfg.chunk_rows * 64),
        )

    def chunks(self) -> Iterator[RawChunk]:
        self._profiles = load_profiles(self.files[1])
        types = {c: pa.int64() for c in COLUMNS}
        yield from iter_blocks(
            self.files[0], COLUMNS, types, self.bad, self._convert, block_bytes=self.block_bytes
        )

    def _convert(self, block: TextBlock) -> RawChunk:
        assert self._profiles is not None
        table = block.table
        n = table.num_rows
        check = RowChecker(block, self.bad)
        values = {}
        for name in COLUMNS:
            v, ok, missing = to_int(table[name])
            check.flag(~ok | missing | (v < 0), name, "{value} is not a non-negative integer")
            values[name] = v
        check.flag(
            values["Impression"] < values["Click"], "Impression", "{value} is less than Click"
        )
        dense = np.stack([np.log1p(np.maximum(values[c], 0)) for c in DENSE], axis=1)
        dense = dense.astype(np.float32)
        sparse = np.empty((n, len(SPARSE_NAMES)), dtype=np.int64, order="F")
        for j, name in enumerate(ID_COLUMNS):
            sparse[:, j] = values[name]
        users, gender, age = self._profiles
        pos = np.searchsorted(users, values["UserID"]).clip(0, max(len(users) - 1, 0))
        found = (users[pos] == values["UserID"]) if len(users) else np.zeros(n, dtype=bool)
        sparse[:, -2] = np.where(found, gender[pos] if len(users) else MISSING, MISSING)
        sparse[:, -1] = np.where(found, age[pos] if len(users) else MISSING, MISSING)
        for j in range(len(SPARSE_NAMES)):
            sparse[:, j] = bucketize(sparse[:, j], self.hash_buckets[j])
        keep = check.resolve()
        labels = (values["Click"] > 0).astype(np.float32)
        return keep_rows(RawChunk(dense, sparse, labels), keep)
