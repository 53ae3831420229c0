"""The process group of a job and the few collectives the stages need beyond TorchRec's."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from typing import Any, Generic, TypeVar

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    """Who this process is in the job.

    Args:
        rank: global rank.
        world_size: number of ranks.
        local_rank: rank on this host (picks the GPU).
        device: where this rank computes.
        backend: the process group's backend (``gloo`` or ``nccl``).

    Example::

        ctx = init_distributed("auto", "cpu")    # under torchrun
        if ctx.is_primary:
            print("rank 0 writes the results")
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_primary(self) -> bool:
        """Whether this rank writes files (rank 0)."""
        return self.rank == 0

    def barrier(self) -> None:
        dist.barrier()


def free_port() -> int:
    """A TCP port free on this host now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_distributed(backend: str = "auto", device: str = "cpu") -> DistributedContext:
    """Joins (or, outside ``torchrun``, creates) the default process group.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` as
    ``torchrun`` and TorchX set them; without them it starts a one-rank group on a free local
    port, so that a plain process runs the same sharded path with one rank. A process that
    has joined a group already keeps it.

    Args:
        backend: ``gloo``, ``nccl`` or ``auto`` (``nccl`` for a CUDA ``device``).
        device: the config's device, ``cpu`` or ``cuda``.

    Returns:
        the :class:`DistributedContext` of this process.
    """
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise RuntimeError(f"config asks for device {device!r} but CUDA is not available")
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    init_method = None
    if "WORLD_SIZE" in os.environ:
        rank = int(os.environ["RANK"])
        world_size = int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    else:
        # A one-rank group of its own; the environment is left as it was, so that processes
        # this one starts (torchrun jobs, tests) do not inherit its rendezvous.
        rank, world_size, local_rank = 0, 1, 0
        init_method = f"tcp://127.0.0.1:{free_port()}"
    if cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        backend = str(dist.get_backend())
    else:
        dist.init_process_group(
            backend,
            init_method=init_method,
            rank=rank,
            world_size=world_size,
            timeout=timedelta(minutes=30),
        )
    return DistributedContext(rank, world_size, local_rank, dev, backend)


def shutdown_distributed() -> None:
    """Leaves the process group (if one was joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` as rank ``src`` has it, on every rank."""
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]  # type: ignore[no-any-return]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order."""
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    """Averages ``tensors`` across ranks in place, with one coalesced all-reduce.

    Every rank must pass tensors of the same shapes in the same order.
    """
    if not tensors or dist.get_world_size() == 1:
        return
    flat = _flatten_dense_tensors(tensors)
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    for t, synced in zip(tensors, _unflatten_dense_tensors(flat, tensors)):
        t.copy_(synced)


def mean_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over ranks (for logging the global loss)."""
    if dist.get_world_size() == 1:
        return value
    v = value.detach().clone().float().reshape(1)
    dist.all_reduce(v)
    return v[0] / dist.get_world_size()


class RankShard(Generic[T]):
    """Rank ``rank``'s share of the first ``limit`` batches of a stream: batches ``rank``,
    ``rank + world_size``, ... Every rank gets the same number of batches, since each forward
    of a sharded model is a collective: the last ``< world_size`` batches are left out when
    the count does not divide (less than one global batch). Together the shares are the rows
    one process would evaluate, up to that remainder.

    Args:
        batches: a re-iterable stream with a length (every rank has all of it).
        rank: this rank.
        world_size: number of ranks.
        limit: how many batches of the stream to share out (``None``: all).

    Example::

        val = RankShard(data.val, ctx.rank, ctx.world_size, limit=20 * ctx.world_size)
    """

    def __init__(
        self, batches: Iterable[T], rank: int, world_size: int, limit: int | None = None
    ) -> None:
        self.batches = batches
        self.rank = rank
        self.world_size = world_size
        self.limit = limit

    def __len__(self) -> int:
        n = self.limit
        if hasattr(self.batches, "__len__"):
            size = len(self.batches)  # type: ignore[arg-type]
            n = size if n is None else min(n, size)
        if n is None:
            raise ValueError("RankShard needs a stream with a length or a limit")
        return n // self.world_size

    def __iter__(self) -> Iterator[T]:
        return islice(self.batches, self.rank, len(self) * self.world_size, self.world_size)
