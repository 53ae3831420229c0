"""Embedding-size search end to end on a tiny synthetic config: outputs, resume after a
kill, the CLI's one-line errors, and mixed-width training under DMP with 2 gloo ranks."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from test_distributed import _ok, torchrun

from torchrec_nas.cli import main
from torchrec_nas.config import Config
from torchrec_nas.embedding_search import EmbeddingSizeSearch, embedding_params
from torchrec_nas.embedding_search.scoring import WidthScorer
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.runtime.trainer import Trainer

TINY = """
seed: 7
data:
  batch_size: 64
  synthetic: {rows: 6000, num_dense: 4, num_sparse: 5, cardinalities: 200}
space: {preset: nasrec-small, num_blocks: 3, dense_dims: [16, 32], sparse_tokens: [16]}
train:
  steps: 4
  eval_batches: 2
  progress: false
  baselines: {models: [dlrm], dense_arch_layer_sizes: [32], over_arch_layer_sizes: [32]}
embedding_search:
  steps: 24
  eval_batches: 2
  checkpoint_every: 10
  progress: false
  widths: [4, 8, 16, 32]
  budget: 0.8
  val_batches: 3
  policy_steps: 8
  policy_samples: 4
  evolution: {population: 6, tournament: 3, children: 3, generations: 2}
  seeds: [1, 2]
"""


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY + extra)
    return path


def _search(config: Path, out: Path) -> dict[str, Any]:
    return EmbeddingSizeSearch(Config.load(config), out, LocalRuntime("cpu")).run()


def _stable(summary: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on a kill: everything but stage 1's timings."""
    return {k: v for k, v in summary.items() if k != "stage1"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("emb")
    out = root / "ref"
    return out, _search(_config(root), out)


def test_search_writes_widths_history_summary_and_report(
    reference: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = reference
    dims = json.loads((out / "embedding_dims.json").read_text())
    assert sorted(dims) == [f"cat_{i}" for i in range(5)]
    assert set(dims.values()) <= {4, 8, 16, 32} and dims == summary["embedding_dims"]
    assert summary["params"] <= summary["budget"] < summary["uniform"]["params"]
    history = [json.loads(x) for x in (out / "embedding_history.jsonl").read_text().splitlines()]
    assert len(history) == 2 * 8 and {h["seed"] for h in history} == {1, 2}
    assert summary["agreement"]["runs"] == 2 and 0 <= summary["agreement"]["identical_share"] <= 1
    assert 0 <= summary["agreement"]["within_one_step_weighted_share"] <= 1
    picks = [s["policy"]["widths"] for s in summary["seeds"]]
    same = [len({p[f] for p in picks}) == 1 for f in dims]
    assert summary["agreement"]["identical_share"] == sum(same) / len(same)
    assert {"policy", "evolution"} <= set(summary["seeds"][0])
    assert summary["stage1"]["steps"] == 24 and sum(map(sum, summary["stage1"]["draws"])) == 24 * 5
    text = (out / "embedding_search.md").read_text()
    assert "embedding_widths.png" in text and (out / "embedding_candidates.png").stat().st_size > 0


def test_killed_search_resumes_to_the_same_result(
    reference: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref_out, ref = reference
    config, out = _config(tmp_path), tmp_path / "killed"
    step = Trainer.train_step

    def dies_at_17(self: Trainer, batch: Any, state: Any) -> None:
        if state.step == 17:
            raise KeyboardInterrupt
        step(self, batch, state)

    with monkeypatch.context() as m:  # stage 1 dies after its checkpoint of step 10
        m.setattr(Trainer, "train_step", dies_at_17)
        with pytest.raises(KeyboardInterrupt):
            _search(config, out)
    assert not (out / "embedding_search" / "supernet.pt").exists()
    metrics = WidthScorer.metrics
    calls = []

    def dies_in_stage_2(self: WidthScorer, widths: Any) -> Any:
        calls.append(1)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return metrics(self, widths)

    with monkeypatch.context() as m:  # stage 2 dies after 19 candidates
        m.setattr(WidthScorer, "metrics", dies_in_stage_2)
        with pytest.raises(KeyboardInterrupt):
            _search(config, out)
    assert not (out / "embedding_dims.json").exists()
    summary = _search(config, out)
    assert summary["stage1"]["resumed_from"] == 10
    assert _stable(summary) == _stable(ref)
    a = torch.load(out / "embedding_search" / "supernet.pt", weights_only=False)["state_dict"]
    b = torch.load(ref_out / "embedding_search" / "supernet.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in b)


@pytest.mark.parametrize(
    ("case", "line"),
    [
        ("widths", "embedding_search: widths: width 6 is not a positive multiple of 4"),
        ("budget", "embedding_search.budget: 10 (10 parameters) is below the smallest"),
        ("missing", "feature 'cat_4' of the data has no width"),
        ("extra", "feature 'nope' is not in the data"),
        ("width", "feature 'cat_1': width 10 is not a positive multiple of 4"),
    ],
)
def test_cli_bad_input_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, line: str
) -> None:
    dims = {f"cat_{i}": 8 for i in range(5)}
    text = TINY
    if case == "widths":
        text = TINY.replace("widths: [4, 8, 16, 32]", "widths: [4, 6]")
    if case == "budget":
        text = TINY.replace("budget: 0.8", "budget: 10")
    config = tmp_path / "c.yaml"
    config.write_text(text)
    if case == "missing":
        del dims["cat_4"]
    if case == "extra":
        dims["nope"] = 8
    if case == "width":
        dims["cat_1"] = 10
    (tmp_path / "dims.json").write_text(json.dumps(dims))
    out = str(tmp_path / "out")
    if case in ("widths", "budget"):
        argv = ["embedding-search", "--config", str(config), "--out", out, "--quiet"]
    else:
        argv = ["train", "--config", str(config), "--out", out, "--baselines-only", "--quiet",
                "--embedding-dims", str(tmp_path / "dims.json")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and line in err[0], err


def test_mixed_widths_train_under_dmp_on_two_ranks(tmp_path: Path) -> None:
    dims = {"cat_0": 4, "cat_1": 8, "cat_2": 16, "cat_3": 32, "cat_4": 12}
    (tmp_path / "dims.json").write_text(json.dumps(dims))
    config = _config(tmp_path, "")
    text = config.read_text().replace("  progress: false\n  baselines", "  progress: false\n"
                                      f"  embedding_dims: {tmp_path / 'dims.json'}\n  baselines")  # fmt: skip
    config.write_text(text)
    arch = tmp_path / "arch.json"
    cfg = Config.load(config)
    arch.write_text(cfg.space.sample(random.Random(3)).to_json())
    out = tmp_path / "dmp"
    _ok(torchrun("-m", "torchrec_nas.launch.main", "train", "--config", str(config),
                 "--out", str(out), "--arch", str(arch), "--quiet"))  # fmt: skip
    results = json.loads((out / "train" / "results.json").read_text())
    assert {"nasrec", "dlrm", "nasrec_mixed", "dlrm_mixed"} <= set(results)
    assert "versus_uniform" in results["dlrm_mixed"]
    plan = (out / "train" / "dlrm_mixed" / "sharding_plan.txt").read_text()
    assert "world_size: 2" in plan
    # The planner placed each table at its own width: "t_cat_1 | [0, 0] | [rows, 8] | rank:r".
    shards = {}
    for line in plan.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 4 and cells[0].startswith("t_cat_") and cells[3].startswith("rank:"):
            rows, width = json.loads(cells[2])
            shards[cells[0][2:]] = (rows, width)
    assert {f: w for f, (_, w) in shards.items()} == dims
    rows = {f: r for f, (r, _) in shards.items()}
    assert results["dlrm_mixed"]["embedding_params"] == embedding_params(dims, rows, 16)
    assert results["dlrm"]["embedding_params"] == 16 * sum(rows.values())


def test_search_runs_on_two_ranks(tmp_path: Path) -> None:
    # Stage 1 sharded over 2 gloo ranks (the sampler fed the ranks' mean loss), stage 2 on
    # rank 0 while rank 1 waits: no collective may run on one rank alone.
    config, out = _config(tmp_path), tmp_path / "two"
    worker = str(Path(__file__).parent / "embedding_search_worker.py")
    _ok(torchrun(worker, str(config), str(out)))
    summary = json.loads((out / "embedding_search.json").read_text())
    assert summary["stage1"]["world_size"] == 2 and summary["stage1"]["steps"] == 24
    dims = json.loads((out / "embedding_dims.json").read_text())
    assert sorted(dims) == [f"cat_{i}" for i in range(5)]
    assert "world_size: 2" in (out / "embedding_search" / "sharding_plan.txt").read_text()
