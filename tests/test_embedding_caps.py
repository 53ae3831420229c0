"""Widths capped at a table's rows (``embedding_search.cap_at_rows``): the cap itself, the
stage-2 policy and evolution, the smallest-model budget check, agreement over features with a
choice, the joint search's sampling and mutation, and a tiny search end to end both ways."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
from helpers import EMBEDDING_SEARCH_TINY

from torchrec_nas.config import Config
from torchrec_nas.data.spec import DataSpec
from torchrec_nas.embedding_search import EmbeddingSizeSearch, WidthPolicy, embedding_params
from torchrec_nas.embedding_search.dims import agreement, resolve_budget, smallest_model
from torchrec_nas.embedding_search.policy import evolve_widths, mutate_widths
from torchrec_nas.embedding_search.report import agreement_line
from torchrec_nas.embedding_search.stage1 import load_embedding_supernet
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.search.evolution import EvolutionConfig, RegularizedEvolution
from torchrec_nas.search.provenance import search_provenance
from torchrec_nas.space import SearchSpace
from torchrec_nas.space_widths import allowed_widths, capped_widths, width_cap

WIDTHS = [4, 8, 12, 16, 24, 32]
ROWS = {"tiny": 4, "six": 6, "twelve": 12, "big": 5000}
ALLOWED = allowed_widths(WIDTHS, ROWS)


def test_cap_is_the_smallest_width_at_least_the_rows() -> None:
    assert [width_cap(WIDTHS, r) for r in (2, 4, 5, 12, 13, 32, 33, 10**6)] == [
        4, 4, 8, 12, 16, 32, 32, 32,
    ]  # fmt: skip
    assert ALLOWED == {
        "tiny": (4,), "six": (4, 8), "twelve": (4, 8, 12), "big": tuple(WIDTHS),
    }  # fmt: skip
    assert capped_widths([16, 4, 8], None) == (4, 8, 16)
    assert allowed_widths(WIDTHS, list(ROWS))["tiny"] == tuple(WIDTHS)  # names only: no cap


def _reward(dims: dict[str, int]) -> float:  # wider is better: pushes against the caps
    return sum(dims.values()) / 100 + random.Random(str(sorted(dims.items()))).random() / 50


def test_policy_never_draws_or_picks_above_a_cap() -> None:
    policy = WidthPolicy(list(ROWS), WIDTHS, lr=0.2, samples=8, seed=3, allowed=ALLOWED)
    drawn = [policy.step(k, _reward) for k in range(60)]
    for step in drawn:
        for s in step.samples:
            assert all(s[f] in ALLOWED[f] for f in ROWS)
    assert policy.pick() == {"tiny": 4, "six": 8, "twelve": 12, "big": 32}
    p = policy.probabilities()
    assert torch.isfinite(policy.logits).all() and torch.allclose(p.sum(1), torch.ones(4))
    assert p[0, 1:].sum() == 0 and p[0, 0] == 1  # the 4-row table has one choice


def test_without_caps_the_policy_and_evolution_are_unchanged() -> None:
    every = {f: WIDTHS for f in ROWS}  # every feature allowed everything: as before caps
    a = WidthPolicy(list(ROWS), WIDTHS, seed=5)
    b = WidthPolicy(list(ROWS), WIDTHS, seed=5, allowed=every)
    for k in range(10):
        assert a.step(k, _reward).samples == b.step(k, _reward).samples
    assert torch.equal(a.logits, b.logits)
    cfg = EvolutionConfig(population=6, tournament=3, children=3, generations=4)
    plain = evolve_widths(list(ROWS), WIDTHS, cfg, _reward, seed=2)
    same = evolve_widths(list(ROWS), WIDTHS, cfg, _reward, seed=2, allowed=every)
    assert [c.widths for c in plain] == [c.widths for c in same]


def test_evolution_stays_within_the_caps_and_mutates_only_features_with_a_choice() -> None:
    cfg = EvolutionConfig(population=8, tournament=3, children=4, generations=10)
    history = evolve_widths(list(ROWS), WIDTHS, cfg, _reward, seed=1, allowed=ALLOWED)
    assert all(c.widths[f] in ALLOWED[f] for c in history for f in ROWS)
    assert {c.widths["tiny"] for c in history} == {4}
    rng = random.Random(0)
    parent = {"tiny": 4, "six": 8, "twelve": 12, "big": 16}
    for _ in range(50):  # one mutation always moves a feature that has a choice
        child = mutate_widths(parent, WIDTHS, rng, 1, ALLOWED)
        assert sum(child[f] != parent[f] for f in ROWS) == 1
        assert all(child[f] in ALLOWED[f] for f in ROWS)
    over = mutate_widths({**parent, "six": 32}, WIDTHS, random.Random(1), 4, ALLOWED)
    assert over["six"] == 8  # a width over the cap (a given file) moves to the cap


def test_budget_check_uses_the_smallest_possible_model() -> None:
    # Uncapped, a 4-row table is cheapest at the token width (64 parameters, no projection);
    # capped it has only width 4 (16 + a 4x16 projection + bias = 96).
    assert smallest_model(ROWS, WIDTHS, 16)["tiny"] == 16
    assert smallest_model(ROWS, WIDTHS, 16, ALLOWED)["tiny"] == 4
    smallest = embedding_params(smallest_model(ROWS, WIDTHS, 16, ALLOWED), ROWS, 16)
    assert resolve_budget(smallest, ROWS, WIDTHS, 16, ALLOWED) == smallest
    with pytest.raises(ValueError, match=rf"below the smallest .*\({smallest:,} parameters"):
        resolve_budget(smallest - 1, ROWS, WIDTHS, 16, ALLOWED)


def test_agreement_counts_single_choice_features_and_the_others() -> None:
    picks = [
        {"tiny": 4, "six": 4, "twelve": 4, "big": 16},
        {"tiny": 4, "six": 8, "twelve": 12, "big": 16},
    ]
    a = agreement(picks, WIDTHS, ROWS, ALLOWED)
    assert a["single_choice_features"] == 1 and a["feature_count"] == 4
    assert a["identical_share"] == 0.5 and a["within_one_step_share"] == 0.75
    m = a["multi_choice"]
    assert m["feature_count"] == 3 and m["identical_share"] == pytest.approx(1 / 3)
    assert m["within_one_step_share"] == pytest.approx(2 / 3)
    assert m["identical_weighted_share"] == pytest.approx(5000 / 5018)
    assert a["features"]["six"]["choices"] == 2
    line = agreement_line(a, True)
    assert "1 of 4 features have a single allowed width" in line and "over the 3 with" in line


def joint_space() -> SearchSpace:
    return dataclasses.replace(
        SearchSpace.preset("nasrec-small"), num_blocks=2, embedding_widths=(4, 8, 16)
    )


def test_joint_search_samples_and_mutates_within_the_caps() -> None:
    space, rows = joint_space(), {"c0": 4, "c1": 8, "c2": 900}
    names = list(rows)
    for seed in range(20):  # without rows as before; rows that cap nothing change nothing
        assert space.sample(random.Random(seed), names) == space.sample(
            random.Random(seed), dict.fromkeys(names, 10**6)
        )
        assert dict(space.sample(random.Random(seed), rows).embedding_dims or ())["c0"] == 4
    arch = space.sample(random.Random(0), rows)
    for seed in range(200):
        child = space.mutate(arch, random.Random(seed), 3, rows)
        dims = dict(child.embedding_dims or ())
        assert dims["c0"] == 4 and dims["c1"] in (4, 8)
    wide = dataclasses.replace(arch, embedding_dims=(("c0", 16), ("c1", 8), ("c2", 8)))
    moved = [dict(space.mutate(wide, random.Random(s), 1, rows).embedding_dims or ()) for s in range(200)]  # fmt: skip
    assert all(d["c0"] == 16 for d in moved)  # c0 has one choice: never drawn to move
    evo = RegularizedEvolution(space, EvolutionConfig(population=6, children=3), 0, rows)
    initial = evo.initial_population()
    assert all(dict(a.embedding_dims or ())["c0"] == 4 for a in initial)
    kids = evo.children([_Rec(a, i) for i, a in enumerate(initial)], 1)  # type: ignore[arg-type]
    assert all(dict(k.embedding_dims or ())["c1"] in (4, 8) for k in kids)


@dataclasses.dataclass
class _Rec:  # what RegularizedEvolution.children reads of an Evaluation
    arch: object
    index: int
    score: float = 0.0


def test_a_tiny_search_caps_by_default_and_not_when_told(tmp_path: Path) -> None:
    (tmp_path / "capped.yaml").write_text(EMBEDDING_SEARCH_TINY)
    (tmp_path / "free.yaml").write_text(EMBEDDING_SEARCH_TINY + "  cap_at_rows: false\n")
    capped = Config.load(tmp_path / "capped.yaml")
    assert capped.embedding_search.cap_at_rows is True
    s = EmbeddingSizeSearch(capped, tmp_path / "a", LocalRuntime("cpu")).run()
    assert s["cap_at_rows"] and s["allowed_widths"]["cat_0"] == [4]
    assert s["allowed_widths"]["cat_1"] == [4, 8]
    for run in s["seeds"]:
        for kind in ("policy", "evolution"):
            assert run[kind]["widths"]["cat_0"] == 4 and run[kind]["widths"]["cat_1"] <= 8
    assert s["agreement"]["single_choice_features"] == 1
    draws = s["stage1"]["draws"]  # stage 1 drew cat_0 at 4 only, cat_1 at 4 or 8
    assert draws[0][0] == 12 and sum(draws[0][1:]) == 0 and sum(draws[1][2:]) == 0
    assert "single allowed width" in (tmp_path / "a" / "embedding_search.md").read_text()
    free = Config.load(tmp_path / "free.yaml")
    f = EmbeddingSizeSearch(free, tmp_path / "b", LocalRuntime("cpu")).run()
    assert not f["cap_at_rows"] and f["allowed_widths"]["cat_0"] == [4, 8, 16, 32]
    assert f["agreement"]["single_choice_features"] == 0
    with pytest.raises(ValueError, match="trained with another cap_at_rows"):
        load_embedding_supernet(
            free, EmbeddingSizeSearch(free, tmp_path / "b").data.spec, tmp_path / "a"
        )
    # The joint search's history is tied to the setting; an interaction-only one is not.
    spec, sn = DataSpec(["d0"], ["c0"], [10]), tmp_path / "supernet.pt"
    sn.write_bytes(b"x")
    joint = dataclasses.replace(free, space=joint_space())
    on = dataclasses.replace(joint, embedding_search=capped.embedding_search)
    assert search_provenance(joint, spec, sn) != search_provenance(on, spec, sn)
    assert search_provenance(free, spec, sn) == search_provenance(capped, spec, sn)


def test_stage_one_draws_each_feature_within_its_cap() -> None:
    from torchrec_nas.embedding_search import AdaptiveWidthSampler

    capped = AdaptiveWidthSampler(list(ROWS), WIDTHS, seed=1, allowed=ALLOWED)
    free = AdaptiveWidthSampler(list(ROWS), WIDTHS, seed=1)
    every = AdaptiveWidthSampler(list(ROWS), WIDTHS, seed=1, allowed={f: WIDTHS for f in ROWS})
    for step in range(40):
        drawn = capped.sample(step)
        assert all(drawn[f] in ALLOWED[f] for f in ROWS)
        capped.update(drawn, 1.0 + drawn["big"] / 100 + step % 3)
        plain = free.sample(step)
        assert plain == every.sample(step)  # no caps: the draws of before
        free.update(plain, 1.0 + step % 3)
        every.update(plain, 1.0 + step % 3)
    p = capped.probabilities()
    assert (
        p[0, 0] == 1
        and p[1, 2:].sum() == 0
        and torch.allclose(p.sum(1), torch.ones(4, dtype=p.dtype))
    )
    assert p[3, 0] > 0.2 / len(WIDTHS) and torch.equal(free.probabilities(), every.probabilities())
    assert capped.counts[0, 0] == 40 and capped.counts[0, 1:].sum() == 0


class _FlatScorer:  # a score that no width changes: what a feature without signal looks like
    cache: dict[str, dict[str, float]] = {}

    def metrics(self, widths: object) -> dict[str, float]:
        return {"auc": 0.75, "logloss": 0.5}


def test_size_weight_breaks_ties_toward_fewer_parameters() -> None:
    from torchrec_nas.embedding_search.scoring import WidthObjective

    rows = {"a": 1000, "b": 2000}
    budget = 10**6  # slack: the budget alone leaves a flat reward
    flat = WidthObjective(_FlatScorer(), rows, 16, budget)  # type: ignore[arg-type]
    tied = WidthObjective(_FlatScorer(), rows, 16, budget, size_weight=0.05)  # type: ignore[arg-type]
    wide, narrow = {"a": 32, "b": 32}, {"a": 4, "b": 4}
    assert flat(wide) == flat(narrow) == 0.75
    assert tied(narrow) > tied(wide) and tied(wide) == pytest.approx(
        0.75 - 0.05 * flat.params(wide) / budget
    )
    picks = []
    for seed in (1, 2, 3):
        policy = WidthPolicy(list(rows), WIDTHS, lr=0.1, samples=8, seed=seed)
        for k in range(150):
            policy.step(k, tied)
        picks.append(policy.pick())
        assert policy.probabilities()[:, 0].min() > 0.5  # flat alone would stay at 1/6
    assert picks == [narrow] * 3  # every seed agrees on the cheapest of equal scores
