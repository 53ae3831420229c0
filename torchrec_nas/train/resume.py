"""Where a training run keeps its resumable state: the protocol and the one-file form.

The sharded form, for models under ``DistributedModelParallel``, is
:class:`torchrec_nas.distributed.checkpoint.DistributedCheckpointer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from torchrec_nas.train.checkpoint import CheckpointError, load_checkpoint, save_atomic


@dataclass(frozen=True)
class ResumePoint:
    """How far a run had come when it was checkpointed.

    Args:
        step: optimizer steps done.
        rows: training rows seen (all ranks).
        loss: the last step's training loss (all ranks' mean).
        loss_ema: its exponential moving average.
        stopped_early: whether early stopping ended the run here.
        seconds: training wall time of every session up to ``step``, so that a resumed run
            reports the throughput of the whole run.
        best_val_logloss: the lowest validation logloss so far (early stopping's reference).
        bad_validations: validations in a row since then without a lower one, so a resumed
            run stops early at the same step as an uninterrupted one.
    """

    step: int
    rows: int
    loss: float
    loss_ema: float
    stopped_early: bool = False
    seconds: float = 0.0
    best_val_logloss: float = math.inf
    bad_validations: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "rows": self.rows,
            "loss": self.loss,
            "loss_ema": self.loss_ema,
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
            "best_val_logloss": self.best_val_logloss,
            "bad_validations": self.bad_validations,
        }

    @staticmethod
    def from_dict(state: dict[str, Any]) -> ResumePoint:
        loss = float(state.get("loss", float("nan")))
        ema = float(state.get("loss_ema", loss))
        stopped = bool(state.get("stopped_early", False))
        seconds = float(state.get("seconds", 0.0))
        return ResumePoint(
            int(state["step"]),
            int(state["rows"]),
            loss,
            ema,
            stopped,
            seconds,
            best_val_logloss=float(state.get("best_val_logloss", math.inf)),
            bad_validations=int(state.get("bad_validations", 0)),
        )


class Checkpointer(Protocol):
    """Saves and restores a run's model, optimizer and :class:`ResumePoint`."""

    def load(self, desc: str, model: nn.Module, optimizer: Any) -> ResumePoint | None:
        """Restores model and optimizer in place; ``None`` if there is no checkpoint."""
        ...

    def save(self, desc: str, model: nn.Module, optimizer: Any, point: ResumePoint) -> None:
        """Writes a checkpoint at ``point.step`` (every rank calls it)."""
        ...


class FileCheckpointer:
    """The one-process checkpoint: model and optimizer state dicts in one file, written
    atomically.

    Args:
        path: the ``checkpoint.pt`` file (a local path or URL).

    Example::

        ckpt = FileCheckpointer("runs/demo/supernet/checkpoint.pt")
        point = ckpt.load("supernet", model, optimizer)   # None on a fresh run
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def load(self, desc: str, model: nn.Module, optimizer: Any) -> ResumePoint | None:
        state = load_checkpoint(self.path)
        if state is None:
            return None
        if state.get("desc") != desc:
            raise CheckpointError(
                f"{self.path}: checkpoint is of {state.get('desc')!r}, not {desc!r}; delete it "
                "to start this stage afresh"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return ResumePoint.from_dict(state)

    def save(self, desc: str, model: nn.Module, optimizer: Any, point: ResumePoint) -> None:
        state = {
            "desc": desc,
            **point.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
        }
        save_atomic(state, self.path)
