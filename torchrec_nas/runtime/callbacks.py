"""The :class:`~torchrec_nas.runtime.trainer.Trainer`'s callbacks: progress bar, JSONL log,
checkpoints, early stopping and TensorBoard.

The JSONL log and checkpoints go through :mod:`torchrec_nas.storage` (any output folder may
be a URL); TensorBoard events are written for a local output folder only."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn
from tqdm import tqdm

from torchrec_nas import storage
from torchrec_nas.progress import progress_bar
from torchrec_nas.runtime.trainer import Callback, TrainState
from torchrec_nas.train.checkpoint import json_dumps, write_text_atomic
from torchrec_nas.train.config import LoopConfig
from torchrec_nas.train.optim import ModelOptimizer
from torchrec_nas.train.resume import Checkpointer, ResumePoint

logger = logging.getLogger(__name__)


class ProgressBar(Callback):
    """A progress bar of steps with the running loss, rows/s and the last validation AUC,
    updated every step (whole lines at an interval when the output is not a terminal; see
    :func:`torchrec_nas.progress.progress_bar`)."""

    def __init__(self) -> None:
        self.bar: tqdm[Any] | None = None

    def on_start(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        self.bar = progress_bar(state.total, state.desc, "step", initial=state.step)

    def _postfix(self, state: TrainState) -> None:
        if self.bar is None:
            return
        figures = {"loss": f"{state.loss_ema:.4f}", "rows_s": f"{state.rows_per_second:,.0f}"}
        if state.val is not None:
            figures["val_auc"] = f"{state.val.auc:.4f}"
        self.bar.set_postfix(figures, refresh=False)

    def on_step(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        if self.bar is not None:
            self._postfix(state)
            self.bar.update(state.step - self.bar.n)

    def on_validation(self, state: TrainState) -> None:
        self._postfix(state)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class JsonlLog(Callback):
    """Appends training and validation records to a JSONL file (strict JSON: no ``NaN``).

    After a resume from step ``s`` the records of steps after ``s`` (written by the killed
    session, which trains them again) are dropped first, so no step appears twice.

    Args:
        path: the ``train_log.jsonl`` file (a local path or URL).
        every: write a training record every this many steps (and at the last).
    """

    def __init__(self, path: str | Path, every: int = 20) -> None:
        self.path = str(path)
        self.every = max(1, every)
        self.open = False
        self.written: set[tuple[str, int]] = set()

    def on_start(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        kept = []
        for line, record in storage.read_jsonl(self.path):
            if int(record.get("step", 0)) <= state.step:
                kept.append(line)
                self.written.add(("val" if "val" in record else "train", record["step"]))
        write_text_atomic(self.path, "".join(f"{line}\n" for line in kept))
        self.open = True

    def write(self, kind: str, record: dict[str, Any]) -> None:
        key = (kind, int(record["step"]))
        if not self.open or key in self.written:
            return
        self.written.add(key)
        storage.append_lines(self.path, [json_dumps(record, indent=None)])

    def on_step(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        if state.step % self.every == 0 or state.step == state.total or state.stopped_early:
            record = {"step": state.step, "loss": state.loss, "loss_ema": state.loss_ema}
            record.update(lr=state.lr, rows_per_second=state.rows_per_second)
            self.write("train", record)

    def on_validation(self, state: TrainState) -> None:
        if state.val is not None:
            self.write("val", {"step": state.step, "val": state.val.to_dict()})

    def close(self) -> None:
        self.open = False


class Checkpointing(Callback):
    """Restores the last checkpoint at the start; writes one every ``every`` steps and at the
    end (every rank calls the checkpointer).

    Args:
        checkpointer: where checkpoints go.
        every: steps between checkpoints (0: only at the end).
    """

    def __init__(self, checkpointer: Checkpointer, every: int) -> None:
        self.checkpointer = checkpointer
        self.every = every

    def on_start(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        point = self.checkpointer.load(state.desc, model, optimizer)
        if point is not None:
            state.step = state.checkpoint_step = point.step
            state.rows, state.loss, state.loss_ema = point.rows, point.loss, point.loss_ema
            state.stopped_early = point.stopped_early
            state.prior_seconds = point.seconds
            state.best_val_logloss = point.best_val_logloss
            state.bad_validations = point.bad_validations
            state.lr = optimizer.lr

    def _save(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        point = ResumePoint(
            state.step,
            state.rows,
            state.loss,
            state.loss_ema,
            state.stopped_early,
            seconds=state.prior_seconds + state.seconds,
            best_val_logloss=state.best_val_logloss,
            bad_validations=state.bad_validations,
        )
        self.checkpointer.save(state.desc, model, optimizer, point)
        state.checkpoint_step = state.step

    def on_step(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        if self.every and state.step % self.every == 0 and state.step < state.total:
            self._save(state, model, optimizer)

    def on_end(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        if state.checkpoint_step != state.step:
            self._save(state, model, optimizer)


class EarlyStopping(Callback):
    """Stops the run after ``patience`` validations in a row without a lower logloss, but
    not before ``min_fraction`` of its steps. Its counters live on the
    :class:`~torchrec_nas.runtime.trainer.TrainState` and go into checkpoints, so a resumed
    run stops where an uninterrupted one would.

    Args:
        patience: validations without improvement to tolerate.
        min_fraction: the share of the run's steps before which it never stops.
    """

    def __init__(self, patience: int, min_fraction: float = 0.0) -> None:
        self.patience = patience
        self.min_fraction = min_fraction

    def on_validation(self, state: TrainState) -> None:
        if state.val is None or state.step >= state.total:
            return
        if state.val.logloss < state.best_val_logloss:
            state.best_val_logloss, state.bad_validations = state.val.logloss, 0
        else:
            state.bad_validations += 1
            if (
                state.bad_validations >= self.patience
                and state.step >= self.min_fraction * state.total
            ):
                logger.info("%s: early stop at step %d", state.desc, state.step)
                state.should_stop = True


class TensorBoard(Callback):
    """Writes the training loss, learning rate, throughput and validation metrics as
    TensorBoard events through ``torch.utils.tensorboard``.

    Args:
        log_dir: the events directory (a local path: ``SummaryWriter`` writes local files).
        every: write training scalars every this many steps.
    """

    def __init__(self, log_dir: str | Path, every: int = 20) -> None:
        self.log_dir = str(log_dir)
        self.every = max(1, every)
        self.writer: Any = None

    @staticmethod
    def available() -> bool:
        """Whether the ``tensorboard`` package is installed."""
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            return False
        return True

    def on_start(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(self.log_dir, purge_step=state.step or None)

    def on_step(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        if self.writer is not None and state.step % self.every == 0:
            self.writer.add_scalar("train/loss", state.loss, state.step)
            self.writer.add_scalar("train/lr", state.lr, state.step)
            self.writer.add_scalar("train/rows_per_second", state.rows_per_second, state.step)

    def on_validation(self, state: TrainState) -> None:
        if self.writer is not None and state.val is not None:
            for name, value in state.val.to_dict().items():
                self.writer.add_scalar(f"val/{name}", value, state.step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def standard_callbacks(
    cfg: LoopConfig,
    out_dir: str | Path | None,
    checkpointer: Checkpointer | None,
    primary: bool = True,
) -> list[Callback]:
    """The callbacks a stage trains with: checkpoints (every rank), and on the primary rank a
    progress bar (``cfg.progress``), ``out_dir/train_log.jsonl``, TensorBoard events
    (``cfg.tensorboard``; only where ``out_dir`` is local), plus early stopping
    (``cfg.early_stopping_patience``).

    Example::

        callbacks = standard_callbacks(cfg.supernet, out / "supernet", checkpointer)
    """
    callbacks: list[Callback] = []
    if checkpointer is not None:
        callbacks.append(Checkpointing(checkpointer, cfg.checkpoint_every))
    if cfg.early_stopping_patience:
        callbacks.append(
            EarlyStopping(cfg.early_stopping_patience, cfg.early_stopping_min_fraction)
        )
    if primary and cfg.progress:
        callbacks.append(ProgressBar())
    if primary and out_dir is not None:
        callbacks.append(JsonlLog(storage.join(out_dir, "train_log.jsonl"), cfg.log_every))
        if cfg.tensorboard:
            local = storage.local_path(out_dir)
            if local is None:
                logger.warning("%s: TensorBoard events are written to local folders only", out_dir)
            elif TensorBoard.available():
                callbacks.append(TensorBoard(local / "tensorboard", cfg.log_every))
            else:
                logger.warning("tensorboard is not installed: no TensorBoard events written")
    return callbacks
