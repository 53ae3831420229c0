"""Comparisons over seeds: mean and spread, the spread rule, final training with several seeds."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest
import torch

from torchrec_nas.config import Config
from torchrec_nas.report import seeds_section
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.stages import train_final
from torchrec_nas.stages.spread import (
    aggregate_seeds,
    beyond_spread,
    compare_to_baselines,
    mean_std,
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
train:
  steps: 4
  eval_batches: 2
  checkpoint_every: 2
  progress: false
  seeds: [5, 6]
  baselines: {models: [dlrm], dense_arch_layer_sizes: [16], over_arch_layer_sizes: [16]}
"""


def test_mean_and_sample_std() -> None:
    mean, std = mean_std([0.80, 0.81, 0.82])
    assert mean == pytest.approx(0.81) and std == pytest.approx(0.01)
    one = mean_std([0.5])
    assert one[0] == 0.5 and math.isnan(one[1])
    with pytest.raises(ValueError):
        mean_std([])
    agg = aggregate_seeds([{"auc": 0.7, "logloss": 0.5}, {"auc": 0.8, "logloss": 0.4}])
    assert agg["auc"]["mean"] == pytest.approx(0.75)
    assert agg["logloss"]["std"] == pytest.approx(math.sqrt(0.005))


def test_spread_rule_needs_the_difference_to_exceed_both_spreads_combined() -> None:
    # sqrt(0.003^2 + 0.004^2) = 0.005: a difference of 0.006 exceeds it, 0.004 does not.
    a = {"mean": 0.806, "std": 0.003}
    assert beyond_spread(a, {"mean": 0.800, "std": 0.004})
    assert not beyond_spread(a, {"mean": 0.802, "std": 0.004})
    assert not beyond_spread({"mean": 5.0, "std": 3.0}, {"mean": 0.0, "std": 4.0})  # 5 = 5
    assert beyond_spread({"mean": 5.0, "std": 3.0}, {"mean": -0.5, "std": 4.0})
    assert not beyond_spread(a, {"mean": 0.0, "std": math.nan})  # one seed: unknown spread
    results = {
        "nasrec": {"test_seeds": {"auc": a, "logloss": {"mean": 0.45, "std": 0.001}}},
        "dlrm": {
            "test_seeds": {
                "auc": {"mean": 0.800, "std": 0.004},
                "logloss": {"mean": 0.4505, "std": 0.001},
            }
        },
    }
    cmp = compare_to_baselines(results)
    assert cmp["dlrm"]["auc"]["beyond_spread"] is True
    assert cmp["dlrm"]["auc"]["difference"] == pytest.approx(0.006)
    assert cmp["dlrm"]["logloss"]["beyond_spread"] is False


def test_train_final_trains_every_model_with_each_seed_and_resumes(tmp_path: Path) -> None:
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY)
    cfg = Config.load(cfg_path)
    data = LocalRuntime("cpu").data(cfg)
    arch = cfg.space.sample(random.Random(1))
    out = tmp_path / "run"
    results = train_final(cfg, out, arch, data)
    assert set(results) == {"nasrec", "dlrm"}
    for name, r in results.items():
        # The keys of one seed are kept (the first seed's model), plus per-seed rows.
        assert {"test", "val", "lr", "train", "flops", "params"} <= set(r)
        assert [row["seed"] for row in r["seeds"]] == [5, 6]
        assert r["seeds"][0]["test"] == r["test"]
        aucs = [row["test"]["auc"] for row in r["seeds"]]
        assert r["test_seeds"]["auc"]["mean"] == pytest.approx(sum(aucs) / 2)
        assert r["test_seeds"]["auc"]["std"] == pytest.approx(abs(aucs[0] - aucs[1]) / math.sqrt(2))
        assert aucs[0] != aucs[1]  # the seeds initialize differently
        for s in (5, 6):
            assert (out / "train" / name / f"seed_{s}" / "train_log.jsonl").exists()
    assert set(results["nasrec"]["versus_baselines"]) == {"dlrm"}
    on_disk = json.loads((out / "train" / "results.json").read_text())
    assert on_disk["dlrm"]["seeds"][1]["test"] == results["dlrm"]["seeds"][1]["test"]
    # A rerun resumes every finished trial: same figures, nothing retrained.
    again = train_final(cfg, out, arch, data)
    for name in results:
        assert again[name]["test_seeds"] == results[name]["test_seeds"]
        assert again[name]["train"]["resumed_from"] == again[name]["train"]["steps"]
    section = "\n".join(seeds_section(again))
    assert "± " in section and "sqrt(std_a² + std_b²)" in section
    assert "nasrec against dlrm" in section


def test_one_seed_keeps_the_single_seed_layout(tmp_path: Path) -> None:
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY)
    cfg = Config.load(cfg_path)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seeds=[]))
    data = LocalRuntime("cpu").data(cfg)
    results = train_final(cfg, tmp_path, None, data)
    assert (tmp_path / "train" / "dlrm" / "train_log.jsonl").exists()
    assert not (tmp_path / "train" / "dlrm" / "seed_0").exists()
    assert [row["seed"] for row in results["dlrm"]["seeds"]] == [0]
    assert math.isnan(results["dlrm"]["test_seeds"]["auc"]["std"]) or (
        results["dlrm"]["test_seeds"]["auc"]["std"] is None
    )
    assert seeds_section(results) == []


def test_layer_norm_grid_trains_the_searched_model_both_ways(tmp_path: Path) -> None:
    from torchrec_nas.stages.export import InferenceModel, example_inputs, export_model
    from torchrec_nas.stages.models import load_model

    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY)
    cfg = Config.load(cfg_path)
    train = dataclasses.replace(cfg.train, layer_norm_grid=[True, False], lr_grid=[0.05, 0.1])
    space = dataclasses.replace(cfg.space, head_tokens=(True, False))
    cfg = dataclasses.replace(cfg, train=train, space=space)
    data = LocalRuntime("cpu").data(cfg)
    arch = dataclasses.replace(cfg.space.sample(random.Random(1)), head_tokens=False)
    out = tmp_path / "run"
    results = train_final(cfg, out, arch, data)
    nasrec = results["nasrec"]
    assert set(nasrec["lr_trials"]) == {
        f"{lr},layer_norm={n}" for lr in ("0.05", "0.1") for n in ("true", "false")
    }
    best = min(nasrec["lr_trials"].values(), key=lambda t: t["val_logloss"])
    assert nasrec["val"]["logloss"] == best["val_logloss"]
    assert set(results["dlrm"]["lr_trials"]) == {"0.05", "0.1"}  # baselines have no norms
    without = out / "train" / "nasrec" / "seed_5" / "lr_0.05" / "layer_norm_false"
    assert (without / "train_log.jsonl").exists()
    # The saved model is built as chosen: with or without LayerNorms.
    model = load_model(out / "train" / "model_nasrec.pt")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert bool(norms) == nasrec["layer_norm"]
    # It exports like any searched model (a head without tokens included).
    result = export_model(out / "train" / "model_nasrec.pt", tmp_path / "model.pt2")
    program = torch.export.load(result.program).module()
    eager = InferenceModel(model).eval()
    tables = model.tables
    dense, sparse = example_inputs(data.spec, tables, 5)
    with torch.no_grad():
        torch.testing.assert_close(program(dense, sparse), eager(dense, sparse))
