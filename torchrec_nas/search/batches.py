"""Random access to training batches, and the batches a candidate is fine-tuned on.

A candidate's fine-tuning batches are drawn by a generator seeded from the search's seed and
the candidate's canonical hash, so its score does not depend on what was scored before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
from torchrec.datasets.utils import Batch

from torchrec_nas.data import BatchStream


class IndexedBatches:
    """Batch ``k`` of a training split, in its unshuffled order, for one rank.

    A :class:`~torchrec_nas.data.BatchStream` is read directly by row range, nothing before
    batch ``k`` is touched. Index ``k`` names a *global* batch (``world_size`` times the
    stream's batch size); a rank gets its slice of it, so the ranks of a job together fine-tune
    on the rows one process would. Only full global batches are indexed. A sequence is indexed
    as it is; any other iterable is read once into memory.

    Args:
        batches: this rank's training batches (a ``BatchStream`` built with ``rank`` and
            ``world_size``, a sequence, or any iterable).
        rank: this process's rank.
        world_size: number of ranks.

    Example::

        train = IndexedBatches(data.train)
        batch = train[17]   # rows [17 * B, 18 * B) of the training split
    """

    def __init__(self, batches: Iterable[Batch], rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.rank = rank
        self.world_size = world_size
        self.stream = batches if isinstance(batches, BatchStream) else None
        self.items: Sequence[Batch] | None = None
        if self.stream is not None:
            rows = len(self.stream.arrays)
            self.length = rows // (self.stream.batch_size * world_size)
        else:
            self.items = batches if isinstance(batches, Sequence) else list(batches)
            self.length = len(self.items)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> Batch:
        if not 0 <= k < self.length:
            raise IndexError(f"batch {k} is not in [0, {self.length})")
        if self.stream is None:
            assert self.items is not None
            return self.items[k]
        size = self.stream.batch_size
        start = (k * self.world_size + self.rank) * size
        return self.stream.batch(start, start + size)


def finetune_order(seed: int, arch_hash: str, steps: int, num_batches: int) -> list[int]:
    """The batch indices a candidate is fine-tuned on, a function of its arguments alone.

    Indices are drawn without replacement, in rounds of ``num_batches`` when ``steps`` is
    larger, by a generator seeded from ``(seed, arch_hash)``.

    Args:
        seed: the search's seed.
        arch_hash: the candidate's canonical hash.
        steps: fine-tuning steps.
        num_batches: batches to draw from.

    Example::

        order = finetune_order(2018, arch.canonical_hash(), steps=500, num_batches=len(train))
    """
    if steps and num_batches <= 0:
        raise ValueError("the training split has no full batch to fine-tune on")
    digest = hashlib.sha256(f"{seed}:{arch_hash}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    order: list[int] = []
    while len(order) < steps:
        size = min(num_batches, steps - len(order))
        order.extend(rng.choice(num_batches, size=size, replace=False).tolist())
    return order
