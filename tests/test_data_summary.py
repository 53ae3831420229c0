"""The data summary: rows and positive rate per split, features, bad rows; JSON and Markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path

from torchrec_nas.data import (
    BucketizeConfig,
    ColumnConfig,
    DataConfig,
    SyntheticConfig,
    TableSchema,
    build_data,
    preprocess_main,
)
from torchrec_nas.data.summary import DataSummary, FeatureSummary, summarize_data


def _table(tmp_path: Path) -> Path:
    lines = ["label,age,city,genres"]
    for i in range(100):
        age = "" if i % 4 == 0 else str(20 + i)
        lines.append(f"{int(i % 5 == 0)},{age},c{i % 3},a|b")
    lines.append("x,1,c1,a")  # a bad label, skipped
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cfg(path: Path, **kw: object) -> DataConfig:
    schema = TableSchema(
        dense=[ColumnConfig("age")],
        categorical=[ColumnConfig("city")],
        multi_hot=[ColumnConfig("genres")],
        # "label" is bucketized only: not a dense feature, so not in the dense figures
        bucketize=[ColumnConfig("label", bins=2), ColumnConfig("age", bins=4)],
    )
    return DataConfig(
        source="tabular",
        path=str(path),
        schema=schema,
        on_bad_row="skip",
        batch_size=8,
        **kw,  # type: ignore[arg-type]
    )


def test_summary_of_a_table_and_of_its_cache(tmp_path: Path) -> None:
    path = _table(tmp_path)
    summary = summarize_data(build_data(_cfg(path)))
    assert summary.source == "tabular" and summary.skipped_bad_rows == 1
    assert summary.rows == {"train": 80, "val": 10, "test": 10}
    assert all(abs(r - 0.2) < 1e-9 for r in summary.positive_rate.values() if r is not None)
    by_name = {f.name: f for f in summary.features}
    age = by_name["age"]
    assert (age.kind, age.min, age.max, age.missing) == ("dense", 21.0, 119.0, 0.25)
    assert by_name["city"].kind == "sparse" and by_name["city"].table_rows == 4
    assert by_name["genres"].kind == "multi_hot" and by_name["genres"].table_rows == 3
    assert by_name["age_bucket"].kind == "bucketized"
    assert [f.name for f in summary.features if f.kind == "dense"] == ["age"]
    # the same figures from a cache, written and then reused
    cache = tmp_path / "cache"
    preprocess_main(_cfg(path), str(cache))
    for cfg in (_cfg(path, cache_dir=str(cache)), DataConfig(source="cache", path=str(cache))):
        again = summarize_data(build_data(cfg))
        assert again.rows == summary.rows and again.positive_rate == summary.positive_rate
        assert again.features == summary.features and again.skipped_bad_rows == 1


def test_summary_forms_are_json_safe_markdown_and_short_text(tmp_path: Path) -> None:
    summary = summarize_data(build_data(_cfg(_table(tmp_path))))
    summary.features.append(FeatureSummary("odd|name", "dense", min=float("nan"), max=math.inf))
    d = summary.to_dict()
    text = json.dumps(d, allow_nan=False)  # raises on NaN or inf
    assert json.loads(text)["features"][-1] == {
        "name": "odd|name",
        "kind": "dense",
        "table_rows": None,
        "min": None,
        "max": None,
        "missing": None,
    }
    md = summary.to_markdown()
    assert "| train | 80 | 0.2 |" in md and "| age | dense |  | 21 | 119 | 25.0% |" in md
    assert "odd\\|name" in md and "Rows skipped as bad: 1" in md
    console = summary.to_text()
    assert len(console.splitlines()) <= 4 and "1 bad rows skipped" in console
    assert "age 25%" in console


def test_summary_of_the_synthetic_source_and_of_criteo_buckets(tmp_path: Path) -> None:
    data = build_data(DataConfig(synthetic=SyntheticConfig(rows=2_000, cardinalities=100)))
    summary = summarize_data(data)
    assert sum(summary.rows.values()) == 2_000 and summary.rows["train"] == 1_600
    dense = [f for f in summary.features if f.kind == "dense"]
    assert len(dense) == 13 and all(f.min is not None and f.min < f.max for f in dense)  # type: ignore[operator]
    assert isinstance(DataSummary(**{**summary.__dict__}).to_markdown(), str)
    rows = [
        "\t".join(["1" if i % 3 == 0 else "0", *[str(i % 17)] * 13, *["0000abcd"] * 26])
        for i in range(60)
    ]
    path = tmp_path / "c.tsv"
    path.write_text("\n".join(rows) + "\n")
    cfg = DataConfig(source="criteo_tsv", path=str(path), bucketize_dense=BucketizeConfig(4))
    kinds = [f.kind for f in summarize_data(build_data(cfg)).features]
    assert kinds.count("dense") == 13 and kinds.count("bucketized") == 13
