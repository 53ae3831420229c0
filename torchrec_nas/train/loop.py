"""The training loop shared by the supernet, fixed subnets and baselines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.datasets.utils import Batch
from tqdm import tqdm

from torchrec_nas.train.checkpoint import load_checkpoint, save_atomic
from torchrec_nas.train.metrics import EvalResult, evaluate
from torchrec_nas.train.optim import ModelOptimizer, OptimizerConfig

#: ``forward(batch, step) -> logits [B]``.
StepForward = Callable[[Batch, int], torch.Tensor]


class Checkpointer(Protocol):
    """Where :func:`train_loop` keeps its resumable state (one file by default; sharded
    checkpoints in :mod:`torchrec_nas.distributed.checkpoint`)."""

    def load(self, desc: str, model: nn.Module, optimizer: Any) -> tuple[int, int] | None:
        """Restores model and optimizer in place; returns ``(step, rows)`` or ``None``."""
        ...

    def save(self, desc: str, model: nn.Module, optimizer: Any, step: int, rows: int) -> None:
        """Writes a checkpoint at ``step``."""
        ...


class FileCheckpointer:
    """The one-process checkpoint: model and optimizer state dicts in one file, written
    atomically.

    Args:
        path: the ``checkpoint.pt`` file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self, desc: str, model: nn.Module, optimizer: Any) -> tuple[int, int] | None:
        state = load_checkpoint(self.path)
        if state is None:
            return None
        if state.get("desc") != desc:
            raise RuntimeError(f"{self.path}: checkpoint is of {state.get('desc')!r}, not {desc!r}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"]), int(state["rows"])

    def save(self, desc: str, model: nn.Module, optimizer: Any, step: int, rows: int) -> None:
        _save(self.path, desc, model, optimizer, step, rows)


@dataclass
class LoopConfig:
    """How long to train and how often to evaluate, log and checkpoint.

    Args:
        epochs: passes over the training split (used when ``steps`` is not set).
        steps: number of optimizer steps (overrides ``epochs``).
        optimizer: optimizer settings.
        eval_every: evaluate on the validation split every this many steps (0: only at the end).
        eval_batches: validation batches per evaluation (``null``: all).
        checkpoint_every: write a resumable checkpoint every this many steps (0: never).
        log_every: append a line to the training log every this many steps.
        progress: show a tqdm progress bar.
    """

    epochs: float = 1.0
    steps: int | None = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    eval_every: int = 0
    eval_batches: int | None = None
    checkpoint_every: int = 500
    log_every: int = 20
    progress: bool = True

    def validate(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")

    def total_steps(self, batches_per_epoch: int | None) -> int:
        if self.steps is not None:
            return self.steps
        if not batches_per_epoch:
            raise ValueError("the training split's length is unknown: set `steps` in the config")
        return max(1, int(self.epochs * batches_per_epoch))


@dataclass
class TrainResult:
    """What a training run did: steps, throughput, last loss and validation metrics."""

    steps: int
    rows: int
    seconds: float
    final_loss: float
    val: EvalResult | None = None
    resumed_from: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "rows": self.rows,
            "seconds": self.seconds,
            "rows_per_second": self.rows_per_second,
            "final_loss": self.final_loss,
            "resumed_from": self.resumed_from,
            "val": self.val.to_dict() if self.val else None,
        }


def batches_per_epoch(data: Iterable[Batch]) -> int | None:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None


def _endless(data: Iterable[Batch], skip: int) -> Iterator[tuple[int, int, Batch]]:
    """Yields ``(epoch, index_in_epoch, batch)`` forever, skipping the first ``skip`` batches."""
    epoch, seen = 0, 0
    while True:
        empty = True
        for i, batch in enumerate(data):
            empty = False
            if seen < skip:
                seen += 1
                continue
            yield epoch, i, batch
        if empty:
            raise ValueError("the training split is empty")
        epoch += 1


def train_loop(
    model: nn.Module,
    forward: StepForward,
    train: Iterable[Batch],
    cfg: LoopConfig,
    out_dir: str | Path | None = None,
    val: Iterable[Batch] | None = None,
    desc: str = "train",
    device: torch.device | None = None,
    optimizer: Any = None,
    checkpointer: Checkpointer | None = None,
    primary: bool = True,
    reduce_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> TrainResult:
    """Trains ``model`` with BCE-with-logits, resuming from ``out_dir/checkpoint.pt`` if present.

    Args:
        model: the module whose parameters are trained (and checkpointed).
        forward: ``(batch, step) -> logits``; the step lets a supernet pick its path.
        train: the training split (re-iterable).
        cfg: loop settings.
        out_dir: where ``checkpoint.pt`` and ``train_log.jsonl`` go (``None``: nowhere).
        val: the validation split.
        desc: label of the progress bar and log.
        device: where batches go.
        optimizer: an optimizer to use instead of building one from ``cfg.optimizer`` (a
            :class:`ModelOptimizer` or anything with its ``step``, ``lr``, ``state_dict`` and
            ``load_state_dict``).
        checkpointer: where resumable state goes instead of ``out_dir/checkpoint.pt``.
        primary: whether this process writes the log and shows progress (rank 0 of a
            distributed job).
        reduce_loss: applied to each step's loss before it is logged (a distributed job's
            mean over ranks).

    Returns:
        a :class:`TrainResult`.

    Example::

        result = train_loop(model, lambda b, s: model(b), data.train, LoopConfig(steps=100))
    """
    total = cfg.total_steps(batches_per_epoch(train))
    opt = optimizer or ModelOptimizer(model, cfg.optimizer, total)
    out = Path(out_dir) if out_dir is not None else None
    if checkpointer is None and out is not None:
        checkpointer = FileCheckpointer(out / "checkpoint.pt")
    log_path = out / "train_log.jsonl" if out and primary else None
    start, rows_done = 0, 0
    resumed = checkpointer.load(desc, model, opt) if checkpointer else None
    if resumed is not None:
        start, rows_done = resumed
    if out and primary:
        out.mkdir(parents=True, exist_ok=True)
    model.train()
    batches = _endless(train, skip=start)
    bar = tqdm(
        total=total,
        initial=start,
        desc=desc,
        unit="step",
        disable=not (cfg.progress and primary),
        dynamic_ncols=True,
    )
    ema: float | None = None
    loss_value = float("nan")
    t0 = time.perf_counter()
    rows_now = 0
    val_result: EvalResult | None = None
    log = open(log_path, "a") if log_path else None  # noqa: SIM115
    try:
        for step in range(start, total):
            _, _, batch = next(batches)
            if device is not None:
                batch = batch.to(device)
            logits = forward(batch, step)
            loss = F.binary_cross_entropy_with_logits(logits, batch.labels.float())
            loss.backward()
            opt.step()
            loss_value = float(reduce_loss(loss.detach()) if reduce_loss else loss.detach())
            ema = loss_value if ema is None else 0.98 * ema + 0.02 * loss_value
            rows_now += batch.labels.numel()
            elapsed = time.perf_counter() - t0
            bar.update(1)
            if step % 10 == 0 or step == total - 1:
                bar.set_postfix(loss=f"{ema:.4f}", rows_s=f"{rows_now / max(elapsed, 1e-9):,.0f}")
            done = step + 1
            if cfg.eval_every and val is not None and done % cfg.eval_every == 0 and done < total:
                val_result = evaluate(lambda b: forward(b, -1), val, cfg.eval_batches, device)
                bar.set_postfix(loss=f"{ema:.4f}", val_auc=f"{val_result.auc:.4f}")
                model.train()
                _write(log, {"step": done, "val": val_result.to_dict()})
            if log and (done % cfg.log_every == 0 or done == total):
                _write(
                    log,
                    {
                        "step": done,
                        "loss": loss_value,
                        "loss_ema": ema,
                        "lr": opt.lr,
                        "rows_per_second": rows_now / max(elapsed, 1e-9),
                    },
                )
            if (
                checkpointer
                and cfg.checkpoint_every
                and done % cfg.checkpoint_every == 0
                and done < total
            ):
                checkpointer.save(desc, model, opt, done, rows_done + rows_now)
        seconds = time.perf_counter() - t0
        if val is not None:
            model.eval()
            val_result = evaluate(lambda b: forward(b, -1), val, cfg.eval_batches, device)
            bar.set_postfix(loss=f"{(ema or 0):.4f}", val_auc=f"{val_result.auc:.4f}")
            _write(log, {"step": total, "val": val_result.to_dict()})
        if checkpointer:
            checkpointer.save(desc, model, opt, total, rows_done + rows_now)
    finally:
        bar.close()
        if log:
            log.close()
    return TrainResult(total, rows_now, seconds, loss_value, val_result, resumed_from=start)


def _write(log: Any, record: dict[str, Any]) -> None:
    if log is not None:
        log.write(json.dumps(record) + "\n")
        log.flush()


def _save(path: Path, desc: str, model: nn.Module, opt: Any, step: int, rows: int) -> None:
    save_atomic(
        {
            "desc": desc,
            "step": step,
            "rows": rows,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
        },
        path,
    )
