"""The data package's shape: a torch-free config, one reader per source, a registry."""

from __future__ import annotations

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
