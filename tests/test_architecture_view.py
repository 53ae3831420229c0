"""The architecture as text and as a picture, and the `show` command."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from torchrec_nas.architecture import Architecture, BlockConfig, liveness
from torchrec_nas.architecture_view import (
    architecture_section,
    describe,
    operator_label,
    plot_architecture,
)
from torchrec_nas.cli import main
from torchrec_nas.space import SearchSpace

# Block 2 reads outputs 0 and 2, so block 0 (output 1) cannot reach the logit.
DEAD = Architecture(
    (
        BlockConfig("dot", "attention", 64, 16, dense_inputs=(0,), sparse_inputs=(0,)),
        BlockConfig("fc", "efc", 32, 16, (0,), (0,), dense_to_sparse=True),
        BlockConfig("sum", "efc", 16, 32, (0, 2), (0, 2)),
    )
)


def test_dead_block_and_unused_path_are_marked() -> None:
    live = liveness(DEAD)
    assert not live[0].alive and live[1].alive
    lines = describe(DEAD).splitlines()
    block0 = next(line for line in lines if line.startswith("0 -> out 1"))
    assert "DEAD" in block0 and "dot 64" in block0 and "attention 16 tok" in block0
    # Block 2 reads only out 0 and out 2: block 1's outputs reach the logit, block 0's do not.
    assert "live blocks: 2 of 3 (dead: 0)" in lines[-1]
    assert DEAD.canonical_hash() in lines[-1]
    path_dead = Architecture(
        (
            BlockConfig("fc", "efc", 32, 16, (0,), (0,), sparse_to_dense=True),
            BlockConfig("fc", "efc", 16, 16, (0, 1), (0,)),
        )
    )
    # Block 1 reads block 0's dense output only: block 0's sparse op lives through s->d alone.
    assert describe(path_dead).splitlines()[2].endswith("  live")
    only_dense = Architecture(
        (
            BlockConfig("fc", "efc", 32, 16, (0,), (0,)),
            BlockConfig("fc", "efc", 16, 16, (0, 1), (0,)),
        )
    )
    block0 = describe(only_dense).splitlines()[2]
    assert "sparse op unused" in block0 and "DEAD" not in block0


@pytest.mark.parametrize("preset", ["nasrec-small", "nasrec-full"])
def test_text_names_every_operator_and_picture_is_drawn(preset: str, tmp_path: Path) -> None:
    space = SearchSpace.preset(preset)
    arch = space.sample(random.Random(7))
    text = describe(arch, space)
    rows = text.splitlines()[2 : 2 + space.num_blocks]
    for i, (row, b) in enumerate(zip(rows, arch.blocks)):
        assert row.startswith(f"{i} -> out {i + 1}")
        assert f"{operator_label(b.dense_op)} {b.dense_dim}" in row
        assert f"{operator_label(b.sparse_op)} {b.sparse_tokens} tok" in row
    png = tmp_path / "a.png"
    plot_architecture(arch, png, title=preset)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    lines = architecture_section(arch, tmp_path, space)
    assert (tmp_path / "architecture.png").stat().st_size > 20_000
    assert "![architecture](architecture.png)" in lines and "```" in lines


def test_dead_blocks_are_drawn(tmp_path: Path) -> None:
    plot_architecture(DEAD, tmp_path / "dead.png")
    assert (tmp_path / "dead.png").stat().st_size > 10_000


def test_describe_checks_against_the_space() -> None:
    arch = SearchSpace.preset("nasrec-full").sample(random.Random(0))
    small = SearchSpace.preset("nasrec-small")
    if small.contains(arch):
        pytest.skip("sampled architecture happens to fit nasrec-small")
    with pytest.raises(ValueError, match="block"):
        describe(arch, small)


def test_show_prints_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    arch = SearchSpace.preset("nasrec-full").sample(random.Random(1))
    path = tmp_path / "a.json"
    path.write_text(arch.to_json())
    out = tmp_path / "out"
    assert main(["show", "--arch", str(path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == describe(arch)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    config = tmp_path / "c.yaml"
    config.write_text("space: {preset: nasrec-full}\n")
    assert main(["show", "--arch", str(path), "--config", str(config)]) == 0
    assert "in space 'nasrec-full'" in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, "{not json", '{"blocks": [{"dense_op": "fc"}]}'])
def test_show_bad_architecture_file_is_one_line(
    content: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.json"
    if content is not None:
        path.write_text(content)
    assert main(["show", "--arch", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("torchrec-nas show: error:") and "a.json" in err[0]


def test_show_imports_no_torch(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(SearchSpace.preset("nasrec-small").sample(random.Random(2)).to_json())
    code = (
        "import sys; from torchrec_nas.cli import main; "
        f"assert main(['show', '--arch', {str(path)!r}]) == 0; "
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, capture_output=True)
