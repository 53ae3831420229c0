"""Criteo TSV reader on the real 10k-row sample, bad rows, the cache and its reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchrec_nas.data import DataConfig, build_data, load_cache, preprocess_main
from torchrec_nas.data.errors import BadRowError, BadRows, DataError
from torchrec_nas.data.ids import MISSING
from torchrec_nas.data.readers.columns import hex8
from torchrec_nas.data.readers.criteo import CriteoTsvReader

SAMPLE_NAME = "criteo_kaggle_sample_10k.tsv"


def _sample() -> Path:
    for d in (Path(__file__).parents[2] / "shared" / "data", Path("/work/shared/data")):
        if (d / SAMPLE_NAME).is_file():
            return d / SAMPLE_NAME
    pytest.skip(f"{SAMPLE_NAME} not found in ../shared/data or /work/shared/data (see its README)")


GOOD = "1\t1\t-1\t\t5\t0\t1382\t4\t15\t2\t181\t1\t\t2\t" + "\t".join(
    ["68fd1e64", "", *["0000abcd"] * 24]
)


def _write(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "criteo.tsv"
    p.write_text("".join(line + "\n" for line in lines))
    return p


def test_real_sample_counts_and_missing_fields() -> None:
    path = _sample()
    reader = CriteoTsvReader([path], [None] * 26, BadRows("error"))
    chunks = list(reader.chunks())
    labels = np.concatenate([c.labels for c in chunks])
    sparse = np.concatenate([c.sparse for c in chunks])
    dense = np.concatenate([c.dense for c in chunks])
    assert len(labels) == 10_000 and labels.sum() == 2_182
    assert sparse.shape == (10_000, 26) and dense.shape == (10_000, 13)
    given = ~np.isnan(dense)  # an empty integer is NaN in a raw chunk (0 once materialized)
    assert np.isfinite(dense[given]).all() and (dense[given] >= 0).all()  # negatives -> 0
    # every categorical column carries real values; some columns have empty fields
    assert all(len(np.unique(sparse[:, j])) > 1 for j in range(26))
    assert (sparse == MISSING).any()
    assert (sparse[sparse != MISSING] < 2**32).all()
    # the sample does have negative and empty integers (I2 has -1s, many are empty)
    raw = [line.split("\t") for line in path.read_text().splitlines()]
    assert any(r[2].startswith("-") for r in raw) and any(r[1] == "" for r in raw)
    first = raw[0]
    expect = [np.log1p(max(int(x), 0)) if x else np.nan for x in first[1:14]]
    assert np.allclose(dense[0], expect, atol=1e-6, equal_nan=True)
    assert sparse[0, 0] == int(first[14], 16)


def test_build_data_from_sample_and_cache(tmp_path: Path) -> None:
    path = _sample()
    cfg = DataConfig(source="criteo_tsv", path=str(path), batch_size=512)
    data = build_data(cfg)
    assert data.info["rows"] == {"train": 8_000, "val": 1_000, "test": 1_000}
    assert data.info["positives"]["val"] in (218, 219)
    batch = next(iter(data.train))
    assert batch.dense_features.shape == (512, 13)
    assert torch.isfinite(batch.dense_features).all()
    for name, rows in zip(data.spec.sparse_names, data.spec.num_embeddings):
        assert int(batch.sparse_features[name].values().max()) < rows
    first = preprocess_main(cfg, str(tmp_path / "cache"))
    second = preprocess_main(cfg, str(tmp_path / "cache"))
    assert first["reused"] is False and second["reused"] is True
    assert second["rows"] == first["rows"]
    cached = build_data(DataConfig(source="cache", path=str(tmp_path / "cache")))
    a, b = next(iter(cached.train)), batch
    assert torch.equal(a.labels, b.labels) and torch.equal(a.dense_features, b.dense_features)
    assert cached.spec == data.spec
    # a changed config does not reuse
    cfg2 = DataConfig(source="criteo_tsv", path=str(path), hash_buckets=1000)
    assert preprocess_main(cfg2, str(tmp_path / "cache"))["reused"] is False
    cached = load_cache(tmp_path / "cache")
    spec, parts = cached.spec, cached.parts
    assert max(spec.num_embeddings) <= 1001
    assert isinstance(parts[0].dense, np.memmap)


def test_time_split_and_sharding() -> None:
    path = _sample()
    cfg = DataConfig(source="criteo_tsv", path=str(path), split="time", batch_size=100)
    data = build_data(cfg, rank=1, world_size=3)
    assert len(data.train) == 80 // 3  # type: ignore[arg-type]
    whole = build_data(cfg)
    # time split keeps file order: the test split is the last 1000 lines
    labels = np.array([int(x.split("\t", 1)[0]) for x in path.read_text().splitlines()])
    got = torch.cat([b.labels for b in whole.test]).numpy()
    assert np.array_equal(got, labels[-1000:])


@pytest.mark.parametrize(
    "line, field, line_no",
    [
        (GOOD.replace("68fd1e64", "zzzz"), "C1", 2),
        (GOOD.replace("68fd1e64", "68fd1e6g"), "C1", 2),
        (GOOD.replace("\t1382\t", "\tabc\t"), "I6", 2),
        ("\t".join(GOOD.split("\t")[:-1]), "row", 2),
        ("2" + GOOD[1:], "label", 2),
        ("", "label", 2),
    ],
)
def test_bad_rows(tmp_path: Path, line: str, field: str, line_no: int) -> None:
    path = _write(tmp_path, [GOOD, line, GOOD])
    with pytest.raises(BadRowError) as e:
        list(CriteoTsvReader([path], [None] * 26, BadRows("error")).chunks())
    assert e.value.field == field and e.value.line == line_no
    assert str(e.value).startswith(f"{path}:{line_no}: field {field}:")
    reader = CriteoTsvReader([path], [None] * 26, BadRows("skip"))
    rows = sum(len(c) for c in reader.chunks())
    assert rows == 2 and reader.bad.skipped == 1


def test_skip_reports_count_through_build_data(tmp_path: Path) -> None:
    lines = [GOOD] * 30 + [GOOD.replace("0000abcd", "xyz")] * 3 + [GOOD] * 7
    path = _write(tmp_path, lines)
    data = build_data(DataConfig(source="criteo_tsv", path=str(path), on_bad_row="skip"))
    assert data.info["skipped_bad_rows"] == 3 and data.info["rows_read"] == 37
    assert "criteo.tsv:31: field C3" in data.info["bad_row_examples"][0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        build_data(DataConfig(source="criteo_tsv", path=str(tmp_path / "nope.tsv")))


_field = st.one_of(
    st.just(""),
    st.text(alphabet="0123456789abcdef-x\t ", max_size=9),
    st.sampled_from(["0", "1", "-3", "68fd1e64", "FFFFFFFF", "1e5", "\r"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(_field, min_size=38, max_size=42), min_size=1, max_size=5))
def test_fuzz_broken_rows(tmp_path: Path, rows: list[list[str]]) -> None:
    path = _write(tmp_path, [GOOD] + ["\t".join(r) for r in rows])
    text = path.read_text()
    # Like pyarrow (and editors), a lone \r ends a line too.
    num_lines = text.count("\n") + text.count("\r") - text.count("\r\n")
    try:
        chunks = list(CriteoTsvReader([path], [None] * 26, BadRows("error")).chunks())
    except BadRowError as e:
        assert e.path == str(path) and 2 <= e.line <= num_lines
        return
    assert sum(len(c) for c in chunks) == num_lines
    skipping = CriteoTsvReader([path], [None] * 26, BadRows("skip"))
    assert sum(len(c) for c in skipping.chunks()) + skipping.bad.skipped == num_lines


def test_several_day_files_by_glob(tmp_path: Path) -> None:
    for d in range(3):
        (tmp_path / f"day_{d}").write_text(
            "".join(GOOD.replace("1\t", f"{d % 2}\t", 1) + "\n" for _ in range(10))
        )
    data = build_data(
        DataConfig(source="criteo_tsv", path=str(tmp_path / "day_*"), split="time", batch_size=4)
    )
    assert data.info["rows_read"] == 30
    labels = torch.cat([b.labels for b in data.test])
    assert labels.tolist() == [0.0, 0.0, 0.0]  # the test split is the end of day_2
    with pytest.raises(DataError, match="no file matches"):
        build_data(DataConfig(source="criteo_tsv", path=str(tmp_path / "nope_*")))


@pytest.mark.parametrize(
    "bad, field",
    [
        (GOOD.replace("68fd1e64", "68fd1e\xff\xfe").encode("latin1"), "C1"),
        (GOOD.replace("\t1382\t", "\t13\xff2\t").encode("latin1"), "I6"),
        (b"\xff\xfe", "row"),
    ],
)
def test_bytes_that_are_not_utf8(tmp_path: Path, bad: bytes, field: str) -> None:
    path = tmp_path / "criteo.tsv"
    path.write_bytes(GOOD.encode() + b"\n" + bad + b"\n" + GOOD.encode() + b"\n")
    with pytest.raises(BadRowError) as e:
        list(CriteoTsvReader([path], [None] * 26, BadRows("error")).chunks())
    assert (e.value.line, e.value.field) == (2, field)
    reader = CriteoTsvReader([path], [None] * 26, BadRows("skip"))
    assert sum(len(c) for c in reader.chunks()) == 2 and reader.bad.skipped == 1


_hexish = st.one_of(
    st.none(),
    st.just(""),
    st.integers(0, 2**32 - 1).map(lambda v: f"{v:08x}"),
    st.integers(0, 2**32 - 1).map(lambda v: f"{v:08X}"),
    st.text(alphabet="0123456789abcdefgG:@`/ \x10\x15", min_size=1, max_size=9),
)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_hexish, min_size=1, max_size=8), start=st.integers(0, 7))
def test_hex8_decodes_exactly_8_hex_digits(values: list[str | None], start: int) -> None:
    start = min(start, len(values) - 1)
    raw, ok = hex8(pa.array(values).slice(start))
    for text, got, good in zip(values[start:], raw.tolist(), ok.tolist()):
        if not text:
            assert good and got == MISSING
        elif len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text):
            assert good and got == int(text, 16)
        else:
            assert not good
