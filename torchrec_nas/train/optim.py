"""Optimizers as in the NASRec reference: Adagrad, cosine schedule with linear warm-up,
gradient-norm clipping; embedding tables updated in backward by TorchRec's fused optimizer.

One wrapper serves a plain model and a model under ``DistributedModelParallel``: the tables'
optimizer is either the in-backward optimizers attached by :func:`attach_table_optimizer` or,
once sharded, the model's ``fused_optimizer``; the dense part is a keyed optimizer whose state
is addressed by parameter name, as ``torch.distributed.checkpoint`` needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.distributed.optim import _apply_optimizer_in_backward
from torchrec.distributed.types import ShardedModule
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.optim.keyed import KeyedOptimizer, KeyedOptimizerWrapper

from torchrec_nas.modules.elastic import Region, clear_regions, select_region, used_regions
from torchrec_nas.train.config import OptimizerConfig

__all__ = [
    "OPTIMIZERS",
    "ModelOptimizer",
    "OptimizerConfig",
    "attach_table_optimizer",
    "dense_named_parameters",
    "lr_factor",
    "table_parameters",
]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adagrad": torch.optim.Adagrad,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}

#: The attribute ``_apply_optimizer_in_backward`` sets on a parameter.
_IN_BACKWARD = "_in_backward_optimizers"


def optimizer_kwargs(name: str, lr: float, cfg: OptimizerConfig) -> dict[str, Any]:
    """Constructor arguments of optimizer ``name`` at learning rate ``lr``."""
    kw: dict[str, Any] = {"lr": lr}
    if name in ("adagrad", "adam"):
        kw["eps"] = cfg.eps
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


def _table_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, EmbeddingBagCollection | ShardedModule)]


def table_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of the embedding tables: the parameters of every
    ``EmbeddingBagCollection`` or sharded TorchRec module in ``model``."""
    inside = {id(p) for m in _table_modules(model) for p in m.parameters()}
    return [(n, p) for n, p in model.named_parameters() if id(p) in inside]


def dense_named_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable parameters outside the embedding tables, by name."""
    tables = {id(p) for _, p in table_parameters(model)}
    return {n: p for n, p in model.named_parameters() if p.requires_grad and id(p) not in tables}


def attach_table_optimizer(model: nn.Module, cfg: OptimizerConfig) -> None:
    """Attaches the in-backward optimizer (``cfg.table_optimizer`` at ``cfg.table_lr``) to the
    embedding tables of an unsharded model; ``DistributedModelParallel`` later fuses it into
    FBGEMM's table-batched kernels. Tables that have one already keep it."""
    params = [p for _, p in table_parameters(model) if not hasattr(p, _IN_BACKWARD)]
    if params:
        name = cfg.table_optimizer
        kwargs = optimizer_kwargs(name, cfg.table_lr, cfg)
        _apply_optimizer_in_backward(OPTIMIZERS[name], params, kwargs)


class ModelOptimizer:
    """The optimizers of one model: the embedding tables' (in backward), a dense optimizer for
    everything else, the schedule and gradient clipping.

    Args:
        model: the model, plain or under ``DistributedModelParallel``; a plain model's tables
            get in-backward optimizers now if they have none.
        cfg: optimizer settings.
        total_steps: length of the schedule.
        dense_only: parameters to optimize instead of the whole model's dense ones (for
            fine-tuning only a classifier); the tables are left alone then.
        reduce_gradients: applied to the dense gradients before clipping (a distributed
            job's mean across ranks).

    Example::

        opt = ModelOptimizer(model, OptimizerConfig(), total_steps=1000)
        loss.backward()
        opt.step()          # reduce, clip, step, schedule, zero grads
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: OptimizerConfig,
        total_steps: int,
        dense_only: dict[str, nn.Parameter] | None = None,
        reduce_gradients: Callable[[list[torch.Tensor]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.total_steps = max(1, total_steps)
        self.step_count = 0
        self.reduce_gradients = reduce_gradients
        self.fused: KeyedOptimizer | None = None
        self.table_params: list[tuple[str, nn.Parameter]] = []
        if dense_only is None:
            fused = getattr(model, "fused_optimizer", None)
            if isinstance(fused, KeyedOptimizer):
                self.fused = fused
            else:
                attach_table_optimizer(model, cfg)
                self.table_params = table_parameters(model)
            named = dense_named_parameters(model)
        else:
            named = dict(dense_only)
        self.dense_params = list(named.values())
        kwargs = optimizer_kwargs(cfg.name, cfg.lr, cfg)
        if cfg.weight_decay:
            kwargs["weight_decay"] = cfg.weight_decay
        cls = OPTIMIZERS[cfg.name]
        self.dense = KeyedOptimizerWrapper(named, lambda ps: cls(ps, **kwargs)) if named else None
        # Adagrad without weight decay leaves a weight and its state alone where the gradient
        # is exactly zero, so it may update only the regions the step's subnet used.
        self.sliced = cfg.name == "adagrad" and not cfg.weight_decay and self.dense is not None
        self.set_lr()

    def table_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The tables' in-backward optimizers of a plain model, by parameter name."""
        return {n: o for n, p in self.table_params for o in getattr(p, _IN_BACKWARD, [])}

    def set_lr(self) -> None:
        """Sets every optimizer's learning rate for the current step of the schedule."""
        factor = lr_factor(self.step_count, self.total_steps, self.cfg)
        if self.dense is not None:
            for group in self.dense.param_groups:
                group["lr"] = self.cfg.lr * factor
        table_lr = self.cfg.table_lr * factor
        for opt in self.table_optimizers().values():
            for group in opt.param_groups:
                group["lr"] = table_lr
        if self.fused is not None:
            for group in self.fused.param_groups:
                group["lr"] = table_lr
            # The fused kernels read the learning rate from their param group on zero_grad().
            self.fused.zero_grad()

    @property
    def lr(self) -> float:
        """The dense learning rate of the current step."""
        return self.cfg.lr * lr_factor(self.step_count, self.total_steps, self.cfg)

    def step(self) -> None:
        """Reduces and clips the dense gradients, applies the update, advances the schedule,
        clears gradients."""
        params = [p for p in self.dense_params if p.grad is not None]
        if self.reduce_gradients is not None:
            self.reduce_gradients([p.grad for p in params if p.grad is not None])
        if self.sliced:
            self._sliced_adagrad_step(params)
        else:
            if self.cfg.grad_clip_norm and params:
                torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip_norm)
            if self.dense is not None:
                self.dense.step()
        for p in self.dense_params:
            p.grad = None
            clear_regions(p)
        self.step_count += 1
        self.set_lr()

    @torch.no_grad()
    def _sliced_adagrad_step(self, params: list[nn.Parameter]) -> None:
        """``clip_grad_norm_`` then ``torch.optim.Adagrad.step`` (same arithmetic, same state),
        over only the region of each weight the step used (where the rest of its gradient is
        zero): the whole weight unless its slices were all taken as one region."""
        assert self.dense is not None
        grads = []
        for p in params:
            assert p.grad is not None
            region = single_region(used_regions(p))
            grads.append((p, region, p.grad if region is None else select_region(p.grad, region)))
        if self.cfg.grad_clip_norm and grads:
            norms = [torch.linalg.vector_norm(g, 2.0) for _, _, g in grads]
            total = torch.linalg.vector_norm(torch.stack(norms), 2.0)
            coef = torch.clamp(self.cfg.grad_clip_norm / (total + 1e-6), max=1.0)
            for _, _, g in grads:
                g.mul_(coef)
        group = self.dense.param_groups[0]
        lr, eps, lr_decay = group["lr"], group["eps"], group["lr_decay"]
        for p, region, g in grads:
            state = self.dense.state[p]
            state["step"] += 1
            clr = lr / (1 + (float(state["step"]) - 1) * lr_decay)
            if region is None:
                state["sum"].addcmul_(g, g, value=1)
                p.addcdiv_(g, state["sum"].sqrt().add_(eps), value=-clr)
                continue
            sums = select_region(state["sum"], region)
            sums.addcmul_(g, g, value=1)
            weight = select_region(p, region)
            weight.addcdiv_(g, sums.sqrt().add_(eps), value=-clr)
            assign_region(state["sum"], region, sums)
            assign_region(p, region, weight)

    def init_state(self) -> None:
        """Creates lazily made optimizer state (Adam's) so that a checkpoint can load into it."""
        if self.dense is not None and len(self.dense.state) < len(self.dense_params):
            self.dense.init_state()
            for p in self.dense_params:
                p.grad = None

    def state_dict(self) -> dict[str, Any]:
        """Keyed by parameter name (sharded tensors for a sharded model's tables)."""
        tables: dict[str, Any] = {n: o.state_dict() for n, o in self.table_optimizers().items()}
        if self.fused is not None:
            tables = self.fused.state_dict()
        return {
            "step": self.step_count,
            "dense": self.dense.state_dict() if self.dense is not None else None,
            "sparse": tables,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        self.init_state()
        if self.dense is not None and state["dense"] is not None:
            self.dense.load_state_dict(state["dense"])
        if self.fused is not None:
            self.fused.load_state_dict(state["sparse"])
        else:
            own = self.table_optimizers()
            if set(own) != set(state["sparse"]):
                raise ValueError(
                    f"checkpoint has optimizers for tables {sorted(state['sparse'])}, "
                    f"the model has {sorted(own)}"
                )
            for name, opt in own.items():
                opt.load_state_dict(state["sparse"][name])
        self.set_lr()


def _same_selector(a: int | torch.Tensor | None, b: int | torch.Tensor | None) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a is b or (a.shape == b.shape and bool(torch.equal(a, b)))
    return not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor) and a == b


def single_region(regions: list[Region]) -> Region | None:
    """The one region ``regions`` name, or ``None`` (the whole weight) when there are none or
    they differ."""
    if not regions:
        return None
    first = regions[0]
    for other in regions[1:]:
        if not (_same_selector(first[0], other[0]) and _same_selector(first[1], other[1])):
            return None
    return first


def assign_region(t: torch.Tensor, region: Region, values: torch.Tensor) -> None:
    """Writes ``values`` (what :func:`select_region` gave, updated) back into ``t``; nothing to
    do when that was a view. Indices must not repeat."""
    rows, cols = region
    if not isinstance(rows, torch.Tensor) and not isinstance(cols, torch.Tensor):
        return
    if isinstance(rows, int):
        t = t.narrow(0, 0, rows)
    if isinstance(cols, int):
        t = t.narrow(1, 0, cols)
    if isinstance(rows, torch.Tensor) and isinstance(cols, torch.Tensor):
        t.index_put_((rows.to(t.device).unsqueeze(1), cols.to(t.device)), values)
    elif isinstance(rows, torch.Tensor):
        t.index_copy_(0, rows.to(t.device), values)
    else:
        assert isinstance(cols, torch.Tensor)
        t.index_copy_(1, cols.to(t.device), values)
