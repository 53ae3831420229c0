"""One rank of a ``DistributedModelParallel`` job: tables sharded by TorchRec's planner, dense
weights data-parallel, sharded checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.distributed.checkpoint import DistributedCheckpointer
from torchrec_nas.distributed.context import (
    DistributedContext,
    RankShard,
    all_gather_object,
    all_reduce_mean,
    broadcast_object,
    init_distributed,
    mean_across_ranks,
)
from torchrec_nas.distributed.sharding import gather_full_state_dict, shard_model
from torchrec_nas.runtime.base import Runtime, parse_device
from torchrec_nas.train.checkpoint import write_text_atomic
from torchrec_nas.train.config import OptimizerConfig
from torchrec_nas.train.optim import ModelOptimizer, attach_table_optimizer

T = TypeVar("T")


class DistributedRuntime(Runtime):
    """The stages on every rank of a job launched by ``torchrun`` or TorchX (or, outside
    them, a one-rank job in this process).

    Args:
        ctx: this rank (see :func:`DistributedRuntime.start`).

    Example::

        runtime = DistributedRuntime.start(cfg)
        run_supernet(cfg, "runs/x", runtime)
    """

    def __init__(self, ctx: DistributedContext) -> None:
        self.ctx = ctx
        self.rank = ctx.rank
        self.world_size = ctx.world_size
        self.device = ctx.device

    @staticmethod
    def start(cfg: Config) -> DistributedRuntime:
        """Joins (or creates) the job's process group for ``cfg.device``."""
        parse_device(cfg.device)
        return DistributedRuntime(init_distributed(cfg.distributed.backend, cfg.device))

    def share(self, batches: Any, max_batches: int | None) -> Any:
        # Batches here are B / W rows: max_batches global batches are W times as many.
        limit = max_batches * self.world_size if max_batches is not None else None
        return RankShard(batches, self.rank, self.world_size, limit)

    def place(
        self, model: nn.Module, cfg: Config, plan_path: str | Path | None = None
    ) -> nn.Module:
        sharded = shard_model(model, cfg.distributed, self.ctx, self.rank_batch_size(cfg))
        if plan_path is not None and self.is_primary:
            write_text_atomic(plan_path, sharded.report)
        return sharded.dmp

    def prepare(
        self,
        model: nn.Module,
        optimizer: OptimizerConfig,
        total_steps: int,
        cfg: Config,
        plan_path: str | Path | None = None,
    ) -> tuple[nn.Module, ModelOptimizer]:
        attach_table_optimizer(model, optimizer)
        dmp = self.place(model, cfg, plan_path)
        reducer = all_reduce_mean if cfg.distributed.dense_sync == "allreduce" else None
        return dmp, ModelOptimizer(dmp, optimizer, total_steps, reduce_gradients=reducer)

    def unwrap(self, model: nn.Module) -> nn.Module:
        inner = getattr(model, "module", model)
        assert isinstance(inner, nn.Module)
        return inner

    def full_state_dict(self, model: nn.Module) -> dict[str, Any]:
        return gather_full_state_dict(model)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        return mean_across_ranks(value)

    @property
    def gradient_reducer(self) -> Callable[[list[torch.Tensor]], None] | None:
        return all_reduce_mean

    def broadcast(self, obj: T) -> T:
        return broadcast_object(obj)

    def gather(self, obj: T) -> list[T]:
        return all_gather_object(obj)

    def barrier(self) -> None:
        self.ctx.barrier()

    def restore(self, model: nn.Module, cfg: Config, out: str | Path, stage: str) -> bool:
        checkpointer = self.checkpointer(cfg, out, stage)
        if not checkpointer.steps():
            return False
        checkpointer.load_model(model)
        return True

    def checkpointer(self, cfg: Config, out: str | Path, stage: str) -> DistributedCheckpointer:
        root = cfg.distributed.checkpoint_dir
        # A string, so that DCP picks its fsspec writer for a URL.
        root = storage.join(root, stage) if root else storage.join(out, stage, "dcp")
        return DistributedCheckpointer(root, cfg.distributed.keep_checkpoints)
