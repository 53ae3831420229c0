"""A stage 1 (embedding supernet) killed and resumed under other settings is refused by name,
before its checkpoints are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import EMBEDDING_SEARCH_TINY

from torchrec_nas.config import Config
from torchrec_nas.embedding_search import EmbeddingSizeSearch
from torchrec_nas.runtime.local import LocalRuntime


def test_stage_one_resumed_under_another_cap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "capped.yaml").write_text(EMBEDDING_SEARCH_TINY)
    (tmp_path / "free.yaml").write_text(EMBEDDING_SEARCH_TINY + "  cap_at_rows: false\n")
    out = tmp_path / "run"
    search = EmbeddingSizeSearch(Config.load(tmp_path / "capped.yaml"), out, LocalRuntime("cpu"))
    search.train_supernet()
    stage = out / "embedding_search"
    meta = json.loads((stage / "stage1" / "meta.json").read_text())
    assert meta["cap_at_rows"] is True
    # A kill before the stage finished leaves its checkpoints but no supernet.json/.pt.
    (stage / "supernet.json").unlink()
    (stage / "supernet.pt").unlink()
    free = EmbeddingSizeSearch(Config.load(tmp_path / "free.yaml"), out, LocalRuntime("cpu"))
    with pytest.raises(
        ValueError, match=r"meta.json: stage 1 was started with another cap_at_rows"
    ):
        free.train_supernet()
    # The same settings resume.
    again = EmbeddingSizeSearch(Config.load(tmp_path / "capped.yaml"), out, LocalRuntime("cpu"))
    again.train_supernet()
    assert (stage / "supernet.pt").exists()
