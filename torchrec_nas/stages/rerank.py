"""Re-ranking the search's best candidates by short stand-alone training (``search.rerank``).

The supernet's scores decide which few candidates are worth a closer look; a short training of
each from scratch, with the final-training recipe and early stopping, decides which of them is
picked. See :class:`~torchrec_nas.search.config.RerankConfig`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.trainer import batches_per_epoch
from torchrec_nas.search.history import Evaluation, SearchHistory
from torchrec_nas.train.standalone import StandaloneTrainer, standalone_loop


def top_candidates(history: SearchHistory, k: int) -> list[Evaluation]:
    """The ``k`` distinct architectures with the lowest finite scores (within the budgets),
    best first; ties keep the history's order."""
    seen: set[str] = set()
    ranked: list[Evaluation] = []
    for rec in sorted(history, key=lambda r: (r.score, r.index)):
        if not math.isfinite(rec.score) or rec.arch_hash in seen:
            continue
        seen.add(rec.arch_hash)
        ranked.append(rec)
        if len(ranked) == k:
            break
    return ranked


def check_rerank(cfg: Config, out: str | Path, runtime: Runtime) -> Path:
    """The local directory re-ranking caches in; raises ``ValueError`` naming
    ``search.rerank`` where it cannot run (several ranks, a remote ``out``). The search calls
    it before scoring anything, so a bad setting costs no search time."""
    if runtime.world_size > 1:
        raise ValueError("search.rerank: re-ranking trains in one process; set top_k: 0")
    local = storage.local_path(out)
    if local is None:
        raise ValueError(f"search.rerank: {out} is not a local directory; set top_k: 0")
    return local


def rerank(
    cfg: Config, out: str | Path, runtime: Runtime, data: DataSplits, history: SearchHistory
) -> tuple[Evaluation, list[dict[str, Any]]]:
    """Trains the ``search.rerank.top_k`` best candidates stand-alone and returns the one
    with the lowest validation logloss, with one row per candidate (supernet score,
    stand-alone validation and test metrics, costs, seconds).

    Args:
        cfg: the run's config (``search.rerank``, and ``train``'s optimizer).
        out: the run's directory; the cache is ``out/rerank_cache.jsonl`` (local paths only).
        runtime: one process.
        data: the data splits.
        history: the finished search's history.

    Raises:
        ValueError: when no candidate fits the budgets, the run is distributed, or ``out`` is
            not a local directory.

    Example::

        best, rows = rerank(cfg, "runs/demo", LocalRuntime("cpu"), data, history)
    """
    rr = cfg.search.rerank
    local = check_rerank(cfg, out, runtime)
    top = top_candidates(history, rr.top_k)
    if not top:
        raise ValueError("search.rerank: no candidate fits search.objective.budgets")
    loop = standalone_loop(
        cfg, batches_per_epoch(data.train), rr.epochs, rr.eval_every, rr.patience
    )
    trainer = StandaloneTrainer(cfg, data, runtime, local / "rerank_cache.jsonl", loop)
    seed = cfg.seed if rr.seed is None else rr.seed
    rows = []
    for rank, rec in enumerate(top):
        result = trainer(rec.arch, seed)
        rows.append(
            {
                "hash": rec.arch_hash,
                "supernet_rank": rank + 1,
                "supernet_score": rec.score,
                "supernet_metrics": rec.metrics,
                "val": result["val"],
                "test": result["test"],
                "steps": result["steps"],
                "seconds": result["seconds"],
                "costs": rec.costs,
            }
        )
    pick = min(range(len(top)), key=lambda i: (rows[i]["val"]["logloss"], i))
    for i, row in enumerate(rows):
        row["picked"] = i == pick
    return top[pick], rows
