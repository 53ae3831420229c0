"""Pruned models against the best searched architecture of the same FLOPs."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.prune.options import PruneOptions
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.search.history import Evaluation, SearchHistory
from torchrec_nas.space import Architecture
from torchrec_nas.stages.spread import aggregate_seeds, beyond_spread


def best_searched(evaluations: list[Evaluation], max_flops: float) -> Evaluation | None:
    """The best-scored (lowest score) evaluated candidate with at most ``max_flops``."""
    fitting = [
        e
        for e in evaluations
        if math.isfinite(e.score) and e.costs.get("flops", math.inf) <= max_flops
    ]
    return min(fitting, key=lambda e: (e.score, e.index)) if fitting else None


def final_results(model_path: str | Path) -> dict[str, Any]:
    """The ``nasrec`` entry of the final training's ``results.json`` beside ``model_path``
    (empty where there is none).

    Example::

        final_results("runs/demo/train/model_nasrec.pt").get("lr")   # the chosen dense lr
    """
    path = storage.join(storage.parent(str(model_path)), "results.json")
    if not storage.exists(path):
        return {}
    entry: dict[str, Any] = json.loads(storage.read_text(path)).get("nasrec", {})
    return entry


def trained_results(model_path: str | Path) -> dict[str, dict[str, float]]:
    """Test metrics of architectures already trained stand-alone in the model's run
    (``train/results.json``), by canonical hash."""
    path = storage.join(storage.parent(str(model_path)), "results.json")
    known = {}
    entry = final_results(model_path)
    if "architecture" in entry and "test" in entry:
        arch = Architecture.from_dict(entry["architecture"], path)
        known[arch.canonical_hash()] = entry["test"]
    return known


def rival_steps(
    options: PruneOptions, model_path: str | Path, rounds: int, per_round: int
) -> int | None:
    """Training steps of a rival whose pruned models had ``rounds`` fine-tunings of
    ``per_round`` steps (``None``: the config's final training length)."""
    if options.rival_steps is None:
        return None
    if options.rival_steps != "equal":
        return int(options.rival_steps)
    trained = int(final_results(model_path).get("train", {}).get("steps", 0))
    return trained + rounds * per_round


def _train_rival(
    cfg: Config,
    arch: Architecture,
    arch_hash: str,
    steps: int | None,
    seeds: list[int],
    out: str,
    runtime: Runtime,
    data: DataSplits,
) -> dict[str, Any]:
    """Trains ``arch`` with the final recipe, each of ``seeds`` (``steps`` steps each, else the
    config's length), resuming under ``out/searched_<hash>[_<steps>]``; returns the first
    seed's test metrics, the per-seed rows and their mean and std."""
    from torchrec_nas.stages.train import train_final

    one = copy.copy(cfg)
    baselines = dataclasses.replace(cfg.train.baselines, models=[])
    loop = dataclasses.replace(cfg.train, seeds=seeds, baselines=baselines, progress=False)
    if steps is not None:
        loop = dataclasses.replace(loop, steps=steps)
    one.train = loop
    run = storage.join(out, f"searched_{arch_hash[:12]}" + (f"_{steps}" if steps else ""))
    entry = train_final(one, run, arch, data, runtime)["nasrec"]
    return {
        "test": entry["test"],
        "seeds": [{"seed": r["seed"], "test": r["test"]} for r in entry["seeds"]],
        "test_seeds": entry["test_seeds"],
        "steps": entry["train"]["steps"],
    }


def verdicts(result: dict[str, Any], target: float, rival: dict[str, Any]) -> dict[str, Any]:
    """Per method: the plain winner on mean test AUC, the difference and whether it exceeds
    the spread over seeds."""
    out = {}
    for row in result["summary"]:
        if row["target"] != target:
            continue
        ours, theirs = row["test_seeds"]["auc"], rival["test_seeds"]["auc"]
        beyond = beyond_spread(ours, theirs)
        diff = ours["mean"] - theirs["mean"]
        winner = "pruned" if diff > 0 else "searched"
        out[row["method"]] = {
            "winner": winner,
            "difference": diff,
            "beyond_spread": beyond,
            "verdict": winner if beyond else "within the spread",
        }
    return out


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
    """For each target, a rival of at most its FLOPs: the best searched candidate, else (with
    ``options.compare_searched``) a sampled architecture of the space
    (:func:`~torchrec_nas.prune.rivals.sampled_rival`; with ``options.sampled_rivals`` as
    well as the searched one, in ``rows[i]["rivals"]``); its test metrics over
    ``result["seeds"]`` (the run's final training's when it trained that architecture with
    one seed and the config's length; else trained now when ``options.compare_searched``),
    and per method the winner on mean test AUC and whether the difference exceeds the
    spread (:func:`~torchrec_nas.stages.spread.beyond_spread`)."""
    from torchrec_nas.prune.rivals import sampled_rival

    history = options.history or storage.join(
        storage.parent(storage.parent(str(model_path))), "history.jsonl"
    )
    found = storage.exists(history)
    evaluations = list(SearchHistory(history)) if found else []
    seeds = result["seeds"]
    known = trained_results(model_path) if len(seeds) == 1 else {}
    rows = []
    for k, target in enumerate(options.targets):
        budget = target * base_flops
        steps = rival_steps(options, model_path, (k + 1) * options.steps, result["finetune_steps"])
        best = best_searched(evaluations, budget)
        row: dict[str, Any] = {"target": target, "max_flops": budget, "candidate": None}
        rivals: list[dict[str, Any]] = []
        if best is not None:
            rivals.append(
                {
                    "source": "search",
                    "how": "the best-scored searched candidate at or below the target",
                    "hash": best.arch_hash,
                    "flops": best.costs.get("flops"),
                    "search_metrics": best.metrics,
                    "architecture": best.arch,
                }
            )
        if options.compare_searched and (best is None or options.sampled_rivals):
            sampled = sampled_rival(cfg, model_path, budget, options.rival_samples, runtime, data)
            if sampled is not None:
                rivals.append(
                    {
                        "source": "sampled",
                        "how": sampled.how,
                        "hash": sampled.arch_hash,
                        "flops": sampled.flops,
                        "search_metrics": sampled.metrics,
                        "architecture": sampled.arch,
                    }
                )
        for cand in rivals:
            arch = cand.pop("architecture")
            cand["architecture"] = arch.to_dict()
            cand["test"] = None
            test = known.get(cand["hash"]) if steps is None else None
            if test is not None:
                cand.update(test=test, seeds=[{"seed": seeds[0], "test": test}])
                cand["test_seeds"] = aggregate_seeds([test])  # one seed: std nan
            elif options.compare_searched:
                cand.update(_train_rival(cfg, arch, cand["hash"], steps, seeds, out, runtime, data))
            if cand["test"] is not None:
                cand["verdict"] = verdicts(result, target, cand)
        if rivals:
            # The first rival (the search's where it has one) answers the row.
            row["candidate"] = rivals[0]
            row["rivals"] = rivals
            if "verdict" in rivals[0]:
                row["verdict"] = rivals[0]["verdict"]
                row["winner"] = {m: v["winner"] for m, v in row["verdict"].items()}
        rows.append(row)
    return {"history": history, "found": found, "rows": rows}
