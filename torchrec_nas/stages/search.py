"""Stage 2: search architectures with the trained supernet."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.distributed.checkpoint import DistributedCheckpointer
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.default import default_runtime
from torchrec_nas.search.evolution import make_strategy
from torchrec_nas.search.history import Evaluation, SearchHistory
from torchrec_nas.search.joint import memory_front
from torchrec_nas.search.provenance import search_provenance
from torchrec_nas.space import Architecture
from torchrec_nas.stages.rerank import check_rerank, objective_costs, rerank, resolve_budgets
from torchrec_nas.stages.supernet import candidate_evaluator, check_not_at_chance, trained_supernet
from torchrec_nas.train.checkpoint import write_json_atomic


def replicated_history(
    path: str | Path, runtime: Runtime, provenance: dict[str, str] | None = None
) -> SearchHistory:
    """The search history: the primary rank reads and appends to ``path`` (refusing a history
    whose ``provenance`` differs); the other ranks hold the same records in memory (sent by
    the primary), so every rank's strategy resumes identically."""
    history = SearchHistory(path if runtime.is_primary else None, provenance)
    if runtime.world_size > 1:
        records = runtime.broadcast([r.to_dict() for r in history] if runtime.is_primary else [])
        if not runtime.is_primary:
            for i, rec in enumerate(records):
                history.append(Evaluation.from_dict(rec, f"{path} (from rank 0), record {i}"))
    return history


def supernet_source(cfg: Config, out: str | Path, runtime: Runtime) -> str:
    """What the search's scores come from: ``supernet.pt``, or else the supernet stage's
    sharded checkpoints (a job that did not export the whole model)."""
    full = storage.join(out, "supernet.pt")
    if not storage.isfile(full):
        checkpointer = runtime.checkpointer(cfg, out, "supernet")
        if isinstance(checkpointer, DistributedCheckpointer):
            return checkpointer.root
    return full


def spread_warning(history: SearchHistory) -> str | None:
    """A line when the candidates' validation loglosses span less than their noise, else
    ``None``.

    The noise scale is two standard errors of a mean logloss over the scored rows, taking the
    per-row loss's spread to be the label entropy ``H`` (a model near chance): ``2 H /
    sqrt(rows)``. Rough, but a search whose candidates all lie within it ranked noise.
    """
    scored = [e.metrics for e in history if math.isfinite(e.metrics.get("logloss", math.nan))]
    if len(scored) < 2:
        return None
    losses = [m["logloss"] for m in scored]
    rows = min(int(m.get("rows", 0)) for m in scored)
    ctr = sum(m.get("ctr", math.nan) for m in scored) / len(scored)
    if rows < 1 or not 0.0 < ctr < 1.0:
        return None
    entropy = -(ctr * math.log(ctr) + (1 - ctr) * math.log(1 - ctr))
    noise = 2 * entropy / math.sqrt(rows)
    spread = max(losses) - min(losses)
    if spread >= noise:
        return None
    return (
        f"search: the {len(losses)} candidates' validation loglosses span {spread:.4f}, less "
        f"than their noise (about {noise:.4f} on {rows:,} rows): the ranking is noise; train "
        "the supernet longer or on more data, or score on more validation rows"
    )


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

    Refuses a supernet at chance (``supernet.json``'s ``at_chance``) unless
    ``cfg.search.allow_chance``. When the candidates' scores span less than their noise,
    ``search.json`` gets a ``warning`` (also printed). With ``search.rerank`` the best few
    candidates (and the space's baselines, and mutants of the best) are trained stand-alone
    briefly and the best of them by validation is picked
    (``search.json``'s ``rerank`` rows; see :mod:`torchrec_nas.stages.rerank`).

    Args:
        cfg: the run's config.
        out: the run's directory (a local path or URL, with ``supernet.pt``).
        runtime: one process (default) or a rank of a sharded job.
        data: this rank's data (default: built from ``cfg.data``).

    Example::

        summary = run_search(cfg, "runs/demo")
    """
    check_not_at_chance(cfg, out)
    runtime = runtime or default_runtime(cfg)
    if cfg.search.rerank.enabled:
        check_rerank(cfg, out, runtime)
    data = data or runtime.data(cfg)
    costs = objective_costs(cfg, data.spec)
    # Budgets naming a baseline (flops: dcn) become numbers, before the supernet is loaded.
    cfg = resolve_budgets(cfg, costs)
    objective = cfg.search.objective
    evaluator = candidate_evaluator(cfg, trained_supernet(cfg, out, runtime, data), data, runtime)

    def score(arch: Architecture) -> dict[str, float]:
        # Reduced metrics agree across ranks already; the primary's copy makes them
        # bit-identical, so no rank's strategy drifts.
        return runtime.broadcast(evaluator(arch))

    provenance = None
    if runtime.is_primary:
        provenance = search_provenance(cfg, data.spec, supernet_source(cfg, out, runtime))
    history = replicated_history(storage.join(out, "history.jsonl"), runtime, provenance)
    # With space.embedding_widths, every candidate also carries one width per feature,
    # capped at its table's rows unless embedding_search.cap_at_rows is off.
    spec = data.spec
    rows = dict(zip(spec.sparse_names, spec.num_embeddings))
    features = rows if cfg.embedding_search.cap_at_rows else spec.sparse_names
    strategy = make_strategy(cfg.space, cfg.search, cfg.seed, features)
    progress = cfg.search.progress and runtime.is_primary
    best = strategy.run(score, history, costs, objective, progress)
    reranked: list[dict[str, Any]] | None = None
    if cfg.search.rerank.enabled:
        best, reranked = rerank(cfg, out, runtime, data, history, costs)
    summary: dict[str, Any] = {
        "best": best.to_dict(),
        "candidates": len(history),
        "evaluated": history.evaluated,
        "cache_hits": len(history) - history.evaluated,
        "strategy": cfg.search.strategy,
        "world_size": runtime.world_size,
    }
    if reranked is not None:
        summary["rerank"] = reranked
    if cfg.space.embedding_widths:  # the joint search: logloss against embedding memory
        summary["pareto_memory"] = memory_front(history)
    warning = spread_warning(history)
    if warning is not None:
        summary["warning"] = warning
    if runtime.is_primary:
        if warning is not None:
            print(warning, file=sys.stderr, flush=True)
        write_json_atomic(storage.join(out, "best_arch.json"), best.to_dict())
        write_json_atomic(storage.join(out, "search.json"), summary)
    runtime.barrier()
    return summary
