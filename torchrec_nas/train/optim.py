"""Optimizers as in the NASRec reference: Adagrad, cosine schedule with linear warm-up,
gradient-norm clipping; embedding tables updated by TorchRec's fused (in-backward) optimizer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.distributed.optim import _apply_optimizer_in_backward

_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adagrad": torch.optim.Adagrad,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


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

    name: Literal["adagrad", "adam", "sgd"] = "adagrad"
    lr: float = 0.12
    eps: float = 1e-2
    weight_decay: float = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_fraction: float = 0.1
    grad_clip_norm: float | None = 5.0
    sparse_lr: float | None = None
    sparse_name: Literal["adagrad", "adam", "sgd"] | None = None

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")

    def kwargs(self, lr: float, name: str | None = None) -> dict[str, Any]:
        kw: dict[str, Any] = {"lr": lr}
        if (name or self.name) in ("adagrad", "adam"):
            kw["eps"] = self.eps
        return kw


def lr_factor(step: int, total_steps: int, cfg: OptimizerConfig) -> float:
    """Multiplier of the peak learning rate at ``step``: linear warm-up, then cosine or flat."""
    warmup = int(cfg.warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def is_sparse_parameter(name: str) -> bool:
    """Whether a parameter belongs to the embedding tables (TorchRec's sparse arch)."""
    return "embedding_bag_collection" in name or "embedding_bags" in name


class ModelOptimizer:
    """The optimizers of one model: a fused in-backward optimizer for embedding tables (the
    form ``DistributedModelParallel`` fuses into FBGEMM's table-batched kernels), a dense
    optimizer for everything else, the schedule and gradient clipping.

    Args:
        model: the model; its embedding tables get in-backward optimizers now.
        cfg: optimizer settings.
        total_steps: length of the schedule.
        dense_only: parameters to optimize densely instead of the whole model's (for
            fine-tuning only a classifier); no sparse optimizer is attached then.

    Example::

        opt = ModelOptimizer(model, OptimizerConfig(), total_steps=1000)
        loss.backward()
        opt.step()          # clip, step, schedule, zero grads
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: OptimizerConfig,
        total_steps: int,
        dense_only: list[nn.Parameter] | None = None,
    ) -> None:
        self.cfg = cfg
        self.total_steps = max(1, total_steps)
        self.step_count = 0
        cls = _OPTIMIZERS[cfg.name]
        self.sparse_params: list[nn.Parameter] = []
        if dense_only is None:
            dense: list[nn.Parameter] = []
            for name, p in model.named_parameters():
                if not p.requires_grad:
                    continue
                if is_sparse_parameter(name):
                    self.sparse_params.append(p)
                else:
                    dense.append(p)
            sparse_lr = cfg.sparse_lr if cfg.sparse_lr is not None else cfg.lr
            if self.sparse_params:
                fresh = [p for p in self.sparse_params if not hasattr(p, "_in_backward_optimizers")]
                if fresh:
                    sparse_name = cfg.sparse_name or cfg.name
                    _apply_optimizer_in_backward(
                        _OPTIMIZERS[sparse_name], fresh, cfg.kwargs(sparse_lr, sparse_name)
                    )
        else:
            dense = list(dense_only)
        self.dense_params = dense
        kwargs = cfg.kwargs(cfg.lr)
        if cfg.weight_decay:
            kwargs["weight_decay"] = cfg.weight_decay
        self.dense = cls(dense, **kwargs) if dense else None
        self._set_lr()

    def sparse_optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for p in self.sparse_params for o in getattr(p, "_in_backward_optimizers", [])]

    def _set_lr(self) -> None:
        factor = lr_factor(self.step_count, self.total_steps, self.cfg)
        if self.dense is not None:
            for group in self.dense.param_groups:
                group["lr"] = self.cfg.lr * factor
        sparse_lr = self.cfg.sparse_lr if self.cfg.sparse_lr is not None else self.cfg.lr
        for opt in self.sparse_optimizers():
            for group in opt.param_groups:
                group["lr"] = sparse_lr * factor

    @property
    def lr(self) -> float:
        return self.cfg.lr * lr_factor(self.step_count, self.total_steps, self.cfg)

    def step(self) -> None:
        """Clips and applies the dense update, advances the schedule, clears gradients."""
        if self.dense is not None:
            if self.cfg.grad_clip_norm:
                params = [p for p in self.dense_params if p.grad is not None]
                if params:
                    torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip_norm)
            self.dense.step()
            self.dense.zero_grad(set_to_none=True)
        self.step_count += 1
        self._set_lr()

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "dense": self.dense.state_dict() if self.dense is not None else None,
            "sparse": [o.state_dict() for o in self.sparse_optimizers()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        if self.dense is not None and state["dense"] is not None:
            self.dense.load_state_dict(state["dense"])
        sparse = self.sparse_optimizers()
        if len(sparse) != len(state["sparse"]):
            raise ValueError(
                f"checkpoint has {len(state['sparse'])} sparse optimizers, model has {len(sparse)}"
            )
        for opt, s in zip(sparse, state["sparse"]):
            opt.load_state_dict(s)
        self._set_lr()
