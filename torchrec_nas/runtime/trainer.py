"""The training loop shared by the supernet, fixed subnets and baselines, with callbacks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.datasets.utils import Batch

from torchrec_nas.failures import TrainingDiverged, TrainingInterrupted
from torchrec_nas.runtime.base import Limited, Runtime
from torchrec_nas.train.config import LoopConfig
from torchrec_nas.train.metrics import EvalResult, evaluate
from torchrec_nas.train.optim import ModelOptimizer

#: ``train_forward(batch, step) -> logits [B]``: the step lets a supernet pick its path.
TrainForward = Callable[[Batch, int], torch.Tensor]
#: ``eval_forward(batch) -> logits [B]``.
EvalForward = Callable[[Batch], torch.Tensor]
#: ``train_loss(batch, step) -> scalar loss``: replaces ``train_forward`` and BCE in training.
TrainLoss = Callable[[Batch, int], torch.Tensor]


@dataclass
class TrainState:
    """What the loop knows now; callbacks read it (and may set ``should_stop``).

    Args:
        desc: the run's label (``supernet``, ``train dlrm lr=0.1``).
        total: steps the run is to take.
        step: optimizer steps done (all sessions).
        start: the step this session started at (``> 0`` after a resume).
        rows: training rows seen in all sessions, all ranks.
        session_rows: rows this process saw in this session.
        seconds: wall time of this session.
        prior_seconds: training wall time of the sessions before this one (from the
            checkpoint resumed from).
        loss: the last step's training loss (all ranks' mean).
        loss_ema: its exponential moving average.
        lr: the dense learning rate of the next step.
        val: the last validation result.
        checkpoint_step: the step of the last checkpoint written or resumed from.
        should_stop: set by a callback to end the run after this step.
        stopped_early: whether a callback ended the run before ``total``.
        best_val_logloss: early stopping's lowest validation logloss so far.
        bad_validations: early stopping's validations in a row without a lower one.
    """

    desc: str
    total: int
    step: int = 0
    start: int = 0
    rows: int = 0
    session_rows: int = 0
    seconds: float = 0.0
    prior_seconds: float = 0.0
    loss: float = math.nan
    loss_ema: float = math.nan
    lr: float = 0.0
    val: EvalResult | None = None
    checkpoint_step: int = 0
    should_stop: bool = False
    stopped_early: bool = False
    best_val_logloss: float = math.inf
    bad_validations: int = 0

    @property
    def rows_per_second(self) -> float:
        """This process's training throughput in this session."""
        return self.session_rows / self.seconds if self.seconds > 0 else 0.0


class Callback:
    """Hooks of :class:`Trainer`; each does nothing unless overridden.

    Example::

        class PrintLoss(Callback):
            def on_step(self, state: TrainState) -> None:
                print(state.step, state.loss)
    """

    def on_start(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        """Before the first step; a checkpoint callback restores ``state`` and the weights."""

    def on_step(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        """After each optimizer step (``state.step`` counts it)."""

    def on_validation(self, state: TrainState) -> None:
        """After each validation (``state.val`` holds it)."""

    def on_end(self, state: TrainState, model: nn.Module, optimizer: ModelOptimizer) -> None:
        """After the last step and the final validation."""

    def close(self) -> None:
        """Releases files and bars, whether the run ended or failed."""


@dataclass
class TrainResult:
    """What a training run did: steps, throughput, last loss and validation metrics."""

    steps: int
    rows: int
    seconds: float
    rows_per_second: float
    final_loss: float
    val: EvalResult | None = None
    resumed_from: int = 0
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "rows": self.rows,
            "seconds": self.seconds,
            "rows_per_second": self.rows_per_second,
            "final_loss": self.final_loss,
            "resumed_from": self.resumed_from,
            "stopped_early": self.stopped_early,
            "val": self.val.to_dict() if self.val else None,
        }


def batches_per_epoch(data: Iterable[Batch]) -> int | None:
    """The length of a split, or ``None`` for a stream without one."""
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None


def endless(data: Iterable[Batch], skip: int) -> Iterator[Batch]:
    """The batches of ``data`` epoch after epoch, less the first ``skip``."""
    seen = 0
    while True:
        empty = True
        for batch in data:
            empty = False
            if seen < skip:
                seen += 1
                continue
            yield batch
        if empty:
            raise ValueError("the training split is empty")


class Trainer:
    """Trains a model with BCE-with-logits (or ``train_loss``); callbacks show progress, log,
    checkpoint, stop.

    Args:
        model: the module whose parameters are trained (plain or sharded).
        optimizer: its :class:`~torchrec_nas.train.optim.ModelOptimizer`.
        cfg: loop settings.
        train_forward: ``(batch, step) -> logits`` for training step ``step``.
        eval_forward: ``batch -> logits`` for validation (default: ``train_forward`` at
            step 0).
        desc: label of progress, logs, checkpoints and errors.
        callbacks: see :mod:`torchrec_nas.runtime.callbacks`.
        runtime: the runtime (reduces the loss and shares validation across ranks).
        train_loss: ``(batch, step) -> loss`` replacing ``train_forward`` and BCE in training
            (one backward and one optimizer step of that loss per step), for a supernet
            that trains several paths a step.

    Example::

        trainer = Trainer(model, opt, LoopConfig(steps=100), lambda b, s: model(b))
        result = trainer.fit(data.train, data.val)
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: ModelOptimizer,
        cfg: LoopConfig,
        train_forward: TrainForward,
        eval_forward: EvalForward | None = None,
        desc: str = "train",
        callbacks: Sequence[Callback] = (),
        runtime: Runtime | None = None,
        train_loss: TrainLoss | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.cfg = cfg
        self.train_forward = train_forward
        self.train_loss = train_loss
        self.eval_forward = eval_forward or (lambda batch: train_forward(batch, 0))
        self.desc = desc
        self.callbacks = list(callbacks)
        self.runtime = runtime
        self.device = runtime.device if runtime is not None else None

    def validate(self, val: Iterable[Batch]) -> EvalResult:
        """Metrics of ``eval_forward`` on (this rank's share of) ``val``."""
        self.model.eval()
        limit = self.cfg.eval_batches
        shared = self.runtime.share(val, limit) if self.runtime else Limited(val, limit)
        try:
            return evaluate(self.eval_forward, shared, None, self.device)
        finally:
            self.model.train()

    def _mean(self, loss: torch.Tensor) -> float:
        # One process: no collective (it costs a call per step for nothing).
        if self.runtime is not None and self.runtime.world_size > 1:
            return float(self.runtime.mean(loss.detach()))
        return float(loss.detach())

    def train_step(self, batch: Batch, state: TrainState) -> None:
        """One optimizer step on ``batch``; advances ``state``.

        Raises:
            TrainingDiverged: the loss is not finite (checked before anything is updated).
        """
        if self.device is not None:
            batch = batch.to(self.device)
        if self.train_loss is not None:
            loss = self.train_loss(batch, state.step)
        else:
            logits = self.train_forward(batch, state.step)
            loss = F.binary_cross_entropy_with_logits(logits, batch.labels.float())
        value = self._mean(loss)
        if not math.isfinite(value):
            # Checked before backward: the tables' optimizer updates them during backward.
            raise TrainingDiverged(
                f"{self.desc}: the training loss is {value} at step {state.step + 1}; stopped "
                f"(the last good checkpoint, step {state.checkpoint_step}, is kept); lower "
                "the learning rate or clip gradients"
            )
        loss.backward()
        self.optimizer.step()
        state.step += 1
        state.loss = value
        ema = state.loss_ema
        state.loss_ema = value if math.isnan(ema) else 0.98 * ema + 0.02 * value
        state.session_rows += batch.labels.numel()
        state.rows += batch.labels.numel() * (self.runtime.world_size if self.runtime else 1)
        state.lr = self.optimizer.lr

    def fit(self, train: Iterable[Batch], val: Iterable[Batch] | None = None) -> TrainResult:
        """Trains from the last checkpoint (if a callback restores one) to the end.

        Raises:
            TrainingDiverged: a step's loss is not finite.
            TrainingInterrupted: Ctrl-C; a rerun resumes from ``resume_step``.
        """
        state = TrainState(self.desc, self.cfg.total_steps(batches_per_epoch(train)))
        model, opt = self.model, self.optimizer
        state.lr = opt.lr
        try:
            for cb in self.callbacks:
                cb.on_start(state, model, opt)
            state.start = state.step
            model.train()
            batches = endless(train, skip=state.step)
            validated_at = None
            t0 = time.perf_counter()
            while state.step < state.total and not state.stopped_early:
                self.train_step(next(batches), state)
                state.seconds = time.perf_counter() - t0
                every = self.cfg.eval_every
                if val is not None and every and state.step % every == 0:
                    if state.step < state.total:
                        state.val = self.validate(val)
                        validated_at = state.step
                        for cb in self.callbacks:
                            cb.on_validation(state)
                state.stopped_early = state.should_stop and state.step < state.total
                for cb in self.callbacks:
                    cb.on_step(state, model, opt)
            state.seconds = time.perf_counter() - t0
            if val is not None and validated_at != state.step:  # not again after an early stop
                state.val = self.validate(val)
                for cb in self.callbacks:
                    cb.on_validation(state)
            for cb in self.callbacks:
                cb.on_end(state, model, opt)
        except KeyboardInterrupt as e:
            raise TrainingInterrupted(self.desc, state.checkpoint_step) from e
        finally:
            for cb in self.callbacks:
                cb.close()
        return self._result(state)

    def _result(self, state: TrainState) -> TrainResult:
        # The whole run's throughput: every session's rows over every session's wall time
        # (the slowest rank's), so a resumed or already finished run reports what it took.
        seconds = state.seconds
        if self.runtime is not None and self.runtime.world_size > 1:
            seconds = max(self.runtime.gather(seconds))
        seconds += state.prior_seconds
        return TrainResult(
            steps=state.step,
            rows=state.rows,
            seconds=seconds,
            rows_per_second=state.rows / seconds if seconds > 0 else 0.0,
            final_loss=state.loss,
            val=state.val,
            resumed_from=state.start,
            stopped_early=state.stopped_early,
        )
