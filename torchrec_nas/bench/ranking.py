"""The ranking benchmark: how well supernet-inherited scores rank subnets trained alone.

Subnets stratified by FLOPs (both extremes included) are scored by the trained supernet
(:class:`~torchrec_nas.search.evaluator.SupernetEvaluator`) and trained stand-alone with the
final-training recipe and early stopping, with several seeds. Reported: Kendall's tau and
Spearman's rho between inherited and stand-alone (mean over seeds) validation loglosses, the
noise ceiling (Kendall's tau between two stand-alone seeds), their ratio, and whether the
stand-alone best lies in the supernet's top quarter.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.bench.selection import stratified_subnets
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.hardware.flops import architecture_costs
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.search.evaluator import SupernetEvaluator
from torchrec_nas.space import Architecture
from torchrec_nas.stages import load_supernet, run_supernet
from torchrec_nas.train.standalone import StandaloneTrainer


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long sequences (ties count for neither side)."""
    n = len(x)
    if n != len(y) or n < 2:
        raise ValueError(f"kendall_tau: need two sequences of equal length >= 2, got {n}, {len(y)}")
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx * dy > 0:
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denom if denom else math.nan


def ranks(x: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    out = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the ranks."""
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return cov / var if var else math.nan


def ranking_summary(
    inherited: Sequence[float], standalone_by_seed: Sequence[Sequence[float]]
) -> dict[str, Any]:
    """The figures of the benchmark from the loglosses (lower is better).

    Args:
        inherited: the supernet's score of each subnet.
        standalone_by_seed: per seed, the stand-alone score of each subnet (same order).

    Returns:
        ``kendall_tau`` and ``spearman`` (inherited against the mean over seeds),
        ``noise_ceiling`` (tau between the first two seeds; ``nan`` with one seed),
        ``tau_over_ceiling``, ``best_in_top_quarter`` (the subnet with the lowest mean
        stand-alone score is among the quarter, rounded up, with the lowest inherited scores)
        and ``best_inherited_rank`` (its rank by inherited score, from 1).

    Example::

        ranking_summary([0.5, 0.6, 0.7], [[0.45, 0.46, 0.47], [0.45, 0.47, 0.46]])
    """
    n = len(inherited)
    mean = [sum(s[i] for s in standalone_by_seed) / len(standalone_by_seed) for i in range(n)]
    tau = kendall_tau(inherited, mean)
    ceiling = (
        kendall_tau(standalone_by_seed[0], standalone_by_seed[1])
        if len(standalone_by_seed) >= 2
        else math.nan
    )
    best = min(range(n), key=lambda i: mean[i])
    order = sorted(range(n), key=lambda i: inherited[i])
    quarter = math.ceil(n / 4)
    return {
        "kendall_tau": tau,
        "spearman": spearman_rho(inherited, mean),
        "noise_ceiling": ceiling,
        "tau_over_ceiling": tau / ceiling if ceiling and ceiling > 0 else math.nan,
        "best_in_top_quarter": best in order[:quarter],
        "best_inherited_rank": order.index(best) + 1,
    }


def benchmark_subnets(cfg: Config, data: DataSplits) -> list[Architecture]:
    """The ``bench.ranking_subnets`` subnets of the benchmark (stratified by FLOPs)."""
    tables = data.spec.tables(cfg.space.embedding_dim)
    dense_in = len(data.spec.dense_names)

    def flops(arch: Architecture) -> float:
        return architecture_costs(arch, cfg.space, dense_in, tables, None)["flops"]

    b = cfg.bench
    return stratified_subnets(cfg.space, flops, b.ranking_subnets, cfg.seed, b.ranking_pool)


def cache_path(cfg: Config, out: str | Path) -> str:
    """``bench.ranking_cache``, or ``OUT/standalone_cache.jsonl``."""
    return cfg.bench.ranking_cache or str(storage.join(out, "standalone_cache.jsonl"))


def standalone_side(cfg: Config, data: DataSplits, out: str | Path) -> dict[str, Any]:
    """Trains (or reads from the cache) every benchmark subnet with every ranking seed.

    Returns:
        ``archs``, ``results`` (per subnet, per seed), ``seeds``, ``seconds`` (training time
        of all results, cached ones included) and ``trained`` (how many this call trained).
    """
    archs = benchmark_subnets(cfg, data)
    seeds = [cfg.seed + k for k in range(cfg.bench.ranking_seeds)]
    alone = StandaloneTrainer(cfg, data, LocalRuntime(cfg.device), cache_path(cfg, out))
    results = [[alone(a, s) for s in seeds] for a in archs]
    seconds = sum(r["seconds"] for per in results for r in per)
    return {
        "archs": archs,
        "results": results,
        "seeds": seeds,
        "seconds": seconds,
        "trained": alone.trained,
    }


def supernet_train_seconds(supernet_path: str | Path) -> float | None:
    """The training seconds ``supernet.json`` beside ``supernet_path`` records (all sessions;
    ``None`` without one)."""
    summary = storage.join(str(supernet_path).rsplit("/", 1)[0], "supernet.json")
    if not storage.exists(summary):
        return None
    seconds: float = json.loads(storage.read_text(summary))["seconds"]
    return seconds


def supernet_scores(
    cfg: Config, data: DataSplits, supernet_path: str | Path, archs: Sequence[Architecture]
) -> tuple[list[dict[str, float]], float]:
    """Each architecture's metrics inherited from the supernet, and the seconds they took."""
    runtime = LocalRuntime(cfg.device)
    supernet = load_supernet(cfg, supernet_path, data.spec).to(runtime.device)
    evaluator = SupernetEvaluator(
        supernet, data.train, data.val, cfg.search.finetune, runtime.device, seed=cfg.seed
    )
    t0 = time.perf_counter()
    scores = [evaluator(a) for a in archs]
    return scores, time.perf_counter() - t0


def ranking_benchmark(
    cfg: Config,
    data: DataSplits,
    out: str | Path,
    supernet_path: str | Path | None = None,
    standalone: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ranking benchmark; trains ``OUT/supernet.pt`` first if it is missing.

    Args:
        cfg: the run's config.
        data: the data splits.
        out: the run's directory.
        supernet_path: the supernet to score with (default ``OUT/supernet.pt``).
        standalone: a :func:`standalone_side` result to reuse.

    Example::

        ranking_benchmark(Config.load("configs/demo.yaml"), data, "runs/demo")
    """
    side = standalone or standalone_side(cfg, data, out)
    archs, results = side["archs"], side["results"]
    if supernet_path is None:
        supernet_path = storage.join(out, "supernet.pt")
        if not storage.exists(supernet_path):
            run_supernet(cfg, out, LocalRuntime(cfg.device), data)
    supernet_seconds = supernet_train_seconds(supernet_path)
    scores, scoring_seconds = supernet_scores(cfg, data, supernet_path, archs)
    inherited = [s["logloss"] for s in scores]
    by_seed = [[per[k]["val"]["logloss"] for per in results] for k in range(len(side["seeds"]))]
    summary = ranking_summary(inherited, by_seed)
    tables = data.spec.tables(cfg.space.embedding_dim)
    dense_in = len(data.spec.dense_names)
    rows = []
    for arch, score, per in zip(archs, scores, results):
        vals = [r["val"]["logloss"] for r in per]
        rows.append(
            {
                "hash": arch.canonical_hash(),
                "flops": architecture_costs(arch, cfg.space, dense_in, tables, None)["flops"],
                "inherited_logloss": score["logloss"],
                "inherited_auc": score["auc"],
                "standalone_logloss": sum(vals) / len(vals),
                "standalone_logloss_by_seed": vals,
                "standalone_auc": sum(r["val"]["auc"] for r in per) / len(per),
                "standalone_steps": [r["steps"] for r in per],
            }
        )
    return {
        "subnets": len(archs),
        "seeds": side["seeds"],
        **summary,
        "standalone_seconds": side["seconds"],
        "standalone_trained_now": side["trained"],
        "supernet_train_seconds": supernet_seconds,
        "supernet_scoring_seconds": scoring_seconds,
        "per_subnet": rows,
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def ranking_markdown(result: dict[str, Any]) -> str:
    """The benchmark as Markdown: the summary line and one row per subnet."""
    r = result
    lines = [
        "| subnets | Kendall tau | noise ceiling | tau / ceiling | Spearman | best in top quarter |",
        "|---|---|---|---|---|---|",
        f"| {r['subnets']} | {r['kendall_tau']:.3f} | {r['noise_ceiling']:.3f} | "
        f"{r['tau_over_ceiling']:.2f} | {r['spearman']:.3f} | "
        f"{'yes' if r['best_in_top_quarter'] else 'no'} (rank {r['best_inherited_rank']}) |",
        "",
        f"Stand-alone side {r['standalone_seconds']:.0f} s, supernet scoring "
        f"{r['supernet_scoring_seconds']:.0f} s (supernet training "
        f"{_seconds(r['supernet_train_seconds'])} s).",
        "",
        "| subnet | MFLOPs | inherited logloss | stand-alone logloss (mean) | per seed |",
        "|---|---|---|---|---|",
    ]
    for row in r["per_subnet"]:
        seeds = ", ".join(f"{v:.4f}" for v in row["standalone_logloss_by_seed"])
        lines.append(
            f"| {row['hash'][:8]} | {row['flops'] / 1e6:.3f} | {row['inherited_logloss']:.4f} | "
            f"{row['standalone_logloss']:.4f} | {seeds} |"
        )
    return "\n".join(lines) + "\n"
