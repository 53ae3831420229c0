"""Candidate-scoring throughput: the exact classifier fit against step-by-step fine-tuning.

Run as ``python -m torchrec_nas.search.scoring_bench --config configs/demo.yaml
--supernet runs/demo/supernet.pt --candidates 8``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import time
from typing import Any

import torch
from torchmetrics.functional import kendall_rank_corrcoef

from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.models import NASRecModel
from torchrec_nas.search.evaluator import SupernetEvaluator


def scoring_throughput(
    cfg: Config,
    data: DataSplits,
    supernet: NASRecModel,
    candidates: int = 8,
    reference_steps: int = 500,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Scores the same candidates with the reference (``sgd``, ``reference_steps`` steps) and
    with ``cfg.search.finetune`` (``newton`` where it says ``sgd``), alternating the two, on
    the validation batches the config names.

    Each side's first call builds its caches and is timed with the rest. The ratio of
    candidates per minute is also given per candidate (min, median, max), since other
    processes on the machine slow both sides alike only when they alternate.

    Args:
        cfg: the run's config (its seed, space and ``search.finetune``).
        data: the data splits.
        supernet: the trained supernet.
        candidates: architectures to score, sampled from the space.
        reference_steps: fine-tuning steps of the reference.
        device: where to run.

    Returns:
        candidates per minute of each side, their ratio, the absolute logloss differences
        (max and mean), Kendall's tau between the two sides' loglosses, and per-candidate rows.

    Example::

        result = scoring_throughput(cfg, data, load_supernet(cfg, path, data.spec), 8)
        result["ratio"], result["logloss_diff_max"]
    """
    ft = cfg.search.finetune
    fast_cfg = ft if ft.method != "sgd" else dataclasses.replace(ft, method="newton")
    ref_cfg = dataclasses.replace(ft, method="sgd", steps=reference_steps)
    rng = random.Random(f"{cfg.seed}:scoring")
    archs = [cfg.space.sample(rng) for _ in range(candidates)]
    sides = {
        "reference": SupernetEvaluator(
            supernet, data.train, data.val, ref_cfg, device, seed=cfg.seed
        ),
        "fast": SupernetEvaluator(supernet, data.train, data.val, fast_cfg, device, seed=cfg.seed),
    }
    seconds = {name: 0.0 for name in sides}
    rows: list[dict[str, Any]] = []
    for i, arch in enumerate(archs):
        row: dict[str, Any] = {"hash": arch.canonical_hash()}
        # Alternate which side goes first, so neither always meets a warmer machine.
        for name in sorted(sides, reverse=i % 2 == 1):
            start = time.perf_counter()
            metrics = sides[name](arch)
            elapsed = time.perf_counter() - start
            seconds[name] += elapsed
            row[f"{name}_seconds"] = elapsed
            row[f"{name}_logloss"] = metrics["logloss"]
            row[f"{name}_auc"] = metrics["auc"]
        rows.append(row)
    diffs = [abs(r["fast_logloss"] - r["reference_logloss"]) for r in rows]
    ratios = [r["reference_seconds"] / r["fast_seconds"] for r in rows]
    tau = float("nan")
    if len(rows) > 1:
        ref_t = torch.tensor([r["reference_logloss"] for r in rows])
        fast_t = torch.tensor([r["fast_logloss"] for r in rows])
        tau_t = kendall_rank_corrcoef(ref_t, fast_t)
        assert isinstance(tau_t, torch.Tensor)
        tau = float(tau_t)
    per_minute = {name: 60.0 * len(archs) / max(s, 1e-9) for name, s in seconds.items()}
    return {
        "candidates": len(archs),
        "reference": {"method": "sgd", "steps": reference_steps, "lr": ft.lr},
        "fast": {
            "method": fast_cfg.method,
            "fit_batches": fast_cfg.fit_batches,
            "l2": fast_cfg.l2,
            "max_iter": fast_cfg.max_iter,
            "cache_mb": sides["fast"].cache_bytes() / 2**20,
        },
        "eval_batches": ft.eval_batches,
        "threads": torch.get_num_threads(),
        "reference_candidates_per_minute": per_minute["reference"],
        "fast_candidates_per_minute": per_minute["fast"],
        "ratio": per_minute["fast"] / per_minute["reference"],
        "ratio_per_candidate": {
            "min": min(ratios),
            "median": statistics.median(ratios),
            "max": max(ratios),
        },
        "logloss_diff_max": max(diffs),
        "logloss_diff_mean": sum(diffs) / len(diffs),
        "logloss_mean_fast_minus_reference": sum(
            r["fast_logloss"] - r["reference_logloss"] for r in rows
        )
        / len(rows),
        "kendall_tau": tau,
        "per_candidate": rows,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: prints the result as JSON (and writes it to ``--json``)."""
    from torchrec_nas.runtime.local import LocalRuntime
    from torchrec_nas.stages import load_supernet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", required=True)
    parser.add_argument("--supernet", required=True, help="a trained supernet.pt")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--reference-steps", type=int, default=500)
    parser.add_argument("--fit-batches", type=int, help="overrides search.finetune.fit_batches")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    cfg = Config.load(args.config)
    if args.fit_batches is not None:
        cfg.search.finetune = dataclasses.replace(cfg.search.finetune, fit_batches=args.fit_batches)
    runtime = LocalRuntime(cfg.device)
    data = runtime.data(cfg)
    supernet = load_supernet(cfg, args.supernet, data.spec).to(runtime.device)
    result = scoring_throughput(
        cfg, data, supernet, args.candidates, args.reference_steps, runtime.device
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
