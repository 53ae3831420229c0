"""Paths are URLs: local paths, file:// and memory:// behave alike through torchrec_nas.storage."""

import os
import stat
from pathlib import Path

import pytest
import torch

from torchrec_nas import storage


@pytest.fixture(params=["local", "file", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "local":
        return str(tmp_path)
    if request.param == "file":
        return f"file://{tmp_path}"
    return f"memory://test_storage/{os.getpid()}/{id(request)}"


def test_join_keeps_scheme() -> None:
    assert storage.join("s3://bucket/run", "supernet", "x.pt") == "s3://bucket/run/supernet/x.pt"
    assert storage.join("runs/demo", "a.json") == os.path.join("runs/demo", "a.json")
    assert storage.parent("s3://bucket/run/x.pt") == "s3://bucket/run"
    assert storage.name("memory://a/b.json") == "b.json"


def test_text_bytes_torch_round_trip(root: str) -> None:
    path = storage.join(root, "sub", "a.json")
    storage.write_text_atomic(path, '{"a": 1}')
    assert storage.isfile(path) and storage.read_text(path) == '{"a": 1}'
    storage.write_text_atomic(path, "second")
    assert storage.read_text(path) == "second"
    ckpt = storage.join(root, "ckpt.pt")
    storage.save_torch_atomic({"w": torch.arange(4)}, ckpt)
    assert torch.equal(storage.load_torch(ckpt)["w"], torch.arange(4))
    log = storage.join(root, "log.jsonl")
    storage.append_lines(log, ["1"])
    storage.append_lines(log, ["2", "3"])
    assert storage.read_text(log).splitlines() == ["1", "2", "3"]
    assert storage.listdir(storage.join(root, "sub")) == ["a.json"]
    storage.remove(path)
    assert not storage.exists(path)
    with pytest.raises(FileNotFoundError, match="ckpt2.pt"):
        storage.load_torch(storage.join(root, "ckpt2.pt"))


def test_atomic_write_leaves_no_temporary_and_follows_umask(tmp_path: object) -> None:
    old = os.umask(0o022)
    try:
        path = storage.join(str(tmp_path), "r.json")
        storage.write_text_atomic(path, "x")
    finally:
        os.umask(old)
    assert sorted(os.listdir(str(tmp_path))) == ["r.json"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_a_killed_writes_temporary_is_removed_by_the_next_write(tmp_path: object) -> None:
    path = storage.join(str(tmp_path), "c.pt")
    open(storage.join(str(tmp_path), ".c.pt.dead.tmp"), "wb").close()
    storage.save_torch_atomic({"a": 1}, path)
    assert sorted(os.listdir(str(tmp_path))) == ["c.pt"]


def test_missing_backend_and_remote_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"nosuch://x/y: no fsspec backend for nosuch://"):
        storage.exists("nosuch://x/y")
    assert storage.local_input("file:///d/a.gz", "data.path") == "/d/a.gz"
    assert storage.local_input("d/a.gz", "data.path") == "d/a.gz"
    with pytest.raises(ValueError, match=r"^data\.path: memory://a: must be on a local disk"):
        storage.local_input("memory://a", "data.path")


def test_local_file_for_writing_uploads_to_a_url(root: str) -> None:
    path = storage.join(root, "fig", "a.png")
    with storage.local_file_for_writing(path) as local:
        local.write_bytes(b"png")
    assert storage.read_bytes(path) == b"png"


def test_read_jsonl_skips_a_line_cut_by_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    assert storage.read_jsonl(path) == []
    path.write_text('{"key": "a", "v": 1}\n{"key": "b", "v": 2}\n{"key": "c", "v"')
    rows = storage.read_jsonl(path)
    assert [value["key"] for _, value in rows] == ["a", "b"]
    assert rows[0][0] == '{"key": "a", "v": 1}'
