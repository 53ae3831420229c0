"""The ``distributed:`` config section: process group, sharding constraints, dense sync and
checkpoints of a job run under ``torchrun`` / TorchX."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: Sharding types the distributed path accepts. ``data_parallel`` is left out on purpose: its
#: tables would be dense weights outside TorchRec's fused in-backward optimizer (another update
#: rule than the one-process run), and the supernet's tables are never small enough to want it.
SHARDING_TYPES: tuple[str, ...] = (
    "table_wise",
    "row_wise",
    "column_wise",
    "table_row_wise",
    "table_column_wise",
)

#: What the planner may choose for a table the config does not constrain.
DEFAULT_SHARDING_TYPES: tuple[str, ...] = ("table_wise", "row_wise", "column_wise")


@dataclass
class DistributedConfig:
    """How a job spreads over ranks (read only when it runs under ``torchrun`` or TorchX).

    Args:
        backend: ``gloo``, ``nccl`` or ``auto`` (``nccl`` when the config's device is CUDA).
        sharding_types: sharding types the planner may choose per table (``t_<feature>``);
            the key ``"*"`` applies to tables not named. Default: any of table-, row- and
            column-wise (the planner drops what the device cannot run: row-wise needs a GPU).
        compute_kernels: allowed compute kernels per table (``"*"`` for the rest), e.g.
            ``fused_uvm_caching`` for tables larger than GPU memory. Default: the planner's.
        dense_sync: how dense gradients are averaged across ranks: ``allreduce`` (one
            coalesced all-reduce of the gradients the step's subnet produced, after backward)
            or ``ddp`` (``DistributedDataParallel`` with ``find_unused_parameters``).
        checkpoint_dir: where sharded checkpoints go (``torch.distributed.checkpoint``; any
            local path or fsspec URL); default ``OUT/<stage>/dcp``.
        keep_checkpoints: how many of the latest checkpoints to keep.
        export_full_model: also gather the whole model on rank 0 and write it in the
            one-process format (``supernet.pt``, ``model_*.pt``); turn off when the tables do
            not fit one host's memory.
        verify_arch_every: every this many steps, all ranks compare the hash of the sampled
            architecture and fail if they differ (0: never).
    """

    backend: Literal["auto", "gloo", "nccl"] = "auto"
    sharding_types: dict[str, list[str]] = field(default_factory=dict)
    compute_kernels: dict[str, list[str]] = field(default_factory=dict)
    dense_sync: Literal["allreduce", "ddp"] = "allreduce"
    checkpoint_dir: str | None = None
    keep_checkpoints: int = 2
    export_full_model: bool = True
    verify_arch_every: int = 100

    def validate(self) -> None:
        for table, types in self.sharding_types.items():
            bad = [t for t in types if t not in SHARDING_TYPES]
            if bad:
                raise ValueError(
                    f"sharding_types.{table}: {bad[0]!r} is not one of {list(SHARDING_TYPES)}"
                )
            if not types:
                raise ValueError(f"sharding_types.{table}: needs at least one sharding type")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints: must be at least 1, got {self.keep_checkpoints}")
        if self.verify_arch_every < 0:
            raise ValueError("verify_arch_every: must be >= 0")

    def types_for(self, table: str) -> list[str]:
        """The sharding types allowed for ``table``."""
        found = self.sharding_types.get(table, self.sharding_types.get("*"))
        return list(found) if found else list(DEFAULT_SHARDING_TYPES)

    def kernels_for(self, table: str) -> list[str] | None:
        """The compute kernels allowed for ``table`` (``None``: no constraint)."""
        return self.compute_kernels.get(table, self.compute_kernels.get("*"))
