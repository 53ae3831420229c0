"""Evolution against random search (``bench --only search``).

For each of ``bench.search_seeds``, regularized evolution (``cfg.search``) and random search
score candidates with the same trained supernet; random search gets as many scored candidates
as evolution evaluated. Each strategy's pick (best by ``search.objective``) is trained
stand-alone with the final recipe (through the ranking benchmark's cache), and the strategies
are compared by mean ± std over search seeds with the spread rule of
:mod:`torchrec_nas.stages.spread`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from torchrec_nas import storage
from torchrec_nas.bench.ranking import cache_path
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.search.evaluator import SupernetEvaluator
from torchrec_nas.search.evolution import RandomSearch, RegularizedEvolution
from torchrec_nas.search.history import SearchHistory
from torchrec_nas.search.provenance import search_provenance
from torchrec_nas.space import Architecture
from torchrec_nas.stages import load_supernet, run_supernet
from torchrec_nas.stages.rerank import objective_costs, resolve_budgets
from torchrec_nas.stages.spread import SPREAD_RULE, beyond_spread, mean_std
from torchrec_nas.train.standalone import StandaloneTrainer

STRATEGIES = ("evolution", "random")
METRICS = ("test_auc", "test_logloss", "val_auc", "val_logloss")


def search_comparison(cfg: Config, data: DataSplits, out: str | Path) -> dict[str, Any]:
    """Runs both strategies for each search seed under ``OUT/bench_search`` (resuming their
    histories) and trains their picks stand-alone (seed ``cfg.seed``).

    Example::

        search_comparison(Config.load("configs/demo.yaml"), data, "runs/demo")
    """
    runtime = LocalRuntime(cfg.device)
    supernet_path = storage.join(out, "supernet.pt")
    if not storage.exists(supernet_path):
        run_supernet(cfg, out, runtime, data)
    supernet = load_supernet(cfg, supernet_path, data.spec).to(runtime.device)
    evaluator = SupernetEvaluator(
        supernet, data.train, data.val, cfg.search.finetune, runtime.device, seed=cfg.seed
    )
    scored: dict[str, dict[str, float]] = {}

    def score(arch: Architecture) -> dict[str, float]:
        # A score depends on (supernet, architecture, cfg.seed) only: share it across runs.
        h = arch.canonical_hash()
        if h not in scored:
            scored[h] = evaluator(arch)
        return scored[h]

    costs = objective_costs(cfg, data.spec)
    objective = resolve_budgets(cfg, costs).search.objective  # flops: dcn -> a number
    alone = StandaloneTrainer(cfg, data, runtime, cache_path(cfg, out))
    evolution_cfg = dataclasses.replace(cfg.search, strategy="evolution")
    runs: list[dict[str, Any]] = []
    for seed in cfg.bench.search_seeds:
        root = storage.join(out, "bench_search", f"seed_{seed}")
        # Histories are tied to the supernet, config and seeds that scored them, so a rerun
        # after any of these changed refuses them instead of reusing stale scores.
        evo_history = SearchHistory(
            storage.join(root, "evolution.jsonl"), _provenance(cfg, "evolution", seed, data, out)
        )
        evo = RegularizedEvolution(cfg.space, evolution_cfg, seed)
        picks = {"evolution": evo.run(score, evo_history, costs, objective, False)}
        rand_history = SearchHistory(
            storage.join(root, "random.jsonl"), _provenance(cfg, "random", seed, data, out)
        )
        rand = RandomSearch(cfg.space, evo_history.evaluated, seed)
        picks["random"] = rand.run(score, rand_history, costs, objective, False)
        counts = {"evolution": evo_history.evaluated, "random": rand_history.evaluated}
        for strategy, pick in picks.items():
            r = alone(pick.arch, cfg.seed)
            runs.append(
                {
                    "strategy": strategy,
                    "search_seed": seed,
                    "scored": counts[strategy],
                    "hash": pick.arch_hash,
                    "inherited": pick.metrics,
                    "flops": pick.costs.get("flops"),
                    "test_auc": r["test"]["auc"],
                    "test_logloss": r["test"]["logloss"],
                    "val_auc": r["val"]["auc"],
                    "val_logloss": r["val"]["logloss"],
                }
            )
    summary: dict[str, Any] = {}
    for strategy in STRATEGIES:
        mine = [x for x in runs if x["strategy"] == strategy]
        summary[strategy] = {}
        for m in METRICS:
            mean, std = mean_std([x[m] for x in mine])
            summary[strategy][m] = {"mean": mean, "std": std}
    return {
        "search_seeds": list(cfg.bench.search_seeds),
        "rule": SPREAD_RULE,
        "summary": summary,
        "beyond_spread": {
            m: beyond_spread(summary["evolution"][m], summary["random"][m]) for m in METRICS
        },
        "runs": runs,
    }


def search_markdown(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table (mean ± std over search seeds)."""
    lines = [
        "| strategy | test AUC | test logloss | val AUC | val logloss |",
        "|---|---|---|---|---|",
    ]
    for strategy, stats in result["summary"].items():
        cells = [f"{stats[m]['mean']:.4f} ± {stats[m]['std']:.4f}" for m in METRICS]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    beyond = [m for m, b in result["beyond_spread"].items() if b]
    lines += [
        "",
        f"Seeds {result['search_seeds']}; larger than the spread ({result['rule']}): "
        + (", ".join(beyond) if beyond else "none"),
    ]
    return "\n".join(lines) + "\n"


def _provenance(
    cfg: Config,
    strategy: Literal["evolution", "random"],
    search_seed: int,
    data: DataSplits,
    out: str | Path,
) -> dict[str, str]:
    search = dataclasses.replace(cfg.search, strategy=strategy)
    record = search_provenance(
        dataclasses.replace(cfg, search=search), data.spec, storage.join(out, "supernet.pt")
    )
    return {**record, "search_seed": str(search_seed)}
