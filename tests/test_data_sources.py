"""Avazu, KDD Cup 2012, tables by schema (MovieLens-style CSV and Parquet), TorchRec's npy days."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchrec_nas.config_utils import ConfigError, from_mapping
from torchrec_nas.data import (
    BadRowError,
    ColumnConfig,
    DataConfig,
    DataError,
    LabelRule,
    TableSchema,
    build_data,
)
from torchrec_nas.data.readers.avazu import COLUMNS as AVAZU_COLUMNS
from torchrec_nas.data.readers.avazu import SPARSE_NAMES as AVAZU_SPARSE
from torchrec_nas.data.readers.kdd12 import SPARSE_NAMES as KDD_SPARSE

REPO = Path(__file__).parents[1]


def _avazu(tmp_path: Path, rows: int = 60, bad: str | None = None) -> Path:
    rng = np.random.default_rng(0)
    lines = [",".join(AVAZU_COLUMNS)]
    for i in range(rows):
        hour = f"141021{i % 24:02d}" if i < rows // 2 else f"141022{i % 24:02d}"
        cats = [
            "1005",
            str(i % 3),
            f"{rng.integers(0, 5):08x}",
            "f3845767",
            "28905ebd",
            "ecad2386",
            "7801e8d9",
            "07d7df22",
            "a99f214a" if i % 4 else "",
            f"{rng.integers(0, 50):08x}",
            "711ee120",
            "1",
            "0",
            "15706",
            "320",
            "50",
            "1722",
            "0",
            "35",
            "-1",
            "79",
        ]
        lines.append(",".join([str(10_000_000 + i), str(int(i % 5 == 0)), hour, *cats]))
    if bad is not None:
        lines[7] = bad
    p = tmp_path / "avazu.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_avazu(tmp_path: Path) -> None:
    data = build_data(DataConfig(source="avazu", path=str(_avazu(tmp_path)), batch_size=8))
    assert data.spec.sparse_names == AVAZU_SPARSE and len(AVAZU_SPARSE) == 23
    assert data.spec.dense_names == ["hour_frac"]
    assert sum(data.info["rows"].values()) == 60 and sum(data.info["positives"].values()) == 12
    sizes = dict(zip(data.spec.sparse_names, data.spec.num_embeddings))
    # 2014-10-21 is a Tuesday, 10-22 a Wednesday; row 0 is reserved for missing
    assert sizes["day_of_week"] == 3 and sizes["hour_of_day"] == 25 and sizes["C1"] == 2
    assert sizes["device_id"] == 2  # row 0 (missing) + one value
    b = next(iter(data.train))
    assert b.dense_features.shape == (8, 1) and float(b.dense_features.max()) <= 1.0


def test_avazu_bad_rows(tmp_path: Path) -> None:
    good = _avazu(tmp_path).read_text().splitlines()[1].split(",")
    bad_hour = ",".join([good[0], good[1], "14103299", *good[3:]])
    path = _avazu(tmp_path, bad=bad_hour)
    with pytest.raises(BadRowError, match=r"avazu.csv:8: field hour: 14103299"):
        build_data(DataConfig(source="avazu", path=str(path)))
    data = build_data(DataConfig(source="avazu", path=str(path), on_bad_row="skip"))
    assert data.info["skipped_bad_rows"] == 1
    (tmp_path / "h.csv").write_text("id,click\n1,0\n")
    with pytest.raises(Exception, match="header is not Avazu"):
        build_data(DataConfig(source="avazu", path=str(tmp_path / "h.csv")))


def _kdd(tmp_path: Path, bad: str | None = None) -> Path:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(50):
        clicks = int(i % 6 == 0)
        imp = clicks + int(rng.integers(1, 4))
        rows.append(
            "\t".join(
                map(
                    str,
                    [
                        clicks,
                        imp,
                        4_298_118_681_424_644_510 % 1000 + i % 3,
                        7686695,
                        385,
                        3,
                        i % 3 + 1,
                        1601 + i % 7,
                        5521,
                        7709,
                        576,
                        i % 10,
                    ],
                )
            )
        )
    if bad:
        rows[4] = bad
    (tmp_path / "training.txt").write_text("\n".join(rows) + "\n")
    profile = "\n".join(f"{u}\t{u % 3}\t{u % 6 + 1}" for u in range(1, 8))  # users 8, 9 have none
    (tmp_path / "userid_profile.txt").write_text(profile + "\n")
    return tmp_path / "training.txt"


def test_kdd12(tmp_path: Path) -> None:
    data = build_data(DataConfig(source="kdd12", path=str(_kdd(tmp_path)), batch_size=10))
    assert data.spec.sparse_names == KDD_SPARSE
    assert data.spec.dense_names == ["Impression", "Depth", "Position"]
    assert sum(data.info["positives"].values()) == 9
    sizes = dict(zip(data.spec.sparse_names, data.spec.num_embeddings))
    assert sizes["Gender"] == 4  # missing (no profile) + genders 0, 1, 2
    assert sizes["Age"] == 7 and sizes["UserID"] == 11
    b = next(iter(data.val))
    assert torch.allclose(b.dense_features[:, 1], torch.full((b.labels.numel(),), float(np.log(4))))


def test_kdd12_bad_rows(tmp_path: Path) -> None:
    path = _kdd(tmp_path, bad="1\t0\t1\t1\t1\t1\t1\t1\t1\t1\t1\t1")
    with pytest.raises(BadRowError, match=r"training.txt:5: field Impression: 0 is less than"):
        build_data(DataConfig(source="kdd12", path=str(path)))
    path = _kdd(tmp_path, bad="1\tx\t1\t1\t1\t1\t1\t1\t1\t1\t1\t1")
    with pytest.raises(BadRowError, match=r"training.txt:5: field Impression: 'x'"):
        build_data(DataConfig(source="kdd12", path=str(path)))
    (tmp_path / "userid_profile.txt").unlink()
    with pytest.raises(Exception, match="userid_profile.txt: file not found"):
        build_data(DataConfig(source="kdd12", path=str(path)))


def _movielens(tmp_path: Path, rows: int = 400) -> Path:
    rng = np.random.default_rng(2)
    genres = ["Action", "Comedy", "Drama", "Sci-Fi", "Romance"]
    lines = ["userId,movieId,rating,timestamp,genres"]
    for i in range(rows):
        g = "|".join(sorted(set(rng.choice(genres, size=int(rng.integers(1, 4))).tolist())))
        if i % 50 == 0:
            g = ""  # no genres listed
        movie = int(rng.integers(1, 30)) if i != 3 else 999  # movie 999 is rated once
        lines.append(f"{rng.integers(1, 20)},{movie},{rng.integers(1, 11) / 2},{1_000_000 + i},{g}")
    p = tmp_path / "ratings.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


def _movielens_config(path: Path) -> DataConfig:
    example = yaml.safe_load((REPO / "configs" / "data" / "movielens_example.yaml").read_text())
    mapping = dict(example["data"], path=str(path), batch_size=32)
    del mapping["cache_dir"]
    return from_mapping(DataConfig, mapping, "movielens_example.yaml: data")


def test_movielens_by_schema(tmp_path: Path) -> None:
    path = _movielens(tmp_path)
    cfg = _movielens_config(path)
    data = build_data(cfg)
    assert data.spec.sparse_names == ["userId", "movieId", "genres"]
    assert data.spec.multi_hot == ["genres"]
    assert data.spec.dense_names == ["timestamp"]
    sizes = dict(zip(data.spec.sparse_names, data.spec.num_embeddings))
    assert sizes["genres"] == 6  # 5 genres + the reserved row 0
    assert sizes["movieId"] == 30  # movie 999 (seen once) folds into row 0
    train = list(data.train)
    dense = torch.cat([b.dense_features for b in train])
    assert abs(float(dense.mean())) < 0.1  # standardized with train statistics
    kjt = train[0].sparse_features
    genres = kjt["genres"]
    assert genres.lengths().numel() == 32 and int(genres.lengths().max()) >= 2
    assert int(genres.values().max()) < sizes["genres"]
    # time split: every val timestamp is after every train timestamp
    val = torch.cat([b.dense_features for b in data.val])
    assert float(val.min()) > float(dense.max())
    ratings = np.array([float(x.split(",")[2]) for x in path.read_text().splitlines()[1:]])
    total = sum(sum(int(b.labels.sum()) for b in s) for s in (data.train, data.val, data.test))
    assert total == int((ratings >= 4).sum()) or not cfg.drop_last_train


def test_table_parquet_and_hash_buckets(tmp_path: Path) -> None:
    csv = _movielens(tmp_path)
    table = pa.csv.read_csv(csv)  # type: ignore[attr-defined]
    pq.write_table(table, tmp_path / "ratings.parquet")
    schema = TableSchema(
        label=LabelRule("rating", "> 3.5"),
        dense=[ColumnConfig("timestamp", transform="log")],
        categorical=[ColumnConfig("userId", buckets=8), ColumnConfig("movieId")],
        multi_hot=[ColumnConfig("genres", separator="|", buckets=3)],
    )
    cfg = DataConfig(source="tabular", path=str(tmp_path / "ratings.parquet"), schema=schema)
    data = build_data(cfg)
    sizes = dict(zip(data.spec.sparse_names, data.spec.num_embeddings))
    assert sizes["userId"] <= 9 and sizes["genres"] <= 4
    assert sum(data.info["rows"].values()) == 400
    b = next(iter(data.test))
    assert float(b.dense_features.min()) > 13  # log(1 + 1e6)


def test_table_bad_rows_and_schema_errors(tmp_path: Path) -> None:
    path = _movielens(tmp_path)
    lines = path.read_text().splitlines()
    lines[10] = "3,4,good,1000100,Drama"
    path.write_text("\n".join(lines) + "\n")
    cfg = _movielens_config(path)
    with pytest.raises(BadRowError, match=r"ratings.csv:11: field rating: 'good' is not a number"):
        build_data(cfg)
    cfg.on_bad_row = "skip"
    assert build_data(cfg).info["skipped_bad_rows"] == 1
    cfg.schema.categorical[0].column = "user"  # type: ignore[union-attr]
    with pytest.raises(Exception, match="schema column 'user' is not in the file"):
        build_data(cfg)
    with pytest.raises(ConfigError, match="rule"):
        from_mapping(
            DataConfig,
            {
                "source": "tabular",
                "path": "x.csv",
                "schema": {
                    "label": {"column": "r", "rule": "about 4"},
                    "categorical": [{"column": "u"}],
                },
            },
        )
    with pytest.raises(ConfigError, match="on_bad_row"):
        from_mapping(DataConfig, {"on_bad_row": "ignore"})


def test_criteo_npy_days(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for d in range(2):
        n = 300
        np.save(tmp_path / f"day_{d}_dense.npy", rng.random((n, 13), dtype=np.float32))
        np.save(tmp_path / f"day_{d}_sparse.npy", rng.integers(0, 2**32, size=(n, 26)) % 50)
        np.save(tmp_path / f"day_{d}_labels.npy", (rng.random((n, 1)) < 0.3).astype(np.int32))
    cfg = DataConfig(source="criteo_npy", path=str(tmp_path), npy_days=2, split="time")
    data = build_data(cfg)
    assert sum(data.info["rows"].values()) == 600
    assert max(data.spec.num_embeddings) == 51
    first_test = next(iter(data.test)).dense_features[0]
    assert torch.allclose(first_test, torch.from_numpy(np.load(tmp_path / "day_1_dense.npy")[240]))


_cell = st.one_of(
    st.just(""),
    st.sampled_from(["0", "1", "4.5", "-2", "1e3", "nan", "x", "|", "Action|Comedy", '"q"', "\r"]),
    st.text(alphabet="01a|,\t .-", max_size=6),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(_cell, min_size=4, max_size=6), min_size=1, max_size=4))
def test_fuzz_table_and_kdd_readers(tmp_path: Path, rows: list[list[str]]) -> None:
    """Broken rows either parse or raise BadRowError naming the file and a line, nothing else."""
    head = "userId,movieId,rating,timestamp,genres"
    csv = tmp_path / "ratings.csv"
    csv.write_text("\n".join([head, "1,2,4,100,Drama", *(",".join(r) for r in rows)]) + "\n")
    cfg = _movielens_config(csv)
    kdd = tmp_path / "training.txt"
    kdd.write_text(
        "\n".join(["0\t1\t1\t1\t1\t1\t1\t1\t1\t1\t1\t1", *("\t".join(r * 3) for r in rows)])
    )
    (tmp_path / "userid_profile.txt").write_text("1\t1\t2\n")
    for config, path in ((cfg, csv), (DataConfig(source="kdd12", path=str(kdd)), kdd)):
        try:
            build_data(config)
        except BadRowError as e:
            assert e.path == str(path) and e.line >= 2
        except DataError as e:
            assert str(e).startswith(str(path)) and "no rows" not in str(e)


def test_multi_hot_table_through_the_cache(tmp_path: Path) -> None:
    path = _movielens(tmp_path)
    cfg = _movielens_config(path)
    direct = build_data(cfg)
    cfg.cache_dir = str(tmp_path / "cache")
    cached = build_data(cfg)
    assert cached.info["reused"] is False and build_data(cfg).info["reused"] is True
    assert cached.spec == direct.spec
    for a, b in zip(direct.train, cached.train):
        assert torch.equal(a.sparse_features.values(), b.sparse_features.values())
        assert torch.equal(a.sparse_features.lengths(), b.sparse_features.lengths())
        assert torch.allclose(a.dense_features, b.dense_features)
    path.write_text(path.read_text() + "5,6,4.0,2000000,Drama\n")  # the input changed
    assert build_data(cfg).info["reused"] is False
