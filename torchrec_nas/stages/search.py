"""Stage 2: search architectures with the trained supernet."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.hardware.flops import architecture_costs
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.default import default_runtime
from torchrec_nas.search.evaluator import SupernetEvaluator
from torchrec_nas.search.evolution import make_strategy
from torchrec_nas.search.history import Evaluation, SearchHistory
from torchrec_nas.space import Architecture
from torchrec_nas.stages.supernet import trained_supernet, unwrap_supernet
from torchrec_nas.train.checkpoint import write_json_atomic


def replicated_history(path: Path, runtime: Runtime) -> SearchHistory:
    """The search history: the primary rank reads and appends to ``path``; the other ranks
    hold the same records in memory (sent by the primary), so every rank's strategy resumes
    identically."""
    history = SearchHistory(path if runtime.is_primary else None)
    if runtime.world_size > 1:
        records = runtime.broadcast([r.to_dict() for r in history] if runtime.is_primary else [])
        if not runtime.is_primary:
            for i, rec in enumerate(records):
                history.append(Evaluation.from_dict(rec, f"{path} (from rank 0), record {i}"))
    return history


def run_search(
    cfg: Config,
    out: str | Path,
    runtime: Runtime | None = None,
    data: DataSplits | None = None,
) -> dict[str, Any]:
    """Searches with the trained supernet; appends to ``history.jsonl`` (resuming), writes
    ``best_arch.json`` and ``search.json``.

    On several ranks every rank runs the same (deterministic) strategy; each candidate is
    fine-tuned and scored on all ranks' shards (gradients and metrics reduced), and the
    primary rank alone writes.

    Args:
        cfg: the run's config.
        out: the run's directory (with ``supernet.pt``).
        runtime: one process (default) or a rank of a sharded job.
        data: this rank's data (default: built from ``cfg.data``).

    Example::

        summary = run_search(cfg, "runs/demo")
    """
    runtime = runtime or default_runtime(cfg)
    out = Path(out)
    data = data or runtime.data(cfg)
    model = unwrap_supernet(runtime, trained_supernet(cfg, out, runtime, data))
    ft = cfg.search.finetune
    evaluator = SupernetEvaluator(
        model,
        data.train,
        runtime.share(data.val, ft.eval_batches),
        dataclasses.replace(ft, eval_batches=None),
        runtime.device,
        reduce_gradients=runtime.gradient_reducer,
    )

    def score(arch: Architecture) -> dict[str, float]:
        # Reduced metrics agree across ranks already; the primary's copy makes them
        # bit-identical (and its wall time the one recorded), so no rank's strategy drifts.
        return runtime.broadcast(evaluator(arch))

    tables = data.spec.tables(cfg.space.embedding_dim)
    dense_in = len(data.spec.dense_names)
    objective = cfg.search.objective

    def costs(arch: Architecture) -> dict[str, float]:
        return architecture_costs(
            arch, cfg.space, dense_in, tables, objective.hardware, objective.embedding_mode
        )

    history = replicated_history(out / "history.jsonl", runtime)
    strategy = make_strategy(cfg.space, cfg.search, cfg.seed)
    progress = cfg.search.progress and runtime.is_primary
    best = strategy.run(score, history, costs, objective, progress)
    summary = {
        "best": best.to_dict(),
        "candidates": len(history),
        "evaluated": history.evaluated,
        "cache_hits": len(history) - history.evaluated,
        "strategy": cfg.search.strategy,
        "world_size": runtime.world_size,
    }
    if runtime.is_primary:
        write_json_atomic(out / "best_arch.json", best.to_dict())
        write_json_atomic(out / "search.json", summary)
    runtime.barrier()
    return summary
