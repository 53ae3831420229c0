"""Search strategies: regularized evolution, random search, history, resume, cache."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from torchrec_nas import Architecture, SearchSpace
from torchrec_nas.search.evolution import EvolutionConfig, RandomSearch, RegularizedEvolution
from torchrec_nas.search.history import SearchHistory
from torchrec_nas.search.objective import ObjectiveConfig

SPACE = SearchSpace.preset("nasrec-full")


def fake_logloss(arch: Architecture) -> dict[str, float]:
    """A cheap, deterministic stand-in for supernet scoring: wider fc blocks score better."""
    score = 1.0
    for b in arch.blocks:
        if b.dense_op == "fc":
            score -= b.dense_dim / 50_000
    return {"logloss": score}


def small_cfg(**kw: int) -> EvolutionConfig:
    base = {"population": 12, "tournament": 4, "children": 4, "generations": 10}
    base.update(kw)
    return EvolutionConfig(**base)  # type: ignore[arg-type]


def test_evolution_improves_on_the_initial_population() -> None:
    history = SearchHistory()
    best = RegularizedEvolution(SPACE, small_cfg(), seed=0).run(
        fake_logloss, history, progress=False
    )
    assert len(history) == 12 + 4 * 10
    initial_best = min(r.score for r in history.records[:12])
    assert best.score < initial_best
    assert best.score == min(r.score for r in history)


def test_seen_canonical_hashes_are_not_evaluated_again() -> None:
    calls: list[str] = []

    def counting(arch: Architecture) -> dict[str, float]:
        calls.append(arch.canonical_hash())
        return fake_logloss(arch)

    history = SearchHistory()
    RegularizedEvolution(SPACE, small_cfg(generations=30), seed=1).run(
        counting, history, progress=False
    )
    assert len(calls) == len(set(calls)) == history.evaluated
    cached = [r for r in history if r.cached]
    assert cached, "30 generations of one-mutation children should revisit some subnet"
    for r in cached:
        assert r.score == history.lookup(r.arch_hash).score  # type: ignore[union-attr]


def test_killed_search_resumes_to_the_same_history(tmp_path: Path) -> None:
    cfg = small_cfg(generations=6)
    full = SearchHistory(tmp_path / "full.jsonl")
    RegularizedEvolution(SPACE, cfg, seed=2).run(fake_logloss, full, progress=False)

    class Killed(Exception):
        pass

    count = 0

    def dies_after_20(arch: Architecture) -> dict[str, float]:
        nonlocal count
        count += 1
        if count > 20:
            raise Killed
        return fake_logloss(arch)

    path = tmp_path / "killed.jsonl"
    with pytest.raises(Killed):
        RegularizedEvolution(SPACE, cfg, seed=2).run(
            dies_after_20, SearchHistory(path), progress=False
        )
    partial = SearchHistory(path)
    assert 0 < len(partial) < len(full)
    # Simulate a crash mid-write of the next line: the reader drops the cut-off record.
    with open(path, "a") as f:
        f.write('{"index": 99, "gener')
    resumed = SearchHistory(path)
    RegularizedEvolution(SPACE, cfg, seed=2).run(fake_logloss, resumed, progress=False)
    assert [r.arch_hash for r in resumed] == [r.arch_hash for r in full]
    lines = path.read_text().splitlines()
    assert len(lines) == len(full) and all(json.loads(line) for line in lines)


def test_budgets_make_candidates_infeasible() -> None:
    objective = ObjectiveConfig(
        metric="logloss", budgets={"flops": 1.0}, pareto=["logloss", "flops"]
    )
    assert objective.score({"logloss": 0.4}, {"flops": 2.0}) == math.inf
    assert objective.score({"logloss": 0.4}, {"flops": 0.5}) == 0.4
    with pytest.raises(ValueError, match="unknown objective 'accuracy'"):
        ObjectiveConfig(metric="accuracy").validate()


def test_random_search_uses_the_same_history_format(tmp_path: Path) -> None:
    history = SearchHistory(tmp_path / "h.jsonl")
    best = RandomSearch(SPACE, candidates=15, seed=3).run(fake_logloss, history, progress=False)
    assert len(history) == 15
    again = SearchHistory(tmp_path / "h.jsonl")
    assert again.best().arch_hash == best.arch_hash
    lines = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    for line, reread, written in zip(lines, again, history, strict=True):
        arch = Architecture.from_dict(line["architecture"])
        assert arch == reread.arch == written.arch
        assert line["hash"] == arch.canonical_hash() == reread.arch_hash
        assert line["score"] == reread.score == fake_logloss(arch)["logloss"]
    assert len({r.arch_hash for r in again}) > 1  # independent samples, not one repeated


def test_mutation_schedule_falls_from_start_to_end() -> None:
    cfg = EvolutionConfig(generations=240, mutations_start=6, mutations_end=1)
    assert cfg.mutations(1) == 6 and cfg.mutations(240) == 1
    assert cfg.total_candidates == 128 + 8 * 240 == 2048
    with pytest.raises(ValueError, match="tournament"):
        EvolutionConfig(population=4, tournament=8).validate()


def test_codesign_compares_uniform_8_bit_with_the_cheapest_close_candidate() -> None:
    from helpers import tiny_tables

    from torchrec_nas.hardware.flops import architecture_costs
    from torchrec_nas.search.codesign import codesign_summary, uniform_bits

    space = SearchSpace.from_mapping({"preset": "nasrec-small", "bit_choices": [4, 8]})

    def costs(arch: Architecture) -> dict[str, float]:
        return architecture_costs(arch, space, 13, tiny_tables(26), hardware="isaac")

    def quality(arch: Architecture) -> dict[str, float]:
        # Precision barely matters to this stand-in: 4 bits cost 0.0001 logloss a block.
        low = sum(b.weight_bits == 4 for b in arch.blocks)
        return {"logloss": fake_logloss(arch)["logloss"] + 1e-4 * low}

    history = SearchHistory()
    RegularizedEvolution(space, small_cfg(generations=4), seed=4).run(
        quality, history, costs, ObjectiveConfig(pareto=["logloss", "pim_energy"]), progress=False
    )
    result = codesign_summary(history, quality, costs, top_k=3, tolerance=0.01)
    ref = result["reference"]
    # The reference: the best of the 3 best candidates re-scored at uniform 8 bits.
    evaluated = [r for r in history if not r.cached]
    top = sorted(evaluated, key=lambda r: r.metrics["logloss"])[:3]
    uniform = min((uniform_bits(r.arch, 8) for r in top), key=lambda a: quality(a)["logloss"])
    assert ref["hash"] == uniform.canonical_hash()
    assert ref["pim_energy"] == costs(uniform)["pim_energy"]
    # The co-designed model: the least energy among candidates within the tolerance.
    within = [r for r in evaluated if r.metrics["logloss"] <= ref["logloss"] + 0.01]
    cheapest = min(within, key=lambda r: r.costs["pim_energy"])
    assert result["candidates_within_tolerance"] == len(within)
    assert result["codesigned"]["hash"] == cheapest.arch_hash
    # Precision is almost free to this stand-in, so the saving comes from 4-bit blocks.
    assert any(b["weight_bits"] == 4 for b in result["codesigned"]["architecture"]["blocks"])
    assert result["energy_ratio"] > 1.0
    arch = space.sample(random.Random(0))
    assert {b.activation_bits for b in uniform_bits(arch, 6).blocks} == {6}


def test_history_writes_no_nan_and_reads_it_back(tmp_path: Path) -> None:
    from torchrec_nas.search.history import Evaluation

    arch = SearchSpace.preset("nasrec-small").sample(random.Random(0))
    path = tmp_path / "history.jsonl"
    history = SearchHistory(path)
    history.append(Evaluation(0, 0, arch, arch.canonical_hash(), {"logloss": math.nan}))
    line = path.read_text().strip()
    assert "NaN" not in line and json.loads(line)["metrics"]["logloss"] is None
    assert math.isnan(SearchHistory(path).records[0].metrics["logloss"])
