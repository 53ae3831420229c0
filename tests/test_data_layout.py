"""The data package's shape: a torch-free config, one reader per source, a registry."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from torchrec_nas.config_utils import ConfigError, from_mapping
from torchrec_nas.data import DataConfig, DataError
from torchrec_nas.data.config import Source
from torchrec_nas.data.readers import (
    RowReader,
    SplitReader,
    make_reader,
    register_reader,
    registered_sources,
)


def test_loading_the_data_config_imports_no_torch() -> None:
    code = (
        "import sys, torchrec_nas.data.config\n"
        "from torchrec_nas.data import DataConfig, DataSpec, DataError\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "from torchrec_nas.data import build_data\n"
        "assert 'torch' in sys.modules\n"
    )
    repo = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo, env=env)


def test_every_source_of_the_config_has_a_registered_reader() -> None:
    assert registered_sources() == sorted(typing.get_args(Source))
    assert isinstance(make_reader(DataConfig()), SplitReader)
    reader = make_reader(DataConfig(source="criteo_tsv", path="train.txt"))
    assert isinstance(reader, RowReader)


def test_a_source_is_registered_once_and_unknown_ones_are_named() -> None:
    with pytest.raises(ValueError, match="already has a reader"):
        register_reader("synthetic")(type("Other", (SplitReader,), {}))
    cfg = DataConfig()
    cfg.source = "made_up"  # type: ignore[assignment]
    with pytest.raises(DataError, match="'made_up' has no reader"):
        make_reader(cfg)
    with pytest.raises(ConfigError, match=r"source: 'made_up' is not one of \['synthetic'"):
        from_mapping(DataConfig, {"source": "made_up"})


def _imports(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that a file imports (anywhere in it, also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith(package)}


@pytest.mark.parametrize("package", ["torchrec_nas.data", "torchrec_nas.hardware"])
def test_package_has_no_import_cycle_and_small_files(package: str) -> None:
    root = Path(__file__).parents[1]
    files = {
        ".".join(p.relative_to(root).with_suffix("").parts): p
        for p in (root / package.replace(".", "/")).rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")  # package faces only re-export
    }
    graph = {
        name: {m for m in _imports(path, package) if m in files} for name, path in files.items()
    }
    for name, path in files.items():
        assert len(path.read_text().splitlines()) <= 400, f"{name} is over 400 lines"
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name] - {name}):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join([*trail, name, dep])
            if dep not in state:
                visit(dep, [*trail, name])
        state[name] = 2

    for name in sorted(files):
        if name not in state:
            visit(name, [])
