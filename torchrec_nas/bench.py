"""Measurements behind the README's benchmark section.

- ``sharing``: the cost of weight sharing. The supernet trains a sequence of sampled
  architectures; each of the same architectures is also materialized as a fixed model and
  trained for the same steps on the same batches, in the same process and threads. Reported:
  rows/s of both and their ratio.
- ``kendall``: how well supernet-inherited scores rank subnets. Random subnets are scored by
  the trained supernet (inherit weights, fine-tune the classifier) and trained stand-alone from
  scratch; reported: Kendall's tau between the two validation loglosses.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.functional import kendall_rank_corrcoef
from torchrec.datasets.utils import Batch

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.models import NASRecModel, NASRecSubnet
from torchrec_nas.runtime.callbacks import standard_callbacks
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.runtime.trainer import Trainer
from torchrec_nas.search.evaluator import SupernetEvaluator
from torchrec_nas.space import Architecture
from torchrec_nas.stages import build_supernet, load_supernet, run_search, run_supernet
from torchrec_nas.train.checkpoint import write_json_atomic
from torchrec_nas.train.config import LoopConfig
from torchrec_nas.train.metrics import evaluate
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


def ranking_correlation(cfg: Config, data: DataSplits, out: str | Path) -> dict[str, Any]:
    """Kendall's tau between supernet-inherited and stand-alone validation loglosses."""
    supernet_path = storage.join(out, "supernet.pt")
    runtime = LocalRuntime(cfg.device)
    if not storage.exists(supernet_path):
        run_supernet(cfg, out, runtime, data)
    device = runtime.device
    supernet: NASRecModel = load_supernet(cfg, supernet_path, data.spec).to(device)
    evaluator = SupernetEvaluator(
        supernet, data.train, data.val, cfg.search.finetune, device, seed=cfg.seed
    )
    rng = random.Random(f"{cfg.seed}:kendall")
    archs: list[Architecture] = list(cfg.space.enumerate_samples(rng, cfg.bench.kendall_subnets))
    tables = data.spec.tables(cfg.space.embedding_dim)
    loop = LoopConfig(
        steps=cfg.bench.kendall_steps,
        optimizer=cfg.train.optimizer,
        checkpoint_every=0,
        progress=cfg.train.progress,
    )
    inherited, standalone, rows = [], [], []
    for i, arch in enumerate(archs):
        score = evaluator(arch)["logloss"]
        torch.manual_seed(cfg.seed + i)
        model = NASRecSubnet.build(tables, len(data.spec.dense_names), cfg.space, arch).to(device)
        opt = ModelOptimizer(model, loop.optimizer, cfg.bench.kendall_steps)
        callbacks = standard_callbacks(loop, None, None)
        forward = standalone_forward(model)
        Trainer(model, opt, loop, forward, None, f"subnet {i}", callbacks, runtime).fit(data.train)
        model.eval()
        alone = evaluate(model, data.val, cfg.search.finetune.eval_batches, device).logloss
        inherited.append(score)
        standalone.append(alone)
        rows.append(
            {"hash": arch.canonical_hash(), "inherited_logloss": score, "standalone_logloss": alone}
        )
    tau_t = kendall_rank_corrcoef(torch.tensor(inherited), torch.tensor(standalone))
    assert isinstance(tau_t, torch.Tensor)
    tau = float(tau_t)
    return {
        "subnets": len(archs),
        "standalone_steps": cfg.bench.kendall_steps,
        "kendall_tau": tau,
        "per_subnet": rows,
    }


def codesign(cfg: Config, data: DataSplits, out: str | Path) -> dict[str, Any]:
    """PIM energy saved by searching bit widths: the best uniform 8-bit model against the
    cheapest searched model within 0.001 logloss of it (see
    :func:`torchrec_nas.search.codesign.codesign_summary`). Trains the supernet and runs the
    search under ``out`` first if they are missing."""
    from torchrec_nas.hardware.flops import architecture_costs
    from torchrec_nas.search.codesign import codesign_summary
    from torchrec_nas.search.history import SearchHistory

    if not cfg.space.bit_choices:
        raise ValueError("codesign needs a space with bit_choices (see configs/codesign-demo.yaml)")
    runtime = LocalRuntime(cfg.device)
    if not storage.exists(storage.join(out, "supernet.pt")):
        run_supernet(cfg, out, runtime, data)
    run_search(cfg, out, runtime, data)
    device = runtime.device
    supernet = load_supernet(cfg, storage.join(out, "supernet.pt"), data.spec).to(device)
    evaluator = SupernetEvaluator(
        supernet, data.train, data.val, cfg.search.finetune, device, seed=cfg.seed
    )
    tables = data.spec.tables(cfg.space.embedding_dim)
    objective = cfg.search.objective

    def costs(arch: Architecture) -> dict[str, float]:
        return architecture_costs(
            arch, cfg.space, len(data.spec.dense_names), tables, objective.hardware or "isaac"
        )

    history = SearchHistory(storage.join(out, "history.jsonl"))
    return codesign_summary(history, evaluator, costs)


def run_bench(cfg: Config, out: str | Path, only: str | None = None) -> dict[str, Any]:
    """Runs the measurements and writes ``bench.json``.

    Example::

        run_bench(Config.load("configs/demo.yaml"), "runs/bench", only="sharing")
    """
    data = LocalRuntime(cfg.device).data(cfg)
    result: dict[str, Any] = {}
    if only in (None, "sharing"):
        result["weight_sharing"] = weight_sharing_cost(cfg, data)
    if only in (None, "kendall"):
        result["kendall"] = ranking_correlation(cfg, data, out)
    if only == "codesign":
        result["codesign"] = codesign(cfg, data, out)
    name = "bench.json" if only is None else f"bench_{only}.json"
    write_json_atomic(storage.join(out, name), result)
    return result
