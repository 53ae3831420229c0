"""Sharding a model with TorchRec: the planner (with constraints from the config), the plan and
its per-rank memory report, ``DistributedModelParallel``, and moving whole state dicts in and
out of a sharded model."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.model_parallel import (
    DataParallelWrapper,
    DefaultDataParallelWrapper,
    DistributedModelParallel,
)
from torchrec.distributed.planner import EmbeddingShardingPlanner
from torchrec.distributed.planner.types import (
    KernelConfig,
    ParameterConstraints,
    TopologyFactory,
    TrainerConfig,
)
from torchrec.distributed.types import ModuleSharder, ShardedModule, ShardingEnv, ShardingPlan
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from torchrec_nas.distributed.config import DistributedConfig
from torchrec_nas.distributed.context import DistributedContext

_STATS_LOGGER = "torchrec.distributed.planner.stats"
_RESERVATION_LOGGER = "torchrec.distributed.planner.storage_reservations"


class BroadcastOnlyWrapper(DataParallelWrapper):
    """A ``data_parallel_wrapper`` for :class:`DistributedModelParallel` that does not wrap the
    dense part in DDP: it only makes every rank start from rank 0's dense weights. Gradients
    are then averaged by :func:`~torchrec_nas.distributed.context.all_reduce_mean` after
    backward (see :class:`~torchrec_nas.train.optim.ModelOptimizer`)."""

    def wrap(self, dmp: DistributedModelParallel, env: ShardingEnv, device: torch.device) -> None:
        dmp._dmp_wrapped_module.to(device)
        with torch.no_grad():
            for p in dense_parameters(dmp):
                dist.broadcast(p.data, src=0, group=env.process_group)


def dense_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that are not inside a sharded TorchRec module (the data-parallel part)."""
    sharded = {
        id(p) for m in model.modules() if isinstance(m, ShardedModule) for p in m.parameters()
    }
    return [p for p in model.parameters() if id(p) not in sharded]


def parameter_constraints(
    cfg: DistributedConfig, model: nn.Module
) -> dict[str, ParameterConstraints]:
    """``ParameterConstraints`` for every table of every EBC in ``model``, from the config."""
    constraints = {}
    names = [
        t.name
        for m in model.modules()
        if isinstance(m, EmbeddingBagCollection)
        for t in m.embedding_bag_configs()
    ]
    unknown = sorted(set(cfg.sharding_types) - set(names) - {"*"})
    unknown += sorted(set(cfg.compute_kernels) - set(names) - {"*"})
    if unknown:
        raise ValueError(
            f"distributed: no embedding table named {unknown[0]!r}; tables: {', '.join(names)}"
        )
    for name in names:
        constraints[name] = ParameterConstraints(
            sharding_types=cfg.types_for(name), compute_kernels=cfg.kernels_for(name)
        )
    return constraints


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _captured_stats() -> Iterator[_Capture]:
    """Collects what TorchRec's ``EmbeddingStats`` logs (the per-rank memory and perf table)
    instead of letting it flood the console."""
    logger = logging.getLogger(_STATS_LOGGER)
    handler = _Capture()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@contextmanager
def _quiet_planner() -> Iterator[None]:
    """Silences the planner's warnings about dry runs: the model here is materialized, so its
    dense-size estimate is right."""
    logger = logging.getLogger(_RESERVATION_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "HeuristicalStorageReservation", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


@dataclass
class ShardedModel:
    """A model under ``DistributedModelParallel`` and how it was sharded.

    Args:
        dmp: the wrapped model; call it like the original.
        plan: TorchRec's sharding plan.
        report: the printed plan followed by the planner's own statistics (``EmbeddingStats``:
            per-rank HBM/DDR use, perf estimates); the stats are empty on ranks other than 0.
    """

    dmp: DistributedModelParallel
    plan: ShardingPlan
    report: str

    @property
    def module(self) -> nn.Module:
        """The sharded model without wrappers (its methods other than ``forward``)."""
        return self.dmp.module


def shard_model(
    model: nn.Module,
    cfg: DistributedConfig,
    ctx: DistributedContext,
    batch_size: int,
) -> ShardedModel:
    """Plans and applies sharding: embedding tables by TorchRec's planner under the config's
    constraints, the rest data-parallel (``cfg.dense_sync``). The weights of ``model`` are
    kept: whatever it holds before sharding, the sharded model holds after, so a job starts
    from the same weights whatever its number of ranks.

    Args:
        model: the unsharded model (its embedding tables' in-backward optimizers, if any,
            become TorchRec's fused optimizer).
        cfg: the ``distributed:`` config.
        ctx: this rank.
        batch_size: rows per batch on one rank (the planner's perf model uses it).

    Example::

        sharded = shard_model(model, cfg.distributed, ctx, batch_size=256)
        logits = sharded.dmp(batch, arch)
    """
    full = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sharders: list[ModuleSharder[nn.Module]] = [EmbeddingBagCollectionSharder()]  # type: ignore[list-item]
    topology = TopologyFactory.create_topology(
        trainer_config=TrainerConfig(
            world_size=ctx.world_size,
            local_world_size=min(ctx.world_size, max(1, torch.cuda.device_count()))
            if ctx.device.type == "cuda"
            else ctx.world_size,
        ),
        kernel_config=KernelConfig(compute_device=ctx.device.type),
    )
    with _captured_stats() as stats, _quiet_planner():
        planner = EmbeddingShardingPlanner(
            topology=topology,
            batch_size=batch_size,
            constraints=parameter_constraints(cfg, model),
        )
        plan = planner.collective_plan(model, sharders, dist.GroupMember.WORLD)
    wrapper: DataParallelWrapper
    if cfg.dense_sync == "ddp":
        # The supernet trains a different subnet each step: the graph is neither static nor
        # does it use every parameter.
        wrapper = DefaultDataParallelWrapper(static_graph=False, find_unused_parameters=True)
    else:
        wrapper = BroadcastOnlyWrapper()
    dmp = DistributedModelParallel(
        model,
        device=ctx.device,
        plan=plan,
        sharders=sharders,
        data_parallel_wrapper=wrapper,
    )
    load_full_state_dict(dmp, full)
    report = f"world_size: {ctx.world_size}, backend: {ctx.backend}, device: {ctx.device}\n"
    report += f"dense_sync: {cfg.dense_sync}\n\n{plan}\n" + "\n".join(stats.lines) + "\n"
    return ShardedModel(dmp, plan, report)


def _slices(shard_offsets: list[int], shape: torch.Size) -> tuple[slice, ...]:
    return tuple(slice(o, o + s) for o, s in zip(shard_offsets, shape))


@torch.no_grad()
def load_full_state_dict(dmp: nn.Module, full: dict[str, torch.Tensor]) -> None:
    """Copies a whole (unsharded) state dict into a sharded model: each rank takes its shards'
    slices of the tables and all of the dense weights.

    Args:
        dmp: the sharded model.
        full: an unsharded model's ``state_dict()`` (same keys).
    """
    for key, local in dmp.state_dict().items():
        if key not in full:
            raise KeyError(f"{key}: missing from the state dict to load")
        source = full[key]
        if isinstance(local, ShardedTensor):
            for shard in local.local_shards():
                offsets = shard.metadata.shard_offsets
                shard.tensor.copy_(source[_slices(offsets, shard.tensor.shape)])
        elif isinstance(local, torch.Tensor):
            local.copy_(source)
        else:
            raise TypeError(f"{key}: cannot load into a {type(local).__name__}")


@torch.no_grad()
def gather_full_state_dict(dmp: nn.Module) -> dict[str, Any]:
    """The whole model's state dict on rank 0 (``{}`` on other ranks): sharded tables are
    gathered, dense weights taken as they are. Every rank must call it."""
    rank = dist.get_rank()
    out: dict[str, Any] = {}
    with sharded_tensor_warnings_off():
        for key, local in dmp.state_dict().items():
            if isinstance(local, ShardedTensor):
                full = torch.empty(local.size(), dtype=local.dtype) if rank == 0 else None
                local.gather(dst=0, out=full)
                if rank == 0:
                    out[key] = full
            elif rank == 0:
                out[key] = local.detach().cpu().clone()
    return out


@contextmanager
def sharded_tensor_warnings_off() -> Iterator[None]:
    """Silences PyTorch's deprecation of ``ShardedTensor`` (TorchRec's sharded tables are
    still ``ShardedTensor``s, which a user cannot change) and the checkpoint writer's notice
    that an fsspec stream (``memory://``, object stores) has no ``fsync``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Please use DTensor", FutureWarning)
        warnings.filterwarnings("ignore", "fsync not supported", UserWarning)
        yield
