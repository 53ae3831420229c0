"""Final training over seeds (``bench --only seeds``): the searched model and every baseline
trained with each of ``bench.seeds``, reported as mean ± std with the spread rule of
:mod:`torchrec_nas.stages.spread`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.report import seeds_section
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.space import Architecture
from torchrec_nas.stages import run_search, run_supernet, train_final
from torchrec_nas.stages.spread import SPREAD_RULE


def seeds_benchmark(cfg: Config, out: str | Path, data: DataSplits) -> dict[str, Any]:
    """Trains the run's searched architecture (``OUT/best_arch.json``; supernet and search
    are run first if missing) and the baselines with ``train.seeds = bench.seeds`` under
    ``OUT/bench_seeds``.

    Example::

        seeds_benchmark(Config.load("configs/demo.yaml"), "runs/demo", data)
    """
    runtime = LocalRuntime(cfg.device)
    if not storage.exists(storage.join(out, "supernet.pt")):
        run_supernet(cfg, out, runtime, data)
    arch = Architecture.from_dict(run_search(cfg, out, runtime, data)["best"]["architecture"])
    seeded = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seeds=cfg.bench.seeds))
    results = train_final(seeded, storage.join(out, "bench_seeds"), arch, data, runtime)
    return {
        "seeds": list(cfg.bench.seeds),
        "rule": SPREAD_RULE,
        "models": {
            name: {"test": r["test_seeds"], "flops": r["flops"], "seeds": r["seeds"]}
            for name, r in results.items()
        },
        "versus_baselines": results.get("nasrec", {}).get("versus_baselines", {}),
    }


def seeds_markdown(result: dict[str, Any]) -> str:
    """The benchmark as Markdown: mean ± std per model and the spread verdicts."""
    results: dict[str, Any] = {
        name: {"seeds": m["seeds"], "test_seeds": m["test"]} for name, m in result["models"].items()
    }
    if "nasrec" in results:
        results["nasrec"]["versus_baselines"] = result["versus_baselines"]
    return "\n".join(seeds_section(results)) + "\n"
