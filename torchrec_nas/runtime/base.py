"""The runtime interface the stages are written against: one process, or one rank of a
``DistributedModelParallel`` job."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from torchrec_nas.config import Config, data_on_local_disk
from torchrec_nas.data import DataSplits, build_data
from torchrec_nas.train.config import OptimizerConfig
from torchrec_nas.train.optim import ModelOptimizer
from torchrec_nas.train.resume import Checkpointer

T = TypeVar("T")


def parse_device(device: str) -> torch.device:
    """``device`` as a ``torch.device``, with one clear error for a bad string or a missing GPU.

    Raises:
        ValueError: not a device string, or CUDA asked for where there is none.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device: {device!r} is not a torch device (cpu, cuda, cuda:1)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: the config asks for {device!r} but CUDA is not available")
    return dev


class Limited:
    """The first ``limit`` items of a re-iterable stream, itself re-iterable."""

    def __init__(self, items: Iterable[Any], limit: int | None) -> None:
        self.items, self.limit = items, limit

    def __iter__(self) -> Any:
        return iter(islice(self.items, self.limit))


class Runtime(ABC):
    """Where the stages run: who this process is, how a model is prepared for training, how
    values cross processes, and where checkpoints go.

    The config's ``data.batch_size`` is the *global* batch: each of ``W`` ranks trains on
    ``B / W`` rows per step, so a loss curve does not depend on ``W``.

    Example::

        runtime = LocalRuntime("cpu")
        data = runtime.data(cfg)
        model, opt = runtime.prepare(model, cfg.supernet.optimizer, total_steps, cfg)
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_primary(self) -> bool:
        """Whether this process writes the files (rank 0)."""
        return self.rank == 0

    def rank_batch_size(self, cfg: Config) -> int:
        """Rows per step on one rank: the global batch divided by the number of ranks."""
        if cfg.data.batch_size % self.world_size:
            raise ValueError(
                f"data.batch_size: the global batch {cfg.data.batch_size} does not divide among "
                f"{self.world_size} ranks"
            )
        return cfg.data.batch_size // self.world_size

    def data(self, cfg: Config) -> DataSplits:
        """This rank's data: its shard of the train batches (``B / W`` rows each); validation
        and test stay whole and are shared out by :meth:`share`."""
        data_cfg = dataclasses.replace(
            data_on_local_disk(cfg.data), batch_size=self.rank_batch_size(cfg)
        )
        return build_data(data_cfg, cfg.seed, self.rank, self.world_size)

    def share(self, batches: Iterable[T], max_batches: int | None) -> Iterable[T]:
        """This rank's share of the first ``max_batches`` (global) evaluation batches."""
        return Limited(batches, max_batches) if max_batches is not None else batches

    @abstractmethod
    def prepare(
        self,
        model: nn.Module,
        optimizer: OptimizerConfig,
        total_steps: int,
        cfg: Config,
        plan_path: str | Path | None = None,
    ) -> tuple[nn.Module, ModelOptimizer]:
        """The model placed for training (on the device, or sharded) and its optimizer.

        Args:
            model: the unsharded model, with the weights to start from.
            optimizer: optimizer settings.
            total_steps: length of the schedule.
            cfg: the run's config (sharding constraints, batch size).
            plan_path: where the sharding plan is written (a local path or URL), if the
                runtime shards.
        """

    def place(
        self, model: nn.Module, cfg: Config, plan_path: str | Path | None = None
    ) -> nn.Module:
        """The model placed for inference (on the device, or sharded), without an optimizer."""
        return model.to(self.device)

    def unwrap(self, model: nn.Module) -> nn.Module:
        """The model inside what :meth:`prepare` returned (to call its other methods)."""
        return model

    def full_state_dict(self, model: nn.Module) -> dict[str, Any]:
        """The whole model's state dict on the primary rank (``{}`` elsewhere); every rank
        calls it."""
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar over ranks."""
        return value

    @property
    def gradient_reducer(self) -> Callable[[list[torch.Tensor]], None] | None:
        """What averages gradients across ranks after backward (``None``: nothing to do)."""
        return None

    def broadcast(self, obj: T) -> T:
        """``obj`` as the primary rank has it, on every rank."""
        return obj

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order."""
        return [obj]

    def barrier(self) -> None:
        """Waits for every rank."""
        return None

    def restore(self, model: nn.Module, cfg: Config, out: str | Path, stage: str) -> bool:
        """Loads the weights of ``stage``'s last sharded checkpoint into a placed model;
        ``False`` where there is none (or the runtime keeps no sharded checkpoints)."""
        return False

    @abstractmethod
    def checkpointer(self, cfg: Config, out: str | Path, stage: str) -> Checkpointer:
        """Where the training of ``stage`` (``supernet``, ``train/dlrm``, ...) checkpoints,
        under ``out`` (a local path or URL)."""
