"""The cost of weight sharing: the supernet trains a sequence of sampled architectures; each of
the same architectures is also materialized as a fixed model and trained for the same steps on
the same batches, in the same process and threads. Reported: rows/s of both and their ratio."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from itertools import cycle, islice
from typing import Any

import torch
import torch.nn.functional as F
from torchrec.datasets.utils import Batch

from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.stages import build_supernet
from torchrec_nas.train.optim import ModelOptimizer


def _timed_steps(
    model: torch.nn.Module,
    forward: Any,
    batches: list[Batch],
    opt: ModelOptimizer,
) -> float:
    """Seconds for one optimizer step per batch."""
    model.train()
    t0 = time.perf_counter()
    for batch in batches:
        loss = F.binary_cross_entropy_with_logits(forward(batch), batch.labels.float())
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def standalone_forward(model: torch.nn.Module) -> Callable[[Batch, int], torch.Tensor]:
    """The training forward of a model with no path to choose."""

    def forward(batch: Batch, step: int) -> torch.Tensor:
        logits: torch.Tensor = model(batch)
        return logits

    return forward


def weight_sharing_cost(cfg: Config, data: DataSplits) -> dict[str, Any]:
    """Rows/s of the supernet against materialized fixed models on the same architectures.

    Each architecture gets one untimed warm-up step on each side (allocations, caches), then
    ``cfg.bench.sharing_steps`` timed steps on the same batches.
    """
    steps = cfg.bench.sharing_steps
    batches = list(islice(cycle(iter(data.train)), steps + 1))
    rows = sum(b.labels.numel() for b in batches[1:])
    supernet = build_supernet(cfg, data.spec).to(LocalRuntime(cfg.device).device)
    total_steps = steps * cfg.bench.sharing_archs * 2
    super_opt = ModelOptimizer(supernet, cfg.supernet.optimizer, total_steps)
    rng = random.Random(f"{cfg.seed}:bench")
    archs = list(cfg.space.enumerate_samples(rng, cfg.bench.sharing_archs))
    per_arch = []
    super_s = fixed_s = 0.0
    for arch in archs:
        _timed_steps(supernet, lambda b, a=arch: supernet(b, a), batches[:1], super_opt)
        s = _timed_steps(supernet, lambda b, a=arch: supernet(b, a), batches[1:], super_opt)
        fixed = supernet.materialize(arch)
        fixed_opt = ModelOptimizer(fixed, cfg.supernet.optimizer, total_steps)
        _timed_steps(fixed, fixed, batches[:1], fixed_opt)
        f = _timed_steps(fixed, fixed, batches[1:], fixed_opt)
        super_s += s
        fixed_s += f
        per_arch.append(
            {
                "hash": arch.canonical_hash(),
                "supernet_rows_per_s": rows / s,
                "fixed_rows_per_s": rows / f,
            }
        )
    supernet_rps = rows * len(archs) / super_s
    fixed_rps = rows * len(archs) / fixed_s
    return {
        "architectures": len(archs),
        "steps_per_architecture": steps,
        "batch_size": batches[0].labels.numel(),
        "threads": torch.get_num_threads(),
        "supernet_rows_per_s": supernet_rps,
        "fixed_rows_per_s": fixed_rps,
        "ratio": supernet_rps / fixed_rps,
        "per_architecture": per_arch,
    }
