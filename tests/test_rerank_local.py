"""``search.rerank`` with the space's baselines, both LayerNorm settings and hill climbing:
every origin is trained, the pick is the best by validation whatever its origin, and a rerun
(a killed search restarted) trains nothing again and picks the same."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from test_rerank import TINY

from torchrec_nas.architecture import Architecture, liveness
from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.space import SearchSpace
from torchrec_nas.stages import run_search, run_supernet
from torchrec_nas.stages.rerank import (
    _Candidate,
    _confirm,
    baseline_architecture,
    baseline_candidates,
    resolve_budgets,
)

# The tiny space plus DCN-v2's cross; baselines 16-wide so that they fit its widths.
LOCAL = (
    TINY.replace(
        "  preset: nasrec-full\n",
        "  preset: nasrec-full\n  dense_ops: [fc, gating, sum, dot, cross]\n",
    )
    .replace(
        "train: {progress: false}",
        "train:\n  progress: false\n  baselines: {models: [dlrm, dcn], dense_arch_layer_sizes: [16],"
        " over_arch_layer_sizes: [16]}",
    )
    .replace(
        "rerank: {top_k: 3, epochs: 0.2, eval_every: 5, patience: 1}",
        "rerank: {top_k: 1, epochs: 0.2, eval_every: 5, patience: 1, baselines: [dcn, dlrm],"
        " layer_norm: [true, false], local_rounds: 2, local_children: 2, confirm_top: 2,"
        " confirm_seeds: 1}",
    )
)


def test_baselines_layer_norms_and_hill_climbing_are_trained_and_resume(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(LOCAL)
    cfg = Config.load(tmp_path / "c.yaml")
    out = tmp_path / "run"
    run_supernet(cfg, out)
    summary = run_search(cfg, out)
    rows = summary["rerank"]
    trained = [r for r in rows if "val" in r]
    # dcn fits (num_blocks 3 = bottom 16 + cross + nothing more); dlrm has no dlrm_dot here.
    skipped = {r["origin"]: r["skipped"] for r in rows if "skipped" in r}
    assert "not an architecture of the space" in skipped["baseline:dlrm"]
    origins = [(r["origin"], r["layer_norm"]) for r in trained]
    assert origins[:4] == [
        ("supernet", True),
        ("supernet", False),
        ("baseline:dcn", True),
        ("baseline:dcn", False),
    ]
    assert [o for o, _ in origins[4:]] == ["local:1", "local:1", "local:2", "local:2"]
    assert len({r["hash"] for r in trained}) == len(trained)
    picked = [r for r in trained if r["picked"]]
    assert len(picked) == 1
    # The two best by one seed trained with a second; the lower mean of the two is picked.
    # So is the baseline's better LayerNorm setting, whatever its rank.
    confirmed = [r for r in trained if "val_seeds" in r]
    first_two = sorted(r["val"]["logloss"] for r in trained)[:2]
    dcn = min(
        (r for r in trained if r["origin"] == "baseline:dcn"), key=lambda r: r["val"]["logloss"]
    )
    expected = set(first_two) | {dcn["val"]["logloss"]}
    assert {r["val"]["logloss"] for r in confirmed} == expected
    assert len(confirmed) == len(expected)
    assert all(len(r["val_seeds"]["logloss"]) == 2 for r in confirmed)
    # The lowest mean wins if it is the baseline's or beats it by more than its standard
    # error; otherwise the baseline is kept.
    best = min(confirmed, key=lambda r: r["val_seeds"]["mean_logloss"])
    if (
        best["origin"] == "baseline:dcn"
        or best["val_seeds"]["margin"] > best["val_seeds"]["standard_error"]
    ):
        assert picked[0] is best
    else:
        assert picked[0] is dcn
    for r in confirmed:
        if r["origin"] != "baseline:dcn":
            assert r["val_seeds"]["margin"] == pytest.approx(
                dcn["val_seeds"]["mean_logloss"] - r["val_seeds"]["mean_logloss"]
            )
    best = Architecture.load(out / "best_arch.json")
    assert best.canonical_hash() == picked[0]["hash"]
    assert best.layer_norm == picked[0]["layer_norm"]
    from torchrec_nas.report import write_report

    report = Path(write_report(cfg, out)).read_text()
    assert "## Stand-alone stage" in report and "| baseline:dcn | no | no |" in report
    assert f"picked by the stand-alone stage (below): `{picked[0]['hash']}`" in report
    assert "left out: baseline:dlrm: not an architecture of the space" in report
    cache = (out / "rerank_cache.jsonl").read_text()
    again = run_search(cfg, out)
    assert again["best"]["hash"] == picked[0]["hash"]
    assert (out / "rerank_cache.jsonl").read_text() == cache
    assert json.loads((out / "search.json").read_text())["rerank"] == again["rerank"]
    # Killed mid-stage (only the first trainings cached): the rerun retrains the rest and ends
    # where the uninterrupted run ended.
    lines = [line for line in cache.splitlines() if line]
    (out / "rerank_cache.jsonl").write_text("\n".join(lines[:5]) + "\n")
    resumed = run_search(cfg, out)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed["rerank"]) == strip(again["rerank"])
    assert resumed["best"]["hash"] == picked[0]["hash"]


def test_a_baseline_over_the_budget_is_skipped_by_name(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(LOCAL)
    cfg = Config.load(tmp_path / "c.yaml")
    objective = dataclasses.replace(cfg.search.objective, budgets={"flops": 2000.0})
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, objective=objective))
    rows = baseline_candidates(cfg, lambda arch: {"flops": 5000.0})
    assert [(name, arch) for name, arch, _ in rows] == [("dcn", None), ("dlrm", None)]
    assert rows[0][2] == "flops 5000 over the budget 2000"
    assert rows[1][2].startswith("not an architecture of the space")
    fits = baseline_candidates(cfg, lambda arch: {"flops": 1000.0})
    assert fits[0][1] is not None and not fits[0][1].layer_norm


def test_bad_rerank_fields_are_named(tmp_path: Path) -> None:
    for bad, message in (
        ("baselines: [fm]", "baselines: 'fm' is not one of dlrm, dcn"),
        ("layer_norm: [true, true]", "layer_norm must list true, false or both once"),
        ("local_rounds: -1", "local_rounds must be >= 0"),
        ("min_fraction: 1.5", "min_fraction must be in [0, 1), got 1.5"),
    ):
        (tmp_path / "c.yaml").write_text(
            LOCAL.replace(
                "local_rounds: 2", bad if bad.startswith("local") else f"local_rounds: 2, {bad}"
            )
            .replace(
                "baselines: [dcn, dlrm],",
                "" if bad.startswith("baselines") else "baselines: [dcn, dlrm],",
            )
            .replace(
                " layer_norm: [true, false],",
                "" if bad.startswith("layer_norm") else " layer_norm: [true, false],",
            )
        )
        with pytest.raises(ConfigError, match=re.escape(message)):
            Config.load(tmp_path / "c.yaml")


def test_a_budget_may_name_a_baseline(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        LOCAL.replace(
            "  allow_chance: true", "  objective: {budgets: {flops: dcn}}\n  allow_chance: true"
        )
    )
    cfg = Config.load(tmp_path / "c.yaml")
    assert cfg.search.objective.budgets == {"flops": "dcn"}
    arch = baseline_architecture(cfg, "dcn")
    assert not arch.layer_norm
    resolved = resolve_budgets(cfg, lambda a: {"flops": 1234.0 if a == arch else 0.0})
    assert resolved.search.objective.budgets == {"flops": 1234.0}
    # dlrm needs dlrm_dot, which this space lacks: the error names the budget.
    bad = dataclasses.replace(cfg.search.objective, budgets={"flops": "dlrm"})
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, objective=bad))
    with pytest.raises(ValueError, match=r"search.objective.budgets.flops: dlrm: .*dlrm_dot"):
        resolve_budgets(cfg, lambda a: {"flops": 1.0})
    (tmp_path / "bad.yaml").write_text(
        LOCAL.replace(
            "  allow_chance: true", "  objective: {budgets: {logloss: dcn}}\n  allow_chance: true"
        )
    )
    with pytest.raises(ConfigError, match="budgets.logloss: 'dcn' is neither a number nor"):
        Config.load(tmp_path / "bad.yaml")


def _fake_stage(losses: dict[str, list[float]]) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    """Trained candidates ``a`` (searched) and ``b`` (the baseline) whose validation loglosses
    per seed (0, 1, 2) are given."""
    space = SearchSpace.preset("nasrec-small")
    archs = {name: space.sample(random.Random(i)) for i, name in enumerate(losses)}
    hashes = {name: a.canonical_hash() for name, a in archs.items()}
    origins = {"a": "local:1", "b": "baseline:dcn"}
    trained = {
        hashes[n]: (_Candidate(archs[n], origins[n]), {"val": {"logloss": losses[n][0]}})
        for n in losses
    }
    rows = [{"hash": hashes[n], "origin": origins[n]} for n in losses]
    by_hash = {hashes[n]: losses[n] for n in losses}
    return (
        trained,
        rows,
        lambda arch, seed: {"val": {"logloss": by_hash[arch.canonical_hash()][seed]}},
    )


@pytest.mark.parametrize(
    "losses, winner",
    [
        ({"a": [0.40, 0.401, 0.402], "b": [0.43, 0.431, 0.432]}, "a"),  # far beyond the noise
        ({"a": [0.420, 0.432, 0.430], "b": [0.429, 0.425, 0.433]}, "b"),  # lower mean, within it
        ({"a": [0.44, 0.44, 0.44], "b": [0.43, 0.43, 0.43]}, "b"),  # the baseline is best
    ],
)
def test_a_searched_model_replaces_the_baseline_only_beyond_its_noise(
    losses: dict[str, list[float]], winner: str
) -> None:
    trained, rows, trainer = _fake_stage(losses)
    pick = _confirm(2, 2, 0, trained, rows, trainer)
    assert pick.origin == ("local:1" if winner == "a" else "baseline:dcn")
    a = rows[0]["val_seeds"]
    assert a["logloss"] == losses["a"] and a["margin"] == pytest.approx(
        sum(losses["b"]) / 3 - sum(losses["a"]) / 3
    )


def test_a_mutant_over_the_budget_is_repaired_by_narrowing_a_live_block() -> None:
    from test_baseline_space import DENSE_ARCH, OVER_ARCH, _demo_space

    from torchrec_nas.baseline_archs import dcn_architecture
    from torchrec_nas.stages.rerank import _mutant

    space = _demo_space()
    parent = dcn_architecture(space, DENSE_ARCH, OVER_ARCH, layer_norm=False)

    def costs(arch: Architecture) -> dict[str, float]:  # the live blocks' widths
        live = liveness(arch)
        return {"flops": float(sum(b.dense_dim for b, v in zip(arch.blocks, live) if v.dense_op))}

    cfg = Config.load(Path(__file__).parents[1] / "configs" / "demo.yaml")
    objective = dataclasses.replace(cfg.search.objective, budgets={"flops": costs(parent)["flops"]})
    cfg = dataclasses.replace(
        cfg, space=space, search=dataclasses.replace(cfg.search, objective=objective)
    )
    rng = random.Random(0)
    seen = {parent.canonical_hash()}
    repaired = 0
    for _ in range(30):
        child = _mutant(cfg, parent, rng, seen, costs)
        assert child is not None and child.canonical_hash() not in seen
        assert costs(child)["flops"] <= costs(parent)["flops"]
        assert not child.layer_norm
        seen.add(child.canonical_hash())
        widths = [b.dense_dim for b in child.blocks]
        repaired += any(w < p.dense_dim for w, p in zip(widths, parent.blocks)) and any(
            w > p.dense_dim or b.dense_op != p.dense_op
            for w, b, p in zip(widths, child.blocks, parent.blocks)
        )
    assert repaired  # some moves that cost more were paid for by a narrower block
