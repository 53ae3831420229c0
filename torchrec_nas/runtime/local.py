"""One process: the model on one device, checkpoints in one file."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.runtime.base import Runtime, parse_device
from torchrec_nas.train.config import OptimizerConfig
from torchrec_nas.train.optim import ModelOptimizer
from torchrec_nas.train.resume import Checkpointer, FileCheckpointer


class LocalRuntime(Runtime):
    """The stages in this process alone, on ``device``.

    Args:
        device: ``cpu``, ``cuda`` or ``cuda:N``.

    Example::

        run_supernet(cfg, "runs/demo", LocalRuntime(cfg.device))
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = parse_device(device)

    def prepare(
        self,
        model: nn.Module,
        optimizer: OptimizerConfig,
        total_steps: int,
        cfg: Config,
        plan_path: str | Path | None = None,
    ) -> tuple[nn.Module, ModelOptimizer]:
        model = model.to(self.device)
        return model, ModelOptimizer(model, optimizer, total_steps)

    def checkpointer(self, cfg: Config, out: str | Path, stage: str) -> Checkpointer:
        return FileCheckpointer(storage.join(out, stage, "checkpoint.pt"))
