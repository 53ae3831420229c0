"""Exporting trained models with ``torch.export``: the round trip, dynamic batch, quantization."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from torchrec_nas.cli import main
from torchrec_nas.config import Config
from torchrec_nas.data import DataSpec, build_data
from torchrec_nas.space import SearchSpace
from torchrec_nas.stages.export import (
    InferenceModel,
    example_inputs,
    export_model,
    quantize_embeddings,
    table_bytes,
)
from torchrec_nas.stages.models import load_model, read_model_file

CRITEO_SAMPLE = [
    Path(__file__).resolve().parents[2] / "shared" / "data" / "criteo_kaggle_sample_10k.tsv",
    Path("/work/shared/data/criteo_kaggle_sample_10k.tsv"),
]

TINY = """
seed: 0
data: {data}
space: {{preset: nasrec-full, dense_dims: [16, 32], sparse_tokens: [4, 8]}}
train:
  steps: 8
  eval_batches: 2
  progress: false
  baselines: {{models: [dlrm], dense_arch_layer_sizes: [16], over_arch_layer_sizes: [16]}}
"""
SYNTHETIC = "{batch_size: 128, synthetic: {rows: 3000, cardinalities: 300}}"


def _train(root: Path, data_yaml: str) -> tuple[Config, Path]:
    cfg_path = root / "tiny.yaml"
    cfg_path.write_text(TINY.format(data=data_yaml))
    cfg = Config.load(str(cfg_path))
    space = SearchSpace.from_mapping(
        {"preset": "nasrec-full", "dense_dims": [16, 32], "sparse_tokens": [4, 8]}, "test"
    )
    arch_path = root / "arch.json"
    arch_path.write_text(space.sample(random.Random(3)).to_json())
    out = root / "out"
    argv = ["train", "--config", str(cfg_path), "--out", str(out), "--arch", str(arch_path)]
    assert main([*argv, "--quiet"]) == 0
    return cfg, out / "train"


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    return _train(tmp_path_factory.mktemp("export"), SYNTHETIC)


@pytest.mark.parametrize("name", ["nasrec", "dlrm"])
def test_export_round_trip_with_dynamic_batch(
    synthetic_run: tuple[Config, Path], tmp_path: Path, name: str
) -> None:
    _, train = synthetic_run
    result = export_model(train / f"model_{name}.pt", tmp_path / "model.pt2")
    program = torch.export.load(result.program).module()
    eager = InferenceModel(load_model(train / f"model_{name}.pt")).eval()
    spec = read_model_file(train / f"model_{name}.pt")["spec"]
    configs = json.loads(Path(result.embedding_configs).read_text())
    assert [c["feature_names"] for c in configs] == [[f] for f in spec["sparse_names"]]
    assert (result.architecture is not None) == (name == "nasrec")
    tables = [
        t
        for m in eager.modules()
        if isinstance(m, EmbeddingBagCollection)
        for t in m.embedding_bag_configs()
    ]
    for batch_size in (3, 17):
        dense, sparse = example_inputs(DataSpec.from_dict(spec), tables, batch_size)
        with torch.no_grad():
            expected = eager(dense, sparse)
            assert expected.shape == (batch_size,)
            torch.testing.assert_close(program(dense, sparse), expected)


def test_export_on_real_criteo_rows(tmp_path: Path) -> None:
    sample = next((p for p in CRITEO_SAMPLE if p.exists()), None)
    if sample is None:
        pytest.skip("shared/data/criteo_kaggle_sample_10k.tsv is not beside the checkout")
    data_yaml = f"{{source: criteo_tsv, path: {sample}, batch_size: 256, min_frequency: 2}}"
    cfg, train = _train(tmp_path, data_yaml)
    result = export_model(train / "model_nasrec.pt", tmp_path / "model.pt2")
    program = torch.export.load(result.program).module()
    eager = InferenceModel(load_model(train / "model_nasrec.pt")).eval()
    data = build_data(cfg.data, seed=cfg.seed)
    sizes = set()
    with torch.no_grad():
        for batch in data.test:
            sizes.add(batch.dense_features.shape[0])
            expected = eager(batch.dense_features, batch.sparse_features)
            got = program(batch.dense_features, batch.sparse_features)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert len(sizes) > 1  # full batches and the last, partial one


@pytest.mark.parametrize("quantize", ["int8", "int4"])
def test_quantized_export(
    synthetic_run: tuple[Config, Path], tmp_path: Path, quantize: str
) -> None:
    _, train = synthetic_run
    path = train / "model_nasrec.pt"
    result = export_model(path, tmp_path / "model.pt2", quantize=quantize)  # type: ignore[arg-type]
    assert result.exported_table_bytes < result.table_bytes
    eager = InferenceModel(load_model(path)).eval()
    quantized = quantize_embeddings(eager, quantize)  # type: ignore[arg-type]
    assert table_bytes(quantized) == result.exported_table_bytes
    program = torch.export.load(result.program).module()
    spec = read_model_file(path)["spec"]
    dense, sparse = example_inputs(DataSpec.from_dict(spec), eager.model.tables, 9)
    with torch.no_grad():
        torch.testing.assert_close(program(dense, sparse), quantized(dense, sparse))
        # Quantized tables change the logits a little, not wholesale.
        assert (quantized(dense, sparse) - eager(dense, sparse)).abs().max() < 0.5


def test_export_command(
    synthetic_run: tuple[Config, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, train = synthetic_run
    out = tmp_path / "served" / "model.pt2"
    assert main(["export", "--model", str(train / "model_nasrec.pt"), "--out", str(out)]) == 0
    assert out.exists() and (out.parent / "model.architecture.json").exists()
    assert (out.parent / "model.embedding_configs.json").exists()
    assert json.loads(capsys.readouterr().out)["program"] == str(out)
    assert main(["export", "--model", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_export_latency_times_each_variant(synthetic_run: tuple[Config, Path]) -> None:
    from torchrec_nas.stages.export_latency import export_latency

    _, train = synthetic_run
    result = export_latency(train / "model_nasrec.pt", batch_size=64, repeats=2)
    assert set(result) == {"eager", "exported", "exported_int8"}
    assert result["exported"]["max_abs_logit_diff"] == 0.0
    assert 0.0 < result["exported_int8"]["max_abs_logit_diff"] < 0.5
    for row in result.values():
        assert 0.0 < row["min_ms"] <= row["median_ms"] <= row["max_ms"]
