"""What every file reader produces: chunks of raw rows, before ids are compacted and split."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from torchrec_nas.data.text import BadRows


@dataclass
class RawChunk:
    """Rows parsed from a source, ids not yet compacted.

    Args:
        dense: ``[n, num_dense]`` float32, already transformed (except ``standardize``).
        sparse: ``[n, num_one_hot]`` int64 raw ids (``ids.MISSING`` for missing).
        labels: ``[n]`` float32 in {0, 1}.
        multi_hot: per multi-hot feature ``(values, lengths)``: int64 raw ids, per-row counts.
        order: ``[n]`` time key for a time-ordered split, or ``None`` (file order).
    """

    dense: np.ndarray
    sparse: np.ndarray
    labels: np.ndarray
    multi_hot: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    order: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class SourceReader:
    """Base of the file readers: feature names, per-feature settings and the chunk stream.

    Args:
        dense_names: dense feature names.
        sparse_names: one-hot feature names.
        multi_hot_names: multi-hot feature names (after the one-hot ones in the KJT).
        files: the input files (fingerprinted by the cache).
        bad: the bad-row policy and its count.
        min_frequency: per sparse feature (one-hot then multi-hot).
        standardize: per dense feature, whether to standardize with train statistics.
    """

    dense_names: list[str]
    sparse_names: list[str]
    multi_hot_names: list[str]
    files: list[Path]
    bad: BadRows
    min_frequency: list[int]
    standardize: list[bool]

    def chunks(self) -> Iterator[RawChunk]:
        """Yields the rows in file order."""
        raise NotImplementedError


def keep_rows(chunk: RawChunk, keep: np.ndarray) -> RawChunk:
    """The chunk without the rows where ``keep`` is false."""
    if keep.all():
        return chunk
    multi = []
    for values, lengths in chunk.multi_hot:
        row_of_value = np.repeat(np.arange(len(lengths)), lengths)
        multi.append((values[keep[row_of_value]], lengths[keep]))
    order = chunk.order[keep] if chunk.order is not None else None
    return RawChunk(chunk.dense[keep], chunk.sparse[keep], chunk.labels[keep], multi, order)
