"""Pruning over seeds: per-seed rows with mean and std, a rival for every target (sampled where
the search has none), and the verdict against the spread."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import train_tiny_run

from torchrec_nas.cli import main
from torchrec_nas.prune.compare import verdicts
from torchrec_nas.prune.options import PruneOptions, parse_seeds
from torchrec_nas.search.history import Evaluation

TINY = """
seed: 0
data: {batch_size: 128, synthetic: {rows: 3000, cardinalities: 300}}
space: {preset: nasrec-full, dense_dims: [16, 32], sparse_tokens: [4, 8]}
train:
  steps: 6
  eval_batches: 2
  progress: false
  lr_grid: [0.05]
  layer_norm_grid: [true]
  baselines: {models: [], dense_arch_layer_sizes: [16], over_arch_layer_sizes: [16]}
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from test_prune import TINY_ARCH

    config, run = train_tiny_run(tmp_path_factory.mktemp("prune_seeds"), TINY, TINY_ARCH)
    # A search history whose only candidate is larger than every target.
    huge = Evaluation(
        0, 0, TINY_ARCH, TINY_ARCH.canonical_hash(), {"logloss": 0.5}, {"flops": 1e12}, 0.5
    )
    (run / "history.jsonl").write_text(json.dumps(huge.to_dict()) + "\n")
    return config, run / "train" / "model_nasrec.pt"


def _prune(config: Path, model: Path, out: Path, *extra: str) -> dict:
    argv = ["prune", "--config", str(config), "--model", str(model), "--out", str(out)]
    argv += ["--method", "magnitude", "--steps", "1", "--finetune-steps", "2", "--quiet"]
    assert main([*argv, *extra]) == 0
    return json.loads((out / "prune.json").read_text())


def test_seeds_give_per_seed_rows_and_mean_std(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    config, model = tiny_run
    result = _prune(config, model, tmp_path / "p", "--target-flops", "0.5", "--seeds", "1,2")
    assert result["seeds"] == [1, 2]
    assert [e["seed"] for e in result["pruned"]] == [1, 2]
    assert all((tmp_path / "p" / e["model_file"]).is_file() for e in result["pruned"])
    (row,) = result["summary"]
    aucs = [e["test"]["auc"] for e in result["pruned"]]
    assert aucs[0] != aucs[1]  # each seed fine-tunes on other batches
    assert row["test_seeds"]["auc"]["mean"] == pytest.approx(sum(aucs) / 2)
    assert row["test_seeds"]["auc"]["std"] == pytest.approx(abs(aucs[0] - aucs[1]) / math.sqrt(2))
    assert result["control"]["seeds"] == [1, 2]
    assert " ± " in (tmp_path / "p" / "prune.md").read_text()
    # A rerun resumes from the finished fine-tunings and finds the same models.
    again = _prune(config, model, tmp_path / "p", "--target-flops", "0.5", "--seeds", "1,2")
    assert [e["test"] for e in again["pruned"]] == [e["test"] for e in result["pruned"]]


def test_target_below_every_searched_candidate_gets_a_sampled_rival(
    tiny_run: tuple[Path, Path], tmp_path: Path
) -> None:
    config, model = tiny_run
    extra = ["--target-flops", "0.4", "--seeds", "1,2", "--compare-searched", "--rival-steps", "3"]
    result = _prune(config, model, tmp_path / "p", *extra)
    (row,) = result["searched"]["rows"]
    cand = row["candidate"]
    assert cand["source"] == "sampled" and "sampled under the target" in cand["how"]
    assert cand["flops"] <= row["max_flops"]
    assert [s["seed"] for s in cand["seeds"]] == [1, 2] and cand["steps"] == 3
    verdict = row["verdict"]["magnitude"]
    assert isinstance(verdict["beyond_spread"], bool)
    text = (tmp_path / "p" / "prune.md").read_text()
    assert "(sampled)" in text and cand["how"] in text


def _stats(mean: float, std: float) -> dict[str, dict[str, float]]:
    return {"auc": {"mean": mean, "std": std}, "logloss": {"mean": 0.5, "std": std}}


def test_spread_verdict_is_computed() -> None:
    result = {
        "summary": [{"method": "magnitude", "target": 0.5, "test_seeds": _stats(0.80, 0.001)}]
    }
    beyond = verdicts(result, 0.5, {"test_seeds": _stats(0.79, 0.002)})["magnitude"]
    assert beyond["beyond_spread"] and beyond["verdict"] == "pruned"
    assert beyond["difference"] == pytest.approx(0.01)
    within = verdicts(result, 0.5, {"test_seeds": _stats(0.801, 0.003)})["magnitude"]
    assert not within["beyond_spread"] and within["verdict"] == "within the spread"
    assert within["winner"] == "searched"
    one_seed = verdicts(result, 0.5, {"test_seeds": _stats(0.70, math.nan)})["magnitude"]
    assert not one_seed["beyond_spread"]


def test_bad_seeds_are_refused() -> None:
    assert parse_seeds("1,2,3") == [1, 2, 3]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("1,x")
    with pytest.raises(ValueError, match="--seeds"):
        PruneOptions(targets=[0.5], seeds=[1, 1]).validate()
