"""The ranking benchmark: subnet selection, the stand-alone cache, the figures, end to end."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from torchrec_nas.bench import run_bench
from torchrec_nas.bench.ablation import apply_overrides, entry_dir, parse_set
from torchrec_nas.bench.ranking import kendall_tau, ranking_summary, spearman_rho
from torchrec_nas.bench.selection import stratified_subnets
from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.hardware.flops import architecture_costs
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.search.history import HistoryError
from torchrec_nas.space import SearchSpace
from torchrec_nas.train import standalone as standalone_mod
from torchrec_nas.train.sampling import smallest_path
from torchrec_nas.train.standalone import StandaloneCache, StandaloneTrainer

SPACE = SearchSpace.from_mapping(
    {"preset": "nasrec-full", "dense_dims": [16, 32, 64], "sparse_tokens": [4, 8]}
)

TINY = """
seed: 0
data:
  batch_size: 128
  synthetic: {rows: 3000, num_dense: 4, num_sparse: 5, cardinalities: 100}
space:
  preset: nasrec-full
  num_blocks: 3
  dense_dims: [16, 32]
  sparse_tokens: [4, 8]
supernet: {steps: 6, checkpoint_every: 0, eval_batches: 2, progress: false}
search:
  {population: 3, tournament: 2, children: 1, generations: 1, finetune: {steps: 2, eval_batches: 2},
   progress: false}
train: {steps: 4, eval_batches: 2, progress: false}
bench:
  ranking_subnets: 4
  ranking_pool: 16
  ranking_max_steps: 6
  ranking_eval_every: 2
  ranking_patience: 1
  ranking_eval_batches: 2
"""


def flops_of(space: SearchSpace) -> Any:
    from helpers import tiny_tables

    tables = tiny_tables()
    return lambda a: architecture_costs(a, space, 4, tables, None)["flops"]


def test_stratified_selection_includes_both_extremes_and_is_deterministic() -> None:
    flops = flops_of(SPACE)
    archs = stratified_subnets(SPACE, flops, 8, seed=3, pool=64)
    again = stratified_subnets(SPACE, flops, 8, seed=3, pool=64)
    assert [a.canonical_hash() for a in archs] == [a.canonical_hash() for a in again]
    assert len({a.canonical_hash() for a in archs}) == 8
    costs = [flops(a) for a in archs]
    pool = [flops(a) for a in SPACE.enumerate_samples(random.Random(0), 200)]
    # The smallest path is first and cheaper than any sample, the largest last and dearer.
    assert costs[0] == min(costs) and costs[0] <= min(pool)
    assert costs[-1] == max(costs) and costs[-1] >= max(pool)
    assert all(b.dense_dim == 16 for b in archs[0].blocks)
    assert all(b.dense_dim == 64 for b in archs[-1].blocks)
    assert sorted(costs[1:-1]) == costs[1:-1]  # one per stratum, in FLOPs order
    other = stratified_subnets(SPACE, flops, 8, seed=4, pool=64)
    assert [a.canonical_hash() for a in other] != [a.canonical_hash() for a in archs]
    assert SPACE.contains(smallest_path(SPACE, random.Random(1), raw_inputs_only=True))


def test_figures_on_a_hand_made_example() -> None:
    # Seeds agree on 5 of 6 pairs: tau = (5 - 1) / 6.
    seed1 = [0.40, 0.41, 0.42, 0.43]
    seed2 = [0.40, 0.42, 0.41, 0.43]
    inherited = [0.60, 0.50, 0.70, 0.80]  # ranks subnet 1 first
    r = ranking_summary(inherited, [seed1, seed2])
    assert r["noise_ceiling"] == pytest.approx(4 / 6)
    # mean = [0.40, 0.415, 0.415, 0.43]; pairs vs inherited: (0,1) discordant, (0,2) (0,3)
    # (1,2) (1,3) (2,3) concordant except the tie (1,2) in mean: tau-b with one tie.
    mean = [0.40, 0.415, 0.415, 0.43]
    assert r["kendall_tau"] == pytest.approx(kendall_tau(inherited, mean))
    assert r["kendall_tau"] == pytest.approx((4 - 1) / math.sqrt(6 * 5))
    assert r["tau_over_ceiling"] == pytest.approx(r["kendall_tau"] / (4 / 6))
    # The stand-alone best (subnet 0) is second by inherited score: outside the top quarter.
    assert r["best_inherited_rank"] == 2 and r["best_in_top_quarter"] is False
    assert spearman_rho([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert ranking_summary([1, 2, 3, 4], [[1, 2, 3, 4]])["best_in_top_quarter"] is True
    assert math.isnan(ranking_summary([1, 2], [[1, 2]])["noise_ceiling"])


def test_cache_hit_skips_training_and_a_torn_cache_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY)
    cfg = Config.load(cfg_path)
    data = LocalRuntime("cpu").data(cfg)
    calls: list[tuple[str, int]] = []

    def fake_train(
        cfg: Config, data: Any, runtime: Any, arch: Any, seed: int, loop: Any = None
    ) -> dict[str, Any]:
        calls.append((arch.canonical_hash(), seed))
        return {"val": {"logloss": 0.5 + seed / 100, "auc": 0.7}, "seconds": 1.0, "steps": 3}

    monkeypatch.setattr(standalone_mod, "train_standalone", fake_train)
    path = tmp_path / "cache.jsonl"
    archs = list(cfg.space.enumerate_samples(random.Random(0), 3))
    first = StandaloneTrainer(cfg, data, LocalRuntime("cpu"), path)
    results = [first(a, s) for a in archs for s in (1, 2)]
    assert len(calls) == 6 and first.trained == 6
    # A kill while appending leaves a torn last line: it is ignored and that result retrained.
    text = path.read_text()
    path.write_text(text[: text.rstrip("\n").rfind("\n") + 20])
    second = StandaloneTrainer(cfg, data, LocalRuntime("cpu"), path)
    again = [second(a, s) for a in archs for s in (1, 2)]
    assert second.trained == 1 and len(calls) == 7
    assert [r["val"] for r in again] == [r["val"] for r in results]
    third = StandaloneTrainer(cfg, data, LocalRuntime("cpu"), path)
    assert [third(a, s)["val"] for a in archs for s in (1, 2)] == [r["val"] for r in results]
    assert third.trained == 0 and len(calls) == 7
    # Another seed or another recipe is a miss.
    assert len(StandaloneCache(path).entries) == 6
    third(archs[0], 3)
    assert third.trained == 1


def test_overrides_are_dotted_paths_read_as_yaml() -> None:
    base = Config().to_dict()
    entries = parse_set(["long:supernet.steps=123", "long:search.finetune.lr=0.5", "b:seed=7"])
    assert entries == {"long": {"supernet.steps": 123, "search.finetune.lr": 0.5}, "b": {"seed": 7}}
    changed = apply_overrides(base, entries["long"])
    assert changed["supernet"]["steps"] == 123 and base["supernet"]["steps"] is None
    cfg = Config.from_dict(changed)
    assert cfg.supernet.steps == 123 and cfg.search.finetune.lr == 0.5
    assert entry_dir("sandwich rule/x") == "sandwich-rule-x"
    with pytest.raises(ConfigError):
        parse_set(["supernet.steps=3"])
    with pytest.raises(ConfigError):  # validated like a config file
        Config.from_dict(apply_overrides(base, {"supernet.stepz": 3}))
    loaded = Config.from_dict({"bench": {"ablation": {"long": {"supernet.steps": 5}}}})
    assert loaded.bench.ablation == {"long": {"supernet.steps": 5}}


def test_run_bench_ranking_end_to_end(tmp_path: Path) -> None:
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY)
    cfg = Config.load(cfg_path)
    out = tmp_path / "out"
    result = run_bench(cfg, out, only="ranking")["ranking"]
    assert result["subnets"] == 4 and len(result["per_subnet"]) == 4
    assert result["standalone_trained_now"] == 8  # 4 subnets x 2 seeds
    for row in result["per_subnet"]:
        assert len(row["standalone_logloss_by_seed"]) == 2
        assert 0 < row["inherited_logloss"] < 2 and 0 < row["standalone_logloss"] < 2
    assert -1 <= result["kendall_tau"] <= 1
    assert result["supernet_train_seconds"] > 0 and result["standalone_seconds"] > 0
    assert (out / "supernet.pt").exists() and (out / "bench_ranking.md").exists()
    on_disk = json.loads((out / "bench_ranking.json").read_text())["ranking"]
    assert on_disk["per_subnet"][0]["hash"] == result["per_subnet"][0]["hash"]
    lines = [x for x in (out / "standalone_cache.jsonl").read_text().splitlines() if x.strip()]
    assert len(lines) == 8 and all(json.loads(x)["key"] for x in lines)
    # A rerun costs only the supernet side.
    rerun = run_bench(cfg, out, only="ranking")["ranking"]
    assert rerun["standalone_trained_now"] == 0
    assert rerun["kendall_tau"] == pytest.approx(result["kendall_tau"])
    # An ablation entry trains its own supernet and scores the same subnets against the cache.
    cfg.bench.ablation = {"short": {"supernet.steps": 3}}
    ablation = run_bench(cfg, out, only="ablation")["ablation"]
    assert [r["option"] for r in ablation["rows"]] == ["baseline", "short"]
    assert ablation["rows"][0]["kendall_tau"] == pytest.approx(result["kendall_tau"])
    assert (out / "ablation" / "short" / "supernet.pt").exists()
    assert json.loads((out / "ablation" / "short" / "supernet.json").read_text())["steps"] == 3
    assert len([x for x in (out / "standalone_cache.jsonl").read_text().splitlines() if x]) == 8
    assert "| short |" in (out / "bench_ablation.md").read_text()


def test_search_comparison_scores_as_many_candidates_per_strategy(tmp_path: Path) -> None:
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY)
    cfg = Config.load(cfg_path)
    cfg.bench.search_seeds = [1, 2]
    out = tmp_path / "out"
    result = run_bench(cfg, out, only="search")["search"]
    runs = result["runs"]
    assert sorted((r["strategy"], r["search_seed"]) for r in runs) == [
        ("evolution", 1),
        ("evolution", 2),
        ("random", 1),
        ("random", 2),
    ]
    for seed in (1, 2):
        scored = {r["strategy"]: r["scored"] for r in runs if r["search_seed"] == seed}
        assert scored["evolution"] == scored["random"] > 0
    aucs = [r["test_auc"] for r in runs if r["strategy"] == "random"]
    assert result["summary"]["random"]["test_auc"]["mean"] == pytest.approx(sum(aucs) / 2)
    assert set(result["beyond_spread"]) == {"test_auc", "test_logloss", "val_auc", "val_logloss"}
    assert "± " in (out / "bench_search.md").read_text()
    # A rerun resumes both histories; after the supernet changed, it refuses them.
    again = run_bench(cfg, out, only="search")["search"]
    assert [r["hash"] for r in again["runs"]] == [r["hash"] for r in runs]
    with open(out / "supernet.pt", "ab") as f:
        f.write(b"\0")  # a different checksum stands in for a retrained supernet
    with pytest.raises(HistoryError, match="supernet differs"):
        run_bench(cfg, out, only="search")


def test_ranking_cap_follows_the_final_recipe_unless_set() -> None:
    """With ``bench.ranking_max_epochs`` unset a stand-alone training is capped at the final
    recipe's length (``train.steps``, else ``train.epochs`` passes); a set cap wins."""
    base = Config.from_dict(yaml.safe_load(TINY))
    base_map = apply_overrides(base.to_dict(), {"bench.ranking_max_steps": None})
    by_steps = Config.from_dict(base_map)
    assert standalone_mod.standalone_loop(by_steps, 10).steps == 4  # train.steps
    by_epochs = Config.from_dict(
        apply_overrides(base_map, {"train.steps": None, "train.epochs": 3})
    )
    assert standalone_mod.standalone_loop(by_epochs, 10).steps == 30
    capped = Config.from_dict(apply_overrides(base_map, {"bench.ranking_max_epochs": 0.5}))
    assert standalone_mod.standalone_loop(capped, 10).steps == 5
    assert standalone_mod.standalone_loop(base, 10).steps == 6  # ranking_max_steps
    with pytest.raises(ConfigError, match="ranking_max_epochs"):
        Config.from_dict(apply_overrides(base_map, {"bench.ranking_max_epochs": 0}))


def test_recipe_hash_ignores_epochs_a_step_cap_overrides() -> None:
    """A stand-alone result cached under one ``train.epochs`` is found under another when the
    cap is in steps (the epochs are not read); a change that is read (the lr) misses."""
    base_map = Config.from_dict(yaml.safe_load(TINY)).to_dict()

    def recipe(overrides: dict[str, Any]) -> str:
        cfg = Config.from_dict(apply_overrides(base_map, overrides))
        return standalone_mod.recipe_hash(cfg, standalone_mod.standalone_loop(cfg, 10))

    assert recipe({"train.epochs": 2}) == recipe({"train.epochs": 4})
    assert recipe({"train.optimizer.lr": 0.1}) != recipe({"train.optimizer.lr": 0.2})
