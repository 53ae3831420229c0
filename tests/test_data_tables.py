"""Tables a new user brings: bucketized numeric columns, dense-only schemas, text labels,
formats known by content, and mistakes that are said out loud."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from torchrec_nas.config_utils import ConfigError, from_mapping
from torchrec_nas.data import (
    BucketizeConfig,
    ColumnConfig,
    DataConfig,
    DataError,
    DataSpec,
    LabelRule,
    TableSchema,
    build_data,
    load_cache,
    preprocess_main,
)
from torchrec_nas.data.bucketize import bucket_rows, fit_quantile_edges


def _table(tmp_path: Path, rows: int = 100, name: str = "people.csv") -> Path:
    """``label,age,score,city``: age ``i`` (empty every 10th row), score ``i % 7``."""
    lines = ["label,age,score,city"]
    for i in range(rows):
        age = "" if i % 10 == 9 else str(i)
        lines.append(f"{i % 2},{age},{i % 7},c{i % 3}")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _cfg(path: Path, schema: TableSchema, **kw: object) -> DataConfig:
    kw.setdefault("split", "time")  # file order: train is rows 0..79
    return DataConfig(source="tabular", path=str(path), schema=schema, batch_size=8, **kw)  # type: ignore[arg-type]


def _all_rows(stream: object) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    dense, ids = [], {}
    for batch in stream:  # type: ignore[attr-defined]
        dense.append(batch.dense_features)
        for key, jt in batch.sparse_features.to_dict().items():
            ids.setdefault(key, []).append(jt.values())
    return torch.cat(dense), {k: torch.cat(v) for k, v in ids.items()}


def test_quantile_edges_and_rows() -> None:
    assert fit_quantile_edges(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist() == [2.5]
    assert fit_quantile_edges(np.array([5.0, 5.0, np.nan]), 8).size == 0  # one value, no edge
    rows = bucket_rows(np.array([1.0, 2.5, 3.0, np.nan]), np.array([2.5]))
    assert rows.tolist() == [1, 2, 2, 0]


def test_a_column_can_be_dense_and_bucketized_with_edges_from_train_only(
    tmp_path: Path,
) -> None:
    schema = TableSchema(
        dense=[ColumnConfig("age")],
        categorical=[ColumnConfig("city")],
        bucketize=[ColumnConfig("age", bins=4)],
    )
    data = build_data(_cfg(_table(tmp_path), schema))
    spec = data.spec
    assert spec.dense_names == ["age"] and spec.sparse_names == ["city", "age_bucket"]
    edges = spec.bucket_edges["age_bucket"]
    train_ages = [float(i) for i in range(80) if i % 10 != 9]
    assert edges == fit_quantile_edges(np.array(train_ages), 4).tolist()
    assert max(edges) < 79  # val/test ages (80..99) did not move the edges
    assert spec.num_embeddings[1] == len(edges) + 2
    dense, ids = _all_rows(data.test)  # rows 90..99: age 99 is missing
    assert ids["age_bucket"].tolist() == [len(edges) + 1] * 9 + [0]
    assert dense[:, 0].tolist() == [float(a) for a in range(90, 99)] + [0.0]


def test_transforms_compose_and_standardize_clips(tmp_path: Path) -> None:
    schema = TableSchema(
        dense=[ColumnConfig("age", transform=["log", "standardize"], clip=1.0)],
        categorical=[ColumnConfig("city")],
    )
    data = build_data(_cfg(_table(tmp_path), schema))
    train = np.log1p([float(i) if i % 10 != 9 else 0.0 for i in range(80)])
    mean, std = train.mean(), train.std()
    dense, _ = _all_rows(data.val)
    ages = np.array([float(i) if i % 10 != 9 else 0.0 for i in range(80, 90)])
    want = np.clip((np.log1p(ages) - mean) / std, -1.0, 1.0)
    assert np.allclose(dense[:, 0].numpy(), want, atol=1e-5)
    assert dense.abs().max() <= 1.0
    with pytest.raises(ConfigError, match="log before standardize"):
        from_mapping(ColumnConfig, {"column": "x", "transform": ["standardize", "log"]})
    with pytest.raises(ConfigError, match="clip: 2.0 needs .* standardize"):
        from_mapping(ColumnConfig, {"column": "x", "transform": "log", "clip": 2})
    with pytest.raises(ValueError, match="'age' is listed twice"):
        TableSchema(categorical=[ColumnConfig("age")], bucketize=[ColumnConfig("age")]).validate()


def test_dense_only_tables(tmp_path: Path) -> None:
    path = _table(tmp_path)
    dense_only = {"dense": [{"column": "age"}, {"column": "score"}]}
    with pytest.raises(ConfigError, match="bucketize a numeric column"):
        from_mapping(DataConfig, {"source": "tabular", "path": str(path), "schema": dense_only})
    bucketized = {**dense_only, "bucketize": [{"column": "score", "bins": 3}]}
    cfg = from_mapping(
        DataConfig, {"source": "tabular", "path": str(path), "schema": bucketized, "split": "time"}
    )
    data = build_data(cfg)
    assert data.spec.dense_names == ["age", "score"] and data.spec.sparse_names == ["score_bucket"]
    whole = from_mapping(
        DataConfig,
        {
            "source": "tabular",
            "path": str(path),
            "schema": dense_only,
            "bucketize_dense": {"bins": 4},
        },
    )
    assert build_data(whole).spec.sparse_names == ["age_bucket", "score_bucket"]
    only = {"bucketize": [{"column": "age"}]}  # bucketized only: not a dense feature
    data = build_data(
        from_mapping(
            DataConfig, {"source": "tabular", "path": str(path), "schema": only, "batch_size": 8}
        )
    )
    assert data.spec.dense_names == [] and data.spec.sparse_names == ["age_bucket"]
    assert next(iter(data.train)).dense_features.shape[1] == 0


def test_bucketize_dense_on_criteo_rows_is_stored_in_the_cache(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(300):
        ints = ["" if rng.random() < 0.2 else str(rng.integers(-2, 500)) for _ in range(13)]
        cats = [f"{rng.integers(0, 30):08x}" for _ in range(26)]
        lines.append("\t".join([str(i % 4 == 0 and 1 or 0), *ints, *cats]))
    path = tmp_path / "criteo.tsv"
    path.write_text("\n".join(lines) + "\n")
    plain = DataConfig(source="criteo_tsv", path=str(path))
    cfg = DataConfig(
        source="criteo_tsv", path=str(path), batch_size=32, bucketize_dense=BucketizeConfig(8)
    )
    data = build_data(cfg)
    spec = data.spec
    assert spec.dense_names == build_data(plain).spec.dense_names  # still dense too
    assert spec.sparse_names[26:] == [f"I{i}_bucket" for i in range(1, 14)]
    assert all(2 < spec.num_embeddings[26 + i] <= 9 for i in range(13))
    batch = next(iter(data.train))
    assert int(batch.sparse_features["I1_bucket"].values().min()) == 0  # missing has row 0
    cache = tmp_path / "cache"
    assert preprocess_main(cfg, str(cache))["reused"] is False
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["spec"]["bucket_edges"] == spec.bucket_edges
    cached = build_data(DataConfig(source="cache", path=str(cache)))
    assert cached.spec == spec and DataSpec.from_dict(spec.to_dict()) == spec
    # other bins are another cache; no bucketizing keeps the spec's old form
    other = DataConfig(source="criteo_tsv", path=str(path), bucketize_dense=BucketizeConfig(4))
    assert preprocess_main(other, str(cache))["reused"] is False
    assert "bucket_edges" not in build_data(plain).spec.to_dict()
    some = DataConfig(
        source="criteo_tsv", path=str(path), bucketize_dense=BucketizeConfig(4, ["I2", "I9"])
    )
    assert build_data(some).spec.sparse_names[26:] == ["I2_bucket", "I9_bucket"]
    wrong = DataConfig(
        source="criteo_tsv", path=str(path), bucketize_dense=BucketizeConfig(4, ["x"])
    )
    with pytest.raises(DataError, match=r"bucketize_dense.columns: 'x' is not a dense feature"):
        build_data(wrong)
    assert load_cache(cache).spec.bucket_edges["I1_bucket"] == pytest.approx(
        build_data(other).spec.bucket_edges["I1_bucket"]
    )
    with pytest.raises(ConfigError, match="bucketize_dense: not available for source 'cache'"):
        from_mapping(DataConfig, {"source": "cache", "path": "c", "bucketize_dense": {"bins": 8}})


def test_bucketize_dense_on_the_synthetic_source() -> None:
    small = {"synthetic": {"rows": 2_000, "num_dense": 3, "num_sparse": 6, "cardinalities": 50}}
    plain = build_data(from_mapping(DataConfig, small))
    cfg = from_mapping(DataConfig, {**small, "bucketize_dense": {"bins": 8, "columns": ["int_1"]}})
    data = build_data(cfg)
    spec = data.spec
    assert spec.dense_names == plain.spec.dense_names
    assert spec.sparse_names == [*plain.spec.sparse_names, "int_1_bucket"]
    rows = spec.num_embeddings[-1]  # up to 8 bins (tied quantiles merge) and the missing row
    assert 4 <= rows <= 9 and len(spec.bucket_edges["int_1_bucket"]) == rows - 2
    train = next(iter(data.train))
    ids = train.sparse_features["int_1_bucket"].values()
    assert int(ids.min()) >= 1 and int(ids.max()) < rows  # no value is missing
    assert torch.equal(train.dense_features, next(iter(plain.train)).dense_features)


def test_text_labels_by_positive_values(tmp_path: Path) -> None:
    path = tmp_path / "adult.csv"
    values = ["<=50K", ">50K", " >50K.", "<=50K."] * 10
    path.write_text(
        "age,city,income\n" + "".join(f"{i},c{i % 3},{v}\n" for i, v in enumerate(values))
    )
    schema = TableSchema(
        label=LabelRule("income", positive=[">50K", ">50K."]), categorical=[ColumnConfig("city")]
    )
    data = build_data(_cfg(path, schema))
    labels = torch.cat([b.labels for s in (data.train, data.val, data.test) for b in s])
    assert labels.tolist() == [0.0, 1.0, 1.0, 0.0] * 10
    numeric = TableSchema(label=LabelRule("income"), categorical=[ColumnConfig("city")])
    with pytest.raises(DataError, match=r"adult.csv: label column 'income' must be numeric") as e:
        build_data(_cfg(path, numeric))
    assert "schema.label.positive" in str(e.value)
    with pytest.raises(ConfigError, match="positive: list at least one value"):
        from_mapping(LabelRule, {"column": "income", "positive": []})


def test_formats_are_known_by_content(tmp_path: Path) -> None:
    source = _table(tmp_path)
    schema = TableSchema(categorical=[ColumnConfig("city")], dense=[ColumnConfig("age")])
    want = build_data(_cfg(source, schema))
    table = pacsv.read_csv(source)
    brotli = tmp_path / "x.parquet.brotli"
    pq.write_table(table, brotli, compression="brotli")
    misnamed = tmp_path / "people.csv.data"
    pq.write_table(table, misnamed)
    gz = tmp_path / "people.csv.gz"
    gz.write_bytes(gzip.compress(source.read_bytes()))
    tsv_gz = tmp_path / "people.tsv.gz"
    tsv_gz.write_bytes(gzip.compress(source.read_text().replace(",", "\t").encode()))
    for path in (brotli, misnamed, gz, tsv_gz):
        got = build_data(_cfg(path, schema))
        assert got.spec == want.spec and got.info["rows"] == want.info["rows"], path


def test_errors_never_print_undecodable_bytes(tmp_path: Path) -> None:
    schema = TableSchema(categorical=[ColumnConfig("city")])
    binary = tmp_path / "data.csv"
    binary.write_bytes(b"\x89\xff\x00\x01garbage\xfe,\x80\n" + bytes(range(256)) * 4)
    with pytest.raises(DataError) as e:
        build_data(_cfg(binary, schema))
    assert "header line is not UTF-8" in str(e.value) and str(e.value).isprintable()
    control = tmp_path / "control.csv"
    control.write_text("label,ci\x1bty,x\n1,a,b\n")
    with pytest.raises(DataError, match="schema column 'city' is not in the file") as e:
        build_data(_cfg(control, schema))
    assert str(e.value).isprintable() and "'ci\\x1bty'" in str(e.value)


def test_a_multi_hot_column_without_its_separator_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "movies.csv"
    path.write_text("label,genres\n" + "".join(f"{i % 2},Action;Drama\n" for i in range(30)))
    schema = TableSchema(multi_hot=[ColumnConfig("genres", separator="|")])
    with caplog.at_level(logging.WARNING):
        build_data(_cfg(path, schema))
    [message] = [r.getMessage() for r in caplog.records if "separator" in r.getMessage()]
    assert "'genres'" in message and "'|'" in message and "'Action;Drama'" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_data(_cfg(path, TableSchema(multi_hot=[ColumnConfig("genres", separator=";")])))
    assert not [r for r in caplog.records if "separator" in r.getMessage()]


def test_a_missing_file_names_the_config_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    schema = TableSchema(categorical=[ColumnConfig("city")])
    with pytest.raises(DataError) as e:
        build_data(_cfg(Path("data/people.csv"), schema))
    message = str(e.value)
    assert "data.path" in message and "resolved from the working directory" in message
    assert str(tmp_path / "data" / "people.csv") in message
    with pytest.raises(DataError, match=r"file not found \(data.path\)$"):
        build_data(_cfg(tmp_path / "absent.csv", schema))
    with pytest.raises(DataError, match=r"file not found \(data.path"):
        build_data(DataConfig(source="criteo_tsv", path=str(tmp_path / "train.txt")))


def test_the_census_example_config_reads_a_census_style_table(tmp_path: Path) -> None:
    example = Path(__file__).parents[1] / "configs" / "data" / "census_example.yaml"
    lines = ["age,hours_per_week,capital_gain,workclass,income"]
    for i in range(200):
        income = [">50K", "<=50K", ">50K.", "<=50K."][i % 4]
        lines.append(f"{17 + i % 60},{20 + i % 40},{(i * 37) % 5000},w{i % 5},{income}")
    path = tmp_path / "adult.csv"
    path.write_text("\n".join(lines) + "\n")
    mapping = dict(yaml.safe_load(example.read_text())["data"], path=str(path), batch_size=16)
    data = build_data(from_mapping(DataConfig, mapping, "census_example.yaml: data"))
    assert data.spec.dense_names == ["age", "hours_per_week", "capital_gain"]
    assert data.spec.sparse_names == ["workclass", "age_bucket", "hours_per_week_bucket"]
    assert sum(int(b.labels.sum()) for s in (data.train, data.val, data.test) for b in s) == 100
