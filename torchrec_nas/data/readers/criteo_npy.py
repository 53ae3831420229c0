"""TorchRec's preprocessed Criteo layout: ``day_{i}_dense.npy``, ``day_{i}_sparse.npy``,
``day_{i}_labels.npy`` (as ``torchrec/datasets/scripts/npy_preproc_criteo.py`` writes them).

Rows are read in ranges through TorchRec's own ``BinaryCriteoUtils.load_npy_range`` (memory-
mapped), so a day file is never loaded whole. TorchRec has already applied its dense transform
(``log(x - min + 2)``) and turned empty categories into the value 0, so here 0 is an ordinary
category value, not "missing". The ids are then compacted, capped and split like every other
source (NASRec's stratified split by default; ``split: time`` keeps day order).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from torchrec.datasets.criteo import BinaryCriteoUtils

from torchrec_nas.data.arrays import RawChunk
from torchrec_nas.data.config import DataConfig
from torchrec_nas.data.errors import BadRows, DataError
from torchrec_nas.data.ids import bucketize
from torchrec_nas.data.readers.base import RowReader, register_reader
from torchrec_nas.data.readers.criteo import CAT_NAMES, INT_NAMES
from torchrec_nas.data.readers.text_input import InputPath, check_readable


@register_reader("criteo_npy")
class CriteoNpyReader(RowReader):
    """Streams TorchRec's Criteo ``.npy`` day files as :class:`RawChunk`s.

    Args:
        directory: the folder holding ``day_{i}_{dense,sparse,labels}.npy``.
        days: number of day files (Kaggle: 1 after TorchRec's Kaggle preprocessing, or 7;
            Terabyte: 24).
        hash_buckets: per categorical column (``None``: keep the values).
        min_frequency: values seen fewer times map to row 0.
        chunk_rows: rows per chunk.

    Example::

        reader = CriteoNpyReader("/data/criteo_npy", days=24, hash_buckets=[None] * 26)
    """

    def __init__(
        self,
        directory: str | Path,
        days: int,
        hash_buckets: list[int | None],
        min_frequency: int = 1,
        chunk_rows: int = 262_144,
    ) -> None:
        root = Path(directory)
        files: list[InputPath] = [
            root / f"day_{d}_{kind}.npy"
            for d in range(days)
            for kind in ("dense", "sparse", "labels")
        ]
        super().__init__(
            dense_names=list(INT_NAMES),
            sparse_names=list(CAT_NAMES),
            multi_hot_names=[],
            files=files,
            bad=BadRows("error"),
            min_frequency=[min_frequency] * len(CAT_NAMES),
            standardize=[False] * len(INT_NAMES),
        )
        self.days = days
        self.hash_buckets = hash_buckets
        self.chunk_rows = chunk_rows

    @classmethod
    def from_config(cls, cfg: DataConfig) -> CriteoNpyReader:
        """The reader for ``source: criteo_npy`` (``path`` is the folder)."""
        assert cfg.path is not None
        return cls(
            cfg.path,
            cfg.npy_days,
            cfg.buckets_for(len(CAT_NAMES)),
            cfg.min_frequency,
            cfg.chunk_rows * 8,
        )

    def chunks(self) -> Iterator[RawChunk]:
        for d in range(self.days):
            dense_f, sparse_f, labels_f = (
                str(check_readable(p)) for p in self.files[3 * d : 3 * d + 3]
            )
            shapes = [
                BinaryCriteoUtils.get_shape_from_npy(f) for f in (dense_f, sparse_f, labels_f)
            ]
            n = shapes[0][0]
            if (
                shapes[0][1:] != (13,)
                or shapes[1][1:] != (26,)
                or shapes[2][0] != n
                or shapes[1][0] != n
            ):
                raise DataError(
                    f"{dense_f}: day {d} files have shapes {shapes}; expected [n, 13], [n, 26], [n, 1]"
                )
            for start in range(0, n, self.chunk_rows):
                rows = min(self.chunk_rows, n - start)
                dense, sparse, labels = (
                    BinaryCriteoUtils.load_npy_range(f, start, rows, mmap_mode=True)
                    for f in (dense_f, sparse_f, labels_f)
                )
                raw = np.asarray(sparse, dtype=np.int64)
                ids = np.empty(raw.shape, dtype=np.int64, order="F")
                for j in range(raw.shape[1]):
                    ids[:, j] = bucketize(raw[:, j], self.hash_buckets[j])
                yield RawChunk(
                    np.asarray(dense, dtype=np.float32),
                    ids,
                    np.asarray(labels, dtype=np.float32).reshape(-1),
                )
