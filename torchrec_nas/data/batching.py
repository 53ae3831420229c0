"""Feature arrays in memory or memory-mapped, and the re-iterable ``Batch`` stream over them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torchrec.datasets.utils import Batch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor


@dataclass
class FeatureArrays:
    """The rows of one split, column-typed.

    Args:
        dense: ``[n, num_dense]`` float32.
        sparse: ``[n, num_one_hot]`` integer ids of the one-hot features.
        labels: ``[n]`` float32 in {0, 1}.
        multi_hot: per multi-hot feature, ``(values, offsets)`` with ``offsets`` of length
            ``n + 1`` (row ``i``'s ids are ``values[offsets[i]:offsets[i + 1]]``).
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


class BatchStream:
    """A re-iterable stream of ``Batch``es over :class:`FeatureArrays`; each ``iter()`` is an epoch.

    Batches are contiguous row ranges. The ``KeyedJaggedTensor``'s one-hot lengths and offsets
    are built once and sliced per batch; no Python runs per row.

    Args:
        arrays: the rows.
        keys: sparse feature names: the one-hot features, then the multi-hot ones.
        batch_size: rows per batch.
        drop_last: drop the last partial batch.
        shuffle: shuffle the order of batches every epoch.
        seed: seed of that shuffle (epoch ``e`` uses ``seed + e``).
        rank: this process's rank; it gets batches ``rank, rank + world_size, ...``.
        world_size: number of ranks; every rank gets the same number of batches (the
            remainder is dropped).

    Example::

        stream = BatchStream(arrays, keys=["c0", "c1"], batch_size=512)
        for batch in stream:
            logits = model(batch)
    """

    def __init__(
        self,
        arrays: FeatureArrays,
        keys: list[str],
        batch_size: int,
        drop_last: bool = False,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        n = len(arrays)
        self.arrays = arrays
        self.keys = list(keys)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self._epoch = 0
        self._num_one_hot = int(arrays.sparse.shape[1])
        if self._num_one_hot + len(arrays.multi_hot) != len(self.keys):
            raise ValueError(
                f"{len(self.keys)} keys for {self._num_one_hot} one-hot and "
                f"{len(arrays.multi_hot)} multi-hot features"
            )
        num_batches = n // batch_size if drop_last else -(-n // batch_size)
        per_rank = num_batches // world_size
        self._batches = np.arange(rank, per_rank * world_size, world_size, dtype=np.int64)
        total = self._num_one_hot * batch_size
        self._ones = torch.ones(total, dtype=torch.int32)
        self._offsets = torch.arange(total + 1, dtype=torch.int32)
        self._index_per_key = {k: i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def num_rows(self) -> int:
        """Rows this stream yields per epoch."""
        n = len(self.arrays)
        ends = np.minimum(n, (self._batches + 1) * self.batch_size)
        return int((ends - self._batches * self.batch_size).sum())

    def __iter__(self) -> Iterator[Batch]:
        order = self._batches
        if self.shuffle:
            order = np.random.default_rng(self.seed + self._epoch).permutation(order)
        self._epoch += 1
        n = len(self.arrays)
        for b in order.tolist():
            start = b * self.batch_size
            yield self.batch(start, min(n, start + self.batch_size))

    def batch(self, start: int, end: int) -> Batch:
        """The ``Batch`` of rows ``[start, end)``."""
        a = self.arrays
        b = end - start
        one_hot = np.ascontiguousarray(a.sparse[start:end].T, dtype=np.int64).reshape(-1)
        num_one_hot_ids = self._num_one_hot * b
        length_per_key = [b] * self._num_one_hot
        if a.multi_hot:
            values = [one_hot]
            lengths = [np.ones(num_one_hot_ids, dtype=np.int32)]
            for mh_values, mh_offsets in a.multi_hot:
                off = mh_offsets[start : end + 1]
                values.append(np.asarray(mh_values[off[0] : off[-1]], dtype=np.int64))
                lengths.append(np.diff(off).astype(np.int32))
                length_per_key.append(int(off[-1] - off[0]))
            lengths_t = torch.from_numpy(np.concatenate(lengths))
            kjt = KeyedJaggedTensor(
                keys=self.keys,
                values=torch.from_numpy(np.concatenate(values)),
                lengths=lengths_t,
                stride=b,
                length_per_key=length_per_key,
                offset_per_key=np.concatenate([[0], np.cumsum(length_per_key)]).tolist(),
                index_per_key=self._index_per_key,
            )
        else:
            kjt = KeyedJaggedTensor(
                keys=self.keys,
                values=torch.from_numpy(one_hot),
                lengths=self._ones[:num_one_hot_ids],
                offsets=self._offsets[: num_one_hot_ids + 1],
                stride=b,
                length_per_key=length_per_key,
                offset_per_key=[b * i for i in range(self._num_one_hot + 1)],
                index_per_key=self._index_per_key,
            )
        return Batch(
            dense_features=torch.from_numpy(np.array(a.dense[start:end], dtype=np.float32)),
            sparse_features=kjt,
            labels=torch.from_numpy(np.array(a.labels[start:end], dtype=np.float32)),
        )
