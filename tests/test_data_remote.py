"""Input data at fsspec URLs: Criteo TSV (plain and gzip) and Parquet tables read from
``memory://`` give the rows they give from a local disk; memory-mapped inputs stay local."""

from __future__ import annotations

import gzip
import random
import uuid
from collections.abc import Iterable
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.data import ColumnConfig, DataConfig, DataError, TableSchema, build_data


def _criteo_text(rows: int) -> bytes:
    rng = random.Random(0)
    lines = []
    for i in range(rows):
        ints = [str(rng.randrange(0, 50)) for _ in range(13)]
        cats = [f"{rng.randrange(0, 40):08x}" for _ in range(26)]
        lines.append("\t".join([str(int(i % 3 == 0)), *ints, *cats]) + "\n")
    return "".join(lines).encode()


def _parquet_bytes(rows: int) -> bytes:
    table = pa.table(
        {
            "label": [i % 2 for i in range(rows)],
            "age": [float(i) for i in range(rows)],
            "city": [f"c{i % 3}" for i in range(rows)],
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _memory(name: str, data: bytes) -> str:
    """Writes ``data`` to a fresh ``memory://`` file and returns its URL."""
    path = f"/remote-data-test/{uuid.uuid4().hex}/{name}"
    fsspec.filesystem("memory").pipe(path, data)
    return f"memory://{path}"


def _rows(batches: Iterable[object]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    dense, labels, ids = [], [], {}
    for batch in batches:
        dense.append(batch.dense_features)  # type: ignore[attr-defined]
        labels.append(batch.labels)  # type: ignore[attr-defined]
        for key, jt in batch.sparse_features.to_dict().items():  # type: ignore[attr-defined]
            ids.setdefault(key, []).append(jt.values())
    return torch.cat(dense), torch.cat(labels), {k: torch.cat(v) for k, v in ids.items()}


def _same_data(local: DataConfig, remote: DataConfig) -> None:
    a, b = build_data(local), build_data(remote)
    assert a.info["rows"] == b.info["rows"]
    for split in ("train", "val", "test"):
        da, la, ia = _rows(getattr(a, split))
        db, lb, ib = _rows(getattr(b, split))
        assert torch.equal(da, db) and torch.equal(la, lb)
        assert ia.keys() == ib.keys() and all(torch.equal(ia[k], ib[k]) for k in ia)


@pytest.mark.parametrize("compress", [False, True])
def test_criteo_tsv_from_memory_url_equals_local(tmp_path: Path, compress: bool) -> None:
    data = _criteo_text(300)
    data = gzip.compress(data) if compress else data
    local = tmp_path / "day_0.tsv"
    local.write_bytes(data)
    url = _memory("day_0.tsv", data)
    cfg = DataConfig(source="criteo_tsv", path=str(local), batch_size=16)
    _same_data(cfg, DataConfig(source="criteo_tsv", path=url, batch_size=16))


def test_criteo_tsv_glob_of_memory_urls(tmp_path: Path) -> None:
    data = _criteo_text(200)
    cut = data.index(b"\n", len(data) // 2) + 1
    folder = f"/remote-data-test/{uuid.uuid4().hex}"
    memory = fsspec.filesystem("memory")
    for day, part in enumerate((data[:cut], data[cut:])):
        memory.pipe(f"{folder}/day_{day}", part)
        (tmp_path / f"day_{day}").write_bytes(part)
    _same_data(
        DataConfig(source="criteo_tsv", path=str(tmp_path / "day_*"), batch_size=16),
        DataConfig(source="criteo_tsv", path=f"memory://{folder}/day_*", batch_size=16),
    )


def test_parquet_table_from_memory_url_equals_local(tmp_path: Path) -> None:
    data = _parquet_bytes(120)
    local = tmp_path / "people.parquet"
    local.write_bytes(data)
    schema = TableSchema(dense=[ColumnConfig("age")], categorical=[ColumnConfig("city")])

    def cfg(path: str) -> DataConfig:
        return DataConfig(source="tabular", path=path, schema=schema, batch_size=8)

    _same_data(cfg(str(local)), cfg(_memory("people.parquet", data)))


def test_missing_memory_file_is_one_line_naming_data_path() -> None:
    url = f"memory://remote-data-test/{uuid.uuid4().hex}/absent.tsv"
    with pytest.raises(DataError) as e:
        build_data(DataConfig(source="criteo_tsv", path=url))
    assert str(e.value) == f"{url}: file not found (data.path)"


@pytest.mark.parametrize("source", ["criteo_npy", "cache"])
def test_memory_mapped_sources_must_be_local(tmp_path: Path, source: str) -> None:
    url = "memory://remote-data-test/npy"
    with pytest.raises(DataError, match=rf"^data\.path: {url}: source {source} is memory-mapped"):
        build_data(DataConfig(source=source, path=url))  # type: ignore[arg-type]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{source: {source}, path: '{url}'}}\n")
    with pytest.raises(ConfigError, match=r"data\.path: memory://remote-data-test/npy: source"):
        Config.load(cfg)


def test_remote_cache_dir_is_refused() -> None:
    with pytest.raises(DataError, match=r"^data\.cache_dir: s3://b/cache: data\.cache_dir is"):
        build_data(DataConfig(source="criteo_tsv", path="x.tsv", cache_dir="s3://b/cache"))


def test_remote_input_with_a_local_cache_is_reused_until_it_changes(tmp_path: Path) -> None:
    url = _memory("day_0.tsv", _criteo_text(200))
    cfg = DataConfig(source="criteo_tsv", path=url, cache_dir=str(tmp_path), batch_size=16)
    assert build_data(cfg).info["reused"] is False
    assert build_data(cfg).info["reused"] is True
    fsspec.filesystem("memory").pipe(url[len("memory://") :], _criteo_text(150))
    changed = build_data(cfg).info
    assert changed["reused"] is False and sum(changed["rows"].values()) == 150
