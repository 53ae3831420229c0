"""The re-iterable ``Batch`` stream over a split's :class:`~torchrec_nas.data.arrays.FeatureArrays`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torchrec.datasets.utils import Batch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from torchrec_nas.data.arrays import FeatureArrays


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
