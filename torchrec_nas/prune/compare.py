"""Pruned models against the best searched architecture of the same FLOPs."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.prune.options import PruneOptions
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.search.history import Evaluation, SearchHistory


def best_searched(evaluations: list[Evaluation], max_flops: float) -> Evaluation | None:
    """The best-scored (lowest score) evaluated candidate with at most ``max_flops``."""
    fitting = [
        e
        for e in evaluations
        if math.isfinite(e.score) and e.costs.get("flops", math.inf) <= max_flops
    ]
    return min(fitting, key=lambda e: (e.score, e.index)) if fitting else None


def trained_results(model_path: str | Path) -> dict[str, dict[str, float]]:
    """Test metrics of architectures already trained stand-alone in the model's run
    (``train/results.json``), by canonical hash."""
    from torchrec_nas.space import Architecture

    path = storage.join(storage.parent(str(model_path)), "results.json")
    if not storage.exists(path):
        return {}
    import json

    results = json.loads(storage.read_text(path))
    known = {}
    entry = results.get("nasrec", {})
    if "architecture" in entry and "test" in entry:
        arch = Architecture.from_dict(entry["architecture"], path)
        known[arch.canonical_hash()] = entry["test"]
    return known


def _train_searched(
    cfg: Config, evaluation: Evaluation, out: str, runtime: Runtime, data: DataSplits
) -> dict[str, float]:
    from torchrec_nas.stages.train import train_final

    one = copy.copy(cfg)
    baselines = dataclasses.replace(cfg.train.baselines, models=[])
    one.train = dataclasses.replace(cfg.train, seeds=[], baselines=baselines, progress=False)
    run = storage.join(out, f"searched_{evaluation.arch_hash[:12]}")
    results = train_final(one, run, evaluation.arch, data, runtime)
    test: dict[str, float] = results["nasrec"]["test"]
    return test


def compare_searched(
    cfg: Config,
    model_path: str | Path,
    out: str,
    base_flops: float,
    options: PruneOptions,
    result: dict[str, Any],
    runtime: Runtime,
    data: DataSplits,
) -> dict[str, Any]:
    """For each target, the best searched candidate at or below its FLOPs, its test metrics
    (from the run's final training if it was trained there; else trained now with the final
    recipe and one seed when ``options.compare_searched``) and which wins on test AUC against
    each method's pruned model."""
    history = options.history or storage.join(
        storage.parent(storage.parent(str(model_path))), "history.jsonl"
    )
    if not storage.exists(history):
        return {"history": history, "found": False, "rows": []}
    evaluations = list(SearchHistory(history))
    known = trained_results(model_path)
    rows = []
    for target in options.targets:
        budget = target * base_flops
        best = best_searched(evaluations, budget)
        row: dict[str, Any] = {"target": target, "max_flops": budget, "candidate": None}
        if best is not None:
            test = known.get(best.arch_hash)
            if test is None and options.compare_searched:
                test = known[best.arch_hash] = _train_searched(cfg, best, out, runtime, data)
            row["candidate"] = {
                "hash": best.arch_hash,
                "flops": best.costs.get("flops"),
                "search_metrics": best.metrics,
                "test": test,
                "architecture": best.arch.to_dict(),
            }
            winners = {}
            for entry in result["pruned"]:
                if entry["target"] == target and test is not None:
                    pruned_auc = entry["test"]["auc"]
                    winners[entry["method"]] = "pruned" if pruned_auc > test["auc"] else "searched"
            row["winner"] = winners
        rows.append(row)
    return {"history": history, "found": True, "rows": rows}
