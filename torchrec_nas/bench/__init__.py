"""Measurements behind the README's benchmark section (``torchrec-nas bench --only NAME``).

- ``sharing``: rows/s of the supernet against materialized fixed models
  (:mod:`~torchrec_nas.bench.sharing`).
- ``kendall``: the quick rank figure, random subnets at a fixed number of stand-alone steps
  (:mod:`~torchrec_nas.bench.kendall`).
- ``ranking``: the ranking benchmark to trust: stratified subnets, early stopping, seeds,
  noise ceiling, cached stand-alone results (:mod:`~torchrec_nas.bench.ranking`).
- ``ablation``: supernets trained with each ``bench.ablation`` override, scored on the ranking
  subnets (:mod:`~torchrec_nas.bench.ablation`).
- ``search``: evolution against random search over search seeds
  (:mod:`~torchrec_nas.bench.search_compare`).
- ``seeds``: final training over ``bench.seeds`` (:mod:`~torchrec_nas.bench.seeds`).
- ``codesign``: PIM energy saved by searching bit widths (:mod:`~torchrec_nas.bench.codesign`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.train.checkpoint import write_json_atomic, write_text_atomic

#: The ``--only`` choices of ``torchrec-nas bench``.
BENCHMARKS = ("sharing", "kendall", "ranking", "ablation", "search", "seeds", "codesign")


def run_bench(cfg: Config, out: str | Path, only: str | None = None) -> dict[str, Any]:
    """Runs the measurements and writes ``bench.json`` (``bench_<only>.json`` with ``only``;
    the ranking, ablation and search benchmarks also write a Markdown table beside it).

    Without ``only``: ``sharing`` and ``kendall``.

    Example::

        run_bench(Config.load("configs/demo.yaml"), "runs/bench", only="ranking")
    """
    if only is not None and only not in BENCHMARKS:
        raise ValueError(f"bench: unknown measurement {only!r}; known: {', '.join(BENCHMARKS)}")
    data = LocalRuntime(cfg.device).data(cfg)
    result: dict[str, Any] = {}
    markdown = None
    if only in (None, "sharing"):
        from torchrec_nas.bench.sharing import weight_sharing_cost

        result["weight_sharing"] = weight_sharing_cost(cfg, data)
    if only in (None, "kendall"):
        from torchrec_nas.bench.kendall import ranking_correlation

        result["kendall"] = ranking_correlation(cfg, data, out)
    if only == "ranking":
        from torchrec_nas.bench.ranking import ranking_benchmark, ranking_markdown

        result["ranking"] = ranking_benchmark(cfg, data, out)
        markdown = ranking_markdown(result["ranking"])
    if only == "ablation":
        from torchrec_nas.bench.ablation import ablation_markdown, run_ablation

        result["ablation"] = run_ablation(cfg, data, out, cfg.bench.ablation)
        markdown = ablation_markdown(result["ablation"])
    if only == "search":
        from torchrec_nas.bench.search_compare import search_comparison, search_markdown

        result["search"] = search_comparison(cfg, data, out)
        markdown = search_markdown(result["search"])
    if only == "seeds":
        from torchrec_nas.bench.seeds import seeds_benchmark, seeds_markdown

        result["seeds"] = seeds_benchmark(cfg, out, data)
        markdown = seeds_markdown(result["seeds"])
    if only == "codesign":
        from torchrec_nas.bench.codesign import codesign

        result["codesign"] = codesign(cfg, data, out)
    name = "bench" if only is None else f"bench_{only}"
    write_json_atomic(storage.join(out, f"{name}.json"), result)
    if markdown is not None:
        write_text_atomic(storage.join(out, f"{name}.md"), markdown)
    return result


__all__ = ["BENCHMARKS", "run_bench"]
