"""The whole pipeline from a config alone on real Criteo rows and on a MovieLens-style table."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from torchrec_nas.cli import main

BUDGET = """
space: {preset: nasrec-full, dense_dims: [16, 32], sparse_tokens: [4, 8]}
supernet: {steps: 10, eval_batches: 2, progress: false}
search: {population: 4, tournament: 2, children: 2, generations: 1, finetune: {steps: 2, eval_batches: 2}, progress: false, allow_chance: true}
train: {steps: 6, eval_batches: 2, progress: false, baselines: {dense_arch_layer_sizes: [16], over_arch_layer_sizes: [16]}}
"""

CRITEO_SAMPLE = [
    Path(__file__).resolve().parents[2] / "shared" / "data" / "criteo_kaggle_sample_10k.tsv",
    Path("/work/shared/data/criteo_kaggle_sample_10k.tsv"),
]


def _run_demo(tmp_path: Path, data_yaml: str) -> dict:  # type: ignore[type-arg]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(data_yaml + BUDGET)
    out = tmp_path / "out"
    assert main(["demo", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert (out / "report.md").exists() and (out / "best_arch.json").exists()
    return json.loads((out / "train" / "results.json").read_text())


def test_real_criteo_rows_end_to_end(tmp_path: Path) -> None:
    sample = next((p for p in CRITEO_SAMPLE if p.exists()), None)
    if sample is None:
        pytest.skip("shared/data/criteo_kaggle_sample_10k.tsv is not beside the checkout")
    results = _run_demo(
        tmp_path,
        f"data: {{source: criteo_tsv, path: {sample}, batch_size: 256, min_frequency: 2}}\n",
    )
    assert set(results) == {"nasrec", "dlrm", "dcn"}
    assert results["nasrec"]["test"]["rows"] == 1000


def test_movielens_style_table_end_to_end(tmp_path: Path) -> None:
    rng = random.Random(0)
    genres = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]
    lines = ["userId,movieId,rating,timestamp,genres"]
    for i in range(3000):
        user, movie = rng.randrange(200), rng.randrange(300)
        picked = "|".join(rng.sample(genres, rng.randint(1, 3)))
        rating = min(
            5.0, max(0.5, round(2 * (2.5 + (user % 5 - movie % 3) * 0.6 + rng.gauss(0, 1))) / 2)
        )
        lines.append(f"{user},{movie},{rating},{1_260_000_000 + 60 * i},{picked}")
    table = tmp_path / "ratings.csv"
    table.write_text("\n".join(lines) + "\n")
    results = _run_demo(
        tmp_path,
        f"""data:
  source: tabular
  path: {table}
  batch_size: 128
  split: time
  schema:
    format: csv
    label: {{column: rating, rule: ">= 4"}}
    dense: [{{column: timestamp, transform: standardize}}]
    categorical: [{{column: userId}}, {{column: movieId, min_frequency: 2}}]
    multi_hot: [{{column: genres, separator: "|"}}]
    time_column: timestamp
""",
    )
    for name in ("nasrec", "dlrm", "dcn"):
        assert 0.0 < results[name]["test"]["logloss"] < 2.0
