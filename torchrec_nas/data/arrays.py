"""Column arrays of rows: raw chunks as readers produce them, and the finished splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from torchrec_nas.data.spec import DataSpec

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
"""The three splits, in the order every list of splits uses."""


@dataclass
class RawChunk:
    """Rows parsed from a source, ids not yet compacted.

    Args:
        dense: ``[n, num_dense]`` float32, already transformed (except ``standardize``).
        sparse: ``[n, num_one_hot]`` int64 raw ids (``ids.MISSING`` for missing).
        labels: ``[n]`` float32 in {0, 1}.
        multi_hot: per multi-hot feature ``(values, lengths)``: int64 raw ids, per-row counts.
        order: ``[n]`` time key for a time-ordered split, or ``None`` (file order).

    Example::

        chunk = RawChunk(np.zeros((2, 1), np.float32), np.array([[5], [-1]]), np.array([0.0, 1.0]))
        len(chunk)  # 2
    """

    dense: np.ndarray
    sparse: np.ndarray
    labels: np.ndarray
    multi_hot: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    order: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


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


@dataclass
class FeatureArrays:
    """The rows of one split, column-typed (in memory or memory-mapped).

    Args:
        dense: ``[n, num_dense]`` float32.
        sparse: ``[n, num_one_hot]`` integer ids of the one-hot features.
        labels: ``[n]`` float32 in {0, 1}.
        multi_hot: per multi-hot feature, ``(values, offsets)`` with ``offsets`` of length
            ``n + 1`` (row ``i``'s ids are ``values[offsets[i]:offsets[i + 1]]``).

    Example::

        arrays = FeatureArrays(dense, sparse, labels)
        first_ten = arrays.take(np.arange(10))
    """

    dense: np.ndarray
    sparse: np.ndarray
    labels: np.ndarray
    multi_hot: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: np.ndarray) -> FeatureArrays:
        """The rows at ``index`` (in that order), as new in-memory arrays."""
        multi = []
        for values, offsets in self.multi_hot:
            new_values, new_offsets = take_jagged(values, offsets, index)
            multi.append((new_values, new_offsets))
        return FeatureArrays(self.dense[index], self.sparse[index], self.labels[index], multi)


def take_jagged(
    values: np.ndarray, offsets: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gathers rows ``index`` of a jagged array given as ``(values, offsets)``."""
    starts = offsets[:-1][index]
    lengths = offsets[1:][index] - starts
    new_offsets = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    # Position j of the output reads values[starts[row(j)] + (j - new_offsets[row(j)])].
    gather = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return values[gather], new_offsets


@dataclass
class SplitArrays:
    """A data set split into train/val/test arrays, before batching.

    Args:
        spec: feature names and table sizes.
        parts: the train, val and test rows (see :data:`SPLIT_NAMES`).
        info: how the data was made: source, rows read, skipped bad rows, cache use.

    Example::

        arrays = SplitArrays(spec, [train, val, test], {"source": "synthetic"})
    """

    spec: DataSpec
    parts: list[FeatureArrays]
    info: dict[str, Any] = field(default_factory=dict)
