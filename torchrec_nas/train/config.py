"""Settings of a training run (torch-free): the optimizer and the loop around it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

OptimizerName = Literal["adagrad", "adam", "sgd"]


@dataclass
class OptimizerConfig:
    """Optimizer settings (defaults: the NASRec reference).

    Args:
        name: ``adagrad``, ``adam`` or ``sgd`` (dense and sparse parameters alike).
        lr: peak learning rate.
        eps: the optimizer's epsilon (Adagrad, Adam).
        weight_decay: L2 penalty on dense parameters.
        schedule: ``cosine`` (to 0 after warm-up) or ``constant``.
        warmup_fraction: share of the steps with a linear warm-up from 0.
        grad_clip_norm: clip the dense gradients' total norm (``null`` for none).
        sparse_lr: learning rate of the embedding tables (default: ``lr``).
        sparse_name: optimizer of the embedding tables (default: ``name``), for example
            ``adagrad`` for the tables and ``adam`` for the dense layers.
    """

    name: OptimizerName = "adagrad"
    lr: float = 0.12
    eps: float = 1e-2
    weight_decay: float = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_fraction: float = 0.1
    grad_clip_norm: float | None = 5.0
    sparse_lr: float | None = None
    sparse_name: OptimizerName | None = None

    def validate(self) -> None:
        for name, value in (("lr", self.lr), ("sparse_lr", self.sparse_lr)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")

    @property
    def table_lr(self) -> float:
        """The embedding tables' peak learning rate."""
        return self.sparse_lr if self.sparse_lr is not None else self.lr

    @property
    def table_optimizer(self) -> OptimizerName:
        """The embedding tables' optimizer."""
        return self.sparse_name or self.name


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
        early_stopping_patience: stop after this many validations in a row without a lower
            validation logloss (0: never; needs ``eval_every``).
        early_stopping_min_fraction: early stopping may end a run only once this share of
            its steps is done (validations before count toward the best logloss); a loss that
            rises while the learning rate warms up to its peak does not end the run.
        tensorboard: also write the log as TensorBoard events under ``<stage>/tensorboard``
            (skipped with a warning when ``tensorboard`` is not installed).
    """

    epochs: float = 1.0
    steps: int | None = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    eval_every: int = 0
    eval_batches: int | None = None
    checkpoint_every: int = 500
    log_every: int = 20
    progress: bool = True
    early_stopping_patience: int = 0
    early_stopping_min_fraction: float = 0.0
    tensorboard: bool = False

    #: Subclasses whose ``epochs: null`` means a budget that follows the data set this.
    epochs_may_be_null: ClassVar[bool] = False

    def validate(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        epochs: float | None = self.epochs
        if epochs is None and not self.epochs_may_be_null:
            raise ValueError("epochs must be positive, got null")
        if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
            raise ValueError(f"epochs must be positive, got {epochs}")
        if self.early_stopping_patience < 0:
            raise ValueError("early_stopping_patience must be >= 0")
        if self.early_stopping_patience and not self.eval_every:
            raise ValueError("early_stopping_patience needs eval_every (validations to compare)")
        if not 0.0 <= self.early_stopping_min_fraction < 1.0:
            raise ValueError(
                f"early_stopping_min_fraction must be in [0, 1), got "
                f"{self.early_stopping_min_fraction}"
            )

    def total_steps(self, batches_per_epoch: int | None) -> int:
        """Length of the run: ``steps``, or ``epochs`` passes of ``batches_per_epoch``."""
        if self.steps is not None:
            return self.steps
        if not batches_per_epoch:
            raise ValueError("the training split's length is unknown: set `steps` in the config")
        return max(1, int(self.epochs * batches_per_epoch))
