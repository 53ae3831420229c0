"""The optimizers of a sharded model: TorchRec's fused optimizer for the embedding shards, a
keyed dense optimizer for the rest, with the schedule and clipping of the one-process
:class:`~torchrec_nas.train.optim.ModelOptimizer`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.optim import _apply_optimizer_in_backward
from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper

from torchrec_nas.distributed.context import all_reduce_mean
from torchrec_nas.distributed.sharding import dense_parameters
from torchrec_nas.train.optim import _OPTIMIZERS, OptimizerConfig, is_sparse_parameter, lr_factor


def apply_sparse_optimizer(model: nn.Module, cfg: OptimizerConfig) -> None:
    """Attaches the in-backward optimizer to the embedding tables of an unsharded model, which
    ``DistributedModelParallel`` then fuses into FBGEMM's table-batched kernels."""
    sparse_lr = cfg.sparse_lr if cfg.sparse_lr is not None else cfg.lr
    params = [
        p
        for n, p in model.named_parameters()
        if is_sparse_parameter(n) and not hasattr(p, "_in_backward_optimizers")
    ]
    if params:
        _apply_optimizer_in_backward(_OPTIMIZERS[cfg.name], params, cfg.kwargs(sparse_lr))


class ShardedModelOptimizer:
    """:class:`~torchrec_nas.train.optim.ModelOptimizer`'s counterpart for a model under
    ``DistributedModelParallel``.

    Embedding shards are updated in backward by TorchRec's fused optimizer (``dmp.fused_
    optimizer``); the dense parameters by the configured optimizer after their gradients are
    averaged across ranks (``dense_sync: allreduce``; under ``ddp`` DDP did it in backward).
    Only gradients that exist are reduced: every rank trains the same subnet, so they are the
    same set everywhere. Learning-rate schedule and clipping are the one-process ones.

    Args:
        dmp: the sharded model.
        cfg: optimizer settings.
        total_steps: length of the schedule.
        allreduce: average dense gradients across ranks in :meth:`step`.

    Example::

        opt = ShardedModelOptimizer(sharded.dmp, OptimizerConfig(), total_steps=1000)
        loss.backward()
        opt.step()
    """

    def __init__(
        self, dmp: nn.Module, cfg: OptimizerConfig, total_steps: int, allreduce: bool = True
    ) -> None:
        self.cfg = cfg
        self.total_steps = max(1, total_steps)
        self.step_count = 0
        self.allreduce = allreduce
        dense_ids = {id(p) for p in dense_parameters(dmp)}
        named = {n: p for n, p in dmp.named_parameters() if id(p) in dense_ids and p.requires_grad}
        self.dense_params = list(named.values())
        kwargs = cfg.kwargs(cfg.lr)
        if cfg.weight_decay:
            kwargs["weight_decay"] = cfg.weight_decay
        cls = _OPTIMIZERS[cfg.name]
        self.dense = KeyedOptimizerWrapper(named, lambda ps: cls(ps, **kwargs))
        fused = getattr(dmp, "fused_optimizer", None)
        self.sparse = fused if isinstance(fused, CombinedOptimizer) else None
        self.keyed = CombinedOptimizer(
            [("dense", self.dense)] + ([("sparse", self.sparse)] if self.sparse else [])
        )
        self._set_lr()

    def _set_lr(self) -> None:
        factor = lr_factor(self.step_count, self.total_steps, self.cfg)
        for group in self.dense.param_groups:
            group["lr"] = self.cfg.lr * factor
        if self.sparse is not None:
            sparse_lr = self.cfg.sparse_lr if self.cfg.sparse_lr is not None else self.cfg.lr
            for group in self.sparse.param_groups:
                group["lr"] = sparse_lr * factor
            # The fused kernels read the learning rate from their param group on zero_grad().
            self.sparse.zero_grad()

    @property
    def lr(self) -> float:
        return self.cfg.lr * lr_factor(self.step_count, self.total_steps, self.cfg)

    def step(self) -> None:
        """Averages dense gradients across ranks, clips, steps, advances the schedule."""
        params = [p for p in self.dense_params if p.grad is not None]
        if self.allreduce:
            all_reduce_mean([p.grad for p in params if p.grad is not None])
        if self.cfg.grad_clip_norm and params:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip_norm)
        self.dense.step()
        for p in self.dense_params:
            p.grad = None
        self.step_count += 1
        self._set_lr()

    def state_dict(self) -> dict[str, Any]:
        """Keyed by parameter name (sharded tensors for the embedding shards' state), as
        ``torch.distributed.checkpoint`` needs."""
        return {"step": self.step_count, "keyed": self.keyed.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        self.keyed.load_state_dict(state["keyed"])
        self._set_lr()

    def init_state(self) -> None:
        """Creates lazily made optimizer state (Adam's) so that a checkpoint can load into it."""
        if len(self.dense.state) < len(self.dense_params):
            self.dense.init_state()
            for p in self.dense_params:
                p.grad = None
