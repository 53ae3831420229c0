"""Binary and compressed input: one clean line, whatever the ``on_bad_row`` policy."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import random
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest
import torch
import yaml

from torchrec_nas.data import BadRowError, DataConfig, DataError, build_data

GOOD = "\t".join(["1", *["3"] * 13, *["0000abcd"] * 26])


def _criteo_lines(rows: int) -> list[bytes]:
    rng = random.Random(0)
    lines = []
    for i in range(rows):
        ints = [str(rng.randrange(0, 50)) for _ in range(13)]
        cats = [f"{rng.randrange(0, 40):08x}" for _ in range(26)]
        lines.append("\t".join([str(i % 3 == 0), *ints, *cats]).replace("True", "1").encode())
    return [line.replace(b"False", b"0") + b"\n" for line in lines]


def _binary(tmp_path: Path, size: int = 20_000) -> Path:
    path = tmp_path / "random.tsv"
    path.write_bytes(random.Random(1).randbytes(size))
    return path


def test_binary_input_under_skip_is_one_error_naming_the_bad_rows(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _binary(tmp_path)
    with pytest.raises(DataError, match=r"random.tsv: no rows to read: all \d+ rows are bad") as e:
        build_data(DataConfig(source="criteo_tsv", path=str(path), on_bad_row="skip"))
    assert "not UTF-8 text" in str(e.value) and "\n" not in str(e.value)
    assert "Exception ignored" not in capfd.readouterr().err


def test_binary_input_under_error_names_the_first_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _binary(tmp_path)
    with pytest.raises(BadRowError, match=r"random.tsv:1: field row: expected 40 fields") as e:
        build_data(DataConfig(source="criteo_tsv", path=str(path)))
    assert e.value.line == 1 and "not UTF-8 text" in e.value.reason
    assert capfd.readouterr().err == ""


def test_gzip_input_is_read_as_the_text_it_holds(tmp_path: Path) -> None:
    lines = _criteo_lines(2_000)
    plain = tmp_path / "criteo.tsv"
    plain.write_bytes(b"".join(lines))
    packed = tmp_path / "criteo.tsv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for policy in ("error", "skip"):
        expected = build_data(DataConfig(source="criteo_tsv", path=str(plain), on_bad_row=policy))
        got = build_data(DataConfig(source="criteo_tsv", path=str(packed), on_bad_row=policy))
        assert got.spec == expected.spec and got.info["rows"] == expected.info["rows"]
        for a, b in zip(expected.train, got.train):
            assert torch.equal(a.sparse_features.values(), b.sparse_features.values())
            assert torch.equal(a.labels, b.labels)


def test_a_bad_line_in_gzip_input_is_named_by_its_line(tmp_path: Path) -> None:
    lines = _criteo_lines(50)
    lines[30] = b"\xff\xfe" + lines[30][lines[30].index(b"\t") :]  # a label of bad bytes
    path = tmp_path / "day_0.gz"
    path.write_bytes(gzip.compress(b"".join(lines)))
    with pytest.raises(BadRowError, match=r"day_0.gz:31: field label"):
        build_data(DataConfig(source="criteo_tsv", path=str(path)))
    data = build_data(DataConfig(source="criteo_tsv", path=str(path), on_bad_row="skip"))
    assert data.info["skipped_bad_rows"] == 1 and data.info["rows_read"] == 49


def test_non_utf8_rows_among_good_ones_are_bad_rows_in_line_order(tmp_path: Path) -> None:
    lines = _criteo_lines(40)
    lines[9] = b"1\t\xff\xfe\n"  # wrong width and not UTF-8: pyarrow cannot hand it over
    lines[4] = b"1\t2\n"  # wrong width, UTF-8
    lines[20] = lines[20].replace(b"\t", b"\t\xc3\x28", 1)  # right width, a bad integer
    path = tmp_path / "mixed.tsv"
    path.write_bytes(b"".join(lines))
    with pytest.raises(BadRowError, match=r"mixed.tsv:5: field row: expected 40 fields, found 2"):
        build_data(DataConfig(source="criteo_tsv", path=str(path)))
    data = build_data(DataConfig(source="criteo_tsv", path=str(path), on_bad_row="skip"))
    examples = data.info["bad_row_examples"]
    assert data.info["skipped_bad_rows"] == 3 and data.info["rows_read"] == 37
    assert [e.split(":")[1] for e in examples] == ["5", "10", "21"]
    assert "not UTF-8 text" in examples[1] and "field I1" in examples[2]


@pytest.mark.parametrize("kind", ["bz2", "xz", "zst"])
def test_bzip2_xz_and_zstd_input_is_read_by_its_first_bytes(tmp_path: Path, kind: str) -> None:
    text = b"".join(_criteo_lines(300))
    packed = tmp_path / "criteo.data"  # the name says nothing: the first bytes do
    if kind == "bz2":
        packed.write_bytes(bz2.compress(text))
    elif kind == "xz":
        packed.write_bytes(lzma.compress(text))
    else:
        with pa.CompressedOutputStream(str(packed), "zstd") as out:
            out.write(text)
    plain = tmp_path / "criteo.tsv"
    plain.write_bytes(text)
    cfg = DataConfig(source="criteo_tsv", on_bad_row="skip")
    got = build_data(replace(cfg, path=str(packed)))
    want = build_data(replace(cfg, path=str(plain)))
    assert got.info["rows"] == want.info["rows"] and got.spec == want.spec


def test_other_formats_or_truncated_input_is_named(tmp_path: Path) -> None:
    text = b"".join(_criteo_lines(500))
    zipped = tmp_path / "criteo.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("criteo.tsv", text)
    with pytest.raises(DataError, match="a zip file, not delimited text"):
        build_data(DataConfig(source="criteo_tsv", path=str(zipped), on_bad_row="skip"))
    truncated = tmp_path / "criteo.tsv.gz"
    whole = gzip.compress(text)
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="criteo.tsv.gz: cannot be read as gzip"):
        build_data(DataConfig(source="criteo_tsv", path=str(truncated), on_bad_row="skip"))
    truncated_bz2 = tmp_path / "criteo.tsv.bz2"
    whole = bz2.compress(text)
    truncated_bz2.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="criteo.tsv.bz2: cannot be read as bzip2"):
        build_data(DataConfig(source="criteo_tsv", path=str(truncated_bz2), on_bad_row="skip"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process: stderr exactly as a user sees it (pytest hides none of it)."""
    repo = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torchrec_nas.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=repo, env=env, check=False)


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_cli_prints_one_line_for_binary_input(tmp_path: Path, policy: str) -> None:
    config = tmp_path / "bad.yaml"
    data = {"source": "criteo_tsv", "path": str(_binary(tmp_path)), "on_bad_row": policy}
    config.write_text(yaml.safe_dump({"data": data}))
    result = _cli("preprocess", "--config", str(config), "--out", str(tmp_path / "cache"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr[:2000]
    assert result.stderr.startswith("torchrec-nas preprocess: error: ")
    assert "random.tsv" in result.stderr


def test_cli_preprocesses_gzip_input_under_skip(tmp_path: Path) -> None:
    path = tmp_path / "day_0.gz"
    path.write_bytes(gzip.compress(b"".join(_criteo_lines(3_000))))
    config = tmp_path / "gz.yaml"
    data = {"source": "criteo_tsv", "path": str(path), "on_bad_row": "skip"}
    config.write_text(yaml.safe_dump({"data": data}))
    result = _cli("preprocess", "--config", str(config), "--out", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"rows_read": 3000' in result.stdout and '"skipped_bad_rows": 0' in result.stdout
