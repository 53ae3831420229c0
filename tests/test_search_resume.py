"""A resumed search is the same search; a history written by another search is never reused."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchrec_nas.cli import main
from torchrec_nas.config import Config
from torchrec_nas.data import build_data
from torchrec_nas.search.batches import IndexedBatches, finetune_order
from torchrec_nas.search.evaluator import FinetuneConfig, SupernetEvaluator
from torchrec_nas.search.history import Evaluation, HistoryError, SearchHistory
from torchrec_nas.space import SearchSpace
from torchrec_nas.stages import load_supernet, run_search, run_supernet

TINY = """
seed: 0
data:
  batch_size: 64
  synthetic: {rows: 3000, cardinalities: 100}
space:
  preset: nasrec-full
  dense_dims: [16, 32]
  sparse_tokens: [4, 8]
supernet: {steps: 4, eval_batches: 1, progress: false}
search:
  population: 4
  tournament: 2
  children: 2
  generations: 3
  finetune: {steps: 3, eval_batches: 2}
  progress: false
  allow_chance: true  # 4 supernet steps learn nothing
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    """A tiny config and a directory holding its trained supernet."""
    root = tmp_path_factory.mktemp("resume")
    (root / "tiny.yaml").write_text(TINY)
    cfg = Config.load(root / "tiny.yaml")
    run_supernet(cfg, root / "supernet")
    return cfg, root / "supernet" / "supernet.pt"


def fresh_out(tmp_path: Path, name: str, supernet: Path) -> Path:
    out = tmp_path / name
    out.mkdir()
    shutil.copy(supernet, out / "supernet.pt")
    return out


def test_a_score_does_not_depend_on_what_was_scored_before(
    trained: tuple[Config, Path],
) -> None:
    cfg, supernet = trained
    data = build_data(cfg.data, cfg.seed)
    model = load_supernet(cfg, supernet, data.spec)
    ft = FinetuneConfig(steps=5, eval_batches=2)
    first, second = (cfg.space.sample(random.Random(i)) for i in (1, 2))
    busy = SupernetEvaluator(model, data.train, data.val, ft, seed=7)
    busy(first)
    busy(second)
    after_others = busy(second)
    alone = SupernetEvaluator(model, data.train, data.val, ft, seed=7)(second)
    assert after_others == alone
    other_seed = SupernetEvaluator(model, data.train, data.val, ft, seed=8)(second)
    assert other_seed["logloss"] != alone["logloss"]


def test_finetune_batches_are_indexed_without_reading_the_split(
    trained: tuple[Config, Path],
) -> None:
    cfg, _ = trained
    data = build_data(cfg.data, cfg.seed)
    train = IndexedBatches(data.train)
    batches = list(data.train)
    assert len(train) == len(batches)
    assert train[3].labels.tolist() == batches[3].labels.tolist()
    # Two ranks' slices of global batch k are the rows of one process's batch k.
    half = build_data(dataclasses.replace(cfg.data, batch_size=32), cfg.seed, 1, 2)
    assert IndexedBatches(half.train, 1, 2)[3].labels.tolist() == batches[3].labels[32:].tolist()
    order = finetune_order(0, "abc", steps=10, num_batches=4)
    assert len(order) == 10 and sorted(order[:4]) == [0, 1, 2, 3]
    assert order == finetune_order(0, "abc", steps=10, num_batches=4)
    assert order != finetune_order(0, "abd", steps=10, num_batches=4)


def test_killed_search_resumes_byte_for_byte(
    trained: tuple[Config, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, supernet = trained
    whole = fresh_out(tmp_path, "whole", supernet)
    run_search(cfg, whole)

    class Killed(Exception):
        pass

    real = SupernetEvaluator.__call__
    calls = 0

    def dies_after_five(self: SupernetEvaluator, arch: object) -> dict[str, float]:
        nonlocal calls
        calls += 1
        if calls > 5:
            raise Killed
        return real(self, arch)  # type: ignore[arg-type]

    killed = fresh_out(tmp_path, "killed", supernet)
    monkeypatch.setattr(SupernetEvaluator, "__call__", dies_after_five)
    with pytest.raises(Killed):
        run_search(cfg, killed)
    monkeypatch.undo()
    partial = (killed / "history.jsonl").read_text().splitlines()
    full = (whole / "history.jsonl").read_text().splitlines()
    assert 5 <= len(partial) < len(full)
    run_search(cfg, killed)
    for name in ("history.jsonl", "best_arch.json"):
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


def test_another_seed_or_supernet_refuses_the_old_history(
    trained: tuple[Config, Path], tmp_path: Path
) -> None:
    cfg, supernet = trained
    out = fresh_out(tmp_path, "out", supernet)
    run_search(cfg, out)
    cfg.seed = 1
    with pytest.raises(HistoryError, match=r"history.jsonl: .*its seed differs.*move or delete"):
        run_search(cfg, out)
    cfg.seed = 0
    cfg.search.finetune.steps = 4
    with pytest.raises(HistoryError, match="its config differs"):
        run_search(cfg, out)
    cfg.search.finetune.steps = 3
    with open(out / "supernet.pt", "ab") as f:
        f.write(b"retrained")  # any change of content is another supernet
    with pytest.raises(HistoryError, match="its supernet differs"):
        run_search(cfg, out)


def test_history_without_its_record_or_with_a_bad_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"index": 0}\n')
    with pytest.raises(HistoryError, match=r"history.jsonl:1: missing field\(s\) generation"):
        SearchHistory(path)
    path.write_text('[1, 2]\n{"index": 0}\n')
    with pytest.raises(HistoryError, match=r"history.jsonl:1: expected a JSON object, got list"):
        SearchHistory(path)
    line = '{"index": 0, "generation": 0, "hash": "h", "metrics": [], "architecture": {}}'
    path.write_text(line + "\n")
    with pytest.raises(HistoryError, match=r"history.jsonl:1: "):
        SearchHistory(path)
    path.write_text('not json\n{"index": 1}\n')
    with pytest.raises(HistoryError, match=r"history.jsonl:1: not a JSON record"):
        SearchHistory(path)
    path.unlink()
    arch = SearchSpace.preset("nasrec-small").sample(random.Random(0))
    record = Evaluation(0, 0, arch, arch.canonical_hash(), {"logloss": 0.5}, score=0.5)
    SearchHistory(path, {"seed": "0"}).append(record)
    assert SearchHistory(path, {"seed": "0"}).best().arch_hash == arch.canonical_hash()
    (tmp_path / "history.meta.json").unlink()
    with pytest.raises(HistoryError, match="no history.meta.json records which search wrote"):
        SearchHistory(path, {"seed": "0"})
    path.unlink()  # deleting the history alone is enough to start afresh
    SearchHistory(path, {"seed": "0"})
    assert SearchHistory(path, {"seed": "1"}).records == []
    assert json.loads((tmp_path / "history.meta.json").read_text()) == {"seed": "1"}


def test_search_killed_by_a_signal_resumes_through_the_command_line(
    trained: tuple[Config, Path], tmp_path: Path
) -> None:
    """SIGKILL leaves a stale run.lock and maybe a cut-off line; rerunning resumes the same."""
    cfg, supernet = trained
    slow = tmp_path / "slow.yaml"
    slow.write_text(TINY.replace("finetune: {steps: 3,", "finetune: {steps: 60,"))
    whole = fresh_out(tmp_path, "whole", supernet)
    run_search(Config.load(slow), whole)
    killed = fresh_out(tmp_path, "killed", supernet)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[1]))
    command = [sys.executable, "-m", "torchrec_nas.cli", "search", "--config", str(slow),
               "--out", str(killed), "--quiet"]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history = killed / "history.jsonl"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if history.exists() and len(history.read_text().splitlines()) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the search ended before it was killed"
    assert (killed / "run.lock").exists()  # left behind by the killed run
    done = len(history.read_text().splitlines())
    assert done < len((whole / "history.jsonl").read_text().splitlines())
    assert main(command[3:]) == 0  # takes the dead run's lock over
    assert not (killed / "run.lock").exists()
    for name in ("history.jsonl", "best_arch.json"):
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name
