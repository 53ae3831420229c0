"""``search.rerank``: the best few candidates trained stand-alone decide the pick; a rerun
trains nothing again."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest

from torchrec_nas.config import Config
from torchrec_nas.search.history import Evaluation, SearchHistory
from torchrec_nas.space import SearchSpace
from torchrec_nas.stages import run_search, run_supernet
from torchrec_nas.stages.rerank import top_candidates

TINY = """
seed: 0
data:
  batch_size: 64
  synthetic: {rows: 3000, cardinalities: 100}
space:
  preset: nasrec-full
  num_blocks: 3
  dense_dims: [16, 32]
  sparse_tokens: [4, 8]
  head_tokens: [true, false]
supernet: {steps: 4, eval_batches: 1, progress: false}
train: {progress: false}
search:
  population: 4
  tournament: 2
  children: 2
  generations: 2
  finetune: {method: newton, fit_batches: 2, eval_batches: 2}
  progress: false
  allow_chance: true  # 4 supernet steps learn nothing
  rerank: {top_k: 3, epochs: 0.2, eval_every: 5, patience: 1}
"""


def test_top_candidates_skip_duplicates_and_what_breaks_a_budget() -> None:
    space = SearchSpace.preset("nasrec-small")
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(4)]
    history = SearchHistory(None)
    scores = [0.5, math.inf, 0.4, 0.45]
    for i, (arch, score) in enumerate(zip(archs, scores)):
        history.append(Evaluation(i, 0, arch, arch.canonical_hash(), {}, {}, score))
    history.append(Evaluation(4, 1, archs[2], archs[2].canonical_hash(), {}, {}, 0.4, True))
    top = top_candidates(history, 3)
    assert [r.index for r in top] == [2, 3, 0]


def test_rerank_picks_the_best_standalone_and_resumes_from_its_cache(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    cfg = Config.load(tmp_path / "tiny.yaml")
    out = tmp_path / "run"
    run_supernet(cfg, out)
    summary = run_search(cfg, out)
    rows = summary["rerank"]
    assert len(rows) == 3 and sum(r["picked"] for r in rows) == 1
    picked = next(r for r in rows if r["picked"])
    assert picked["val"]["logloss"] == min(r["val"]["logloss"] for r in rows)
    assert picked["hash"] == summary["best"]["hash"]
    assert [r["supernet_rank"] for r in rows] == [1, 2, 3]
    best = json.loads((out / "best_arch.json").read_text())
    assert best["hash"] == picked["hash"]
    cache = [line for line in (out / "rerank_cache.jsonl").read_text().splitlines() if line]
    assert len(cache) == 3
    # A rerun (a killed search restarted) trains nothing again and picks the same.
    again = run_search(cfg, out)
    assert again["best"]["hash"] == picked["hash"]
    assert [line for line in (out / "rerank_cache.jsonl").read_text().splitlines() if line] == cache


def test_rerank_refuses_when_no_candidate_fits_the_budget(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    cfg = Config.load(tmp_path / "tiny.yaml")
    objective = dataclasses.replace(cfg.search.objective, budgets={"flops": 1.0})
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, objective=objective))
    out = tmp_path / "run"
    run_supernet(cfg, out)
    with pytest.raises(ValueError, match="no candidate fits search.objective.budgets"):
        run_search(cfg, out)


def test_rerank_on_a_remote_out_fails_before_the_search(tmp_path: Path) -> None:
    from torchrec_nas.runtime.local import LocalRuntime
    from torchrec_nas.stages.rerank import check_rerank

    (tmp_path / "tiny.yaml").write_text(TINY)
    cfg = Config.load(tmp_path / "tiny.yaml")
    with pytest.raises(ValueError, match=r"search.rerank: memory://x is not a local directory"):
        run_search(cfg, "memory://x", LocalRuntime("cpu"))
    assert check_rerank(cfg, tmp_path, LocalRuntime("cpu")) == tmp_path
