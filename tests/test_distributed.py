"""Distributed supernet training and search on CPU with 2 gloo ranks under torchrun.

Each multi-process test starts ``torchrun`` (2 ranks, about 10 s of imports and setup) on a
tiny config. The one-process reference runs through the CLI (DMP with one rank) in a
subprocess, so that every run starts from the same fresh process state; tests/test_runtime.py
checks that one rank trains what the plain runtime trains.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.distributed.context import RankShard, free_port

ROOT = Path(__file__).resolve().parents[1]
TINY = """
seed: 7
data:
  batch_size: 64
  synthetic: {rows: 6000, num_dense: 4, num_sparse: 5, cardinalities: 200}
space: {preset: nasrec-small, num_blocks: 3, dense_dims: [16, 32], sparse_tokens: [16]}
supernet:
  steps: 12
  eval_batches: 4
  checkpoint_every: 5
  log_every: 1
  progress: false
search:
  population: 6
  tournament: 3
  children: 3
  generations: 2
  finetune: {steps: 3, eval_batches: 2}
  objective: {metric: logloss}
  progress: false
  allow_chance: true  # a few supernet steps learn nothing
distributed:
  sharding_types: {t_cat_1: [column_wise]}
  verify_arch_every: 1
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    cmd += ["--master_addr=127.0.0.1", f"--master_port={free_port()}", *args]
    return _run(cmd)


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def losses(out: Path) -> list[float]:
    lines = (out / "supernet" / "train_log.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if "loss" in r]


def weights(out: Path) -> dict[str, torch.Tensor]:
    state = torch.load(out / "supernet.pt", weights_only=False)
    return state["state_dict"]  # type: ignore[no-any-return]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny supernet trained by one process and by 2 ranks."""
    root = tmp_path_factory.mktemp("dist")
    config = root / "tiny.yaml"
    config.write_text(TINY)
    one, two = root / "one", root / "two"
    _ok(_run([sys.executable, "-m", "torchrec_nas.cli", "supernet", "--config", str(config),
              "--out", str(one), "--quiet"]))  # fmt: skip
    _ok(torchrun("-m", "torchrec_nas.launch.main", "supernet", "--config", str(config),
                 "--out", str(two), "--quiet"))  # fmt: skip
    return {"config": config, "one": one, "two": two, "root": root}


def test_two_ranks_follow_the_one_process_loss_curve(runs: dict[str, Path]) -> None:
    # Global batch 64 = 2 ranks x 32: the same rows, arch and initial weights at every step.
    # What differs is float32 summation order (two half-batch means averaged instead of one
    # mean; FBGEMM's fused Adagrad instead of torch's): ~1e-7 per step, measured below 1e-5
    # after 12 Adagrad steps. 1e-4 leaves room for other CPUs' kernels while a real bug
    # (e.g. gradients summed instead of averaged across ranks) moves the loss by > 1e-2.
    one, two = losses(runs["one"]), losses(runs["two"])
    assert len(one) == len(two) == 12
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-4
    assert max_difference(weights(runs["one"]), weights(runs["two"])) < 1e-4
    summary = json.loads((runs["two"] / "supernet.json").read_text())
    assert summary["world_size"] == 2 and summary["rows"] == 12 * 64


def test_sharding_plan_and_planner_stats_are_saved(runs: dict[str, Path]) -> None:
    text = (runs["two"] / "supernet" / "sharding_plan.txt").read_text()
    assert "world_size: 2" in text
    # The config's constraint is honoured; the planner's own per-rank memory table is there.
    line = next(ln for ln in text.splitlines() if ln.startswith("t_cat_1 "))
    assert "column_wise" in line
    assert "Planner Statistics" in text and "DDR (GB)" in text


def test_killed_job_resumes_to_the_uninterrupted_model(runs: dict[str, Path]) -> None:
    out = runs["root"] / "killed"
    cfg = runs["root"] / "resume.yaml"
    # Checkpoints through an fsspec URL; the job dies after 8 of 12 steps (last checkpoint: 5).
    cfg.write_text(TINY + f"  checkpoint_dir: file://{out}/ckpt\n")
    killed = torchrun(str(ROOT / "tests" / "distributed_worker.py"), str(cfg), str(out), "8")
    assert killed.returncode != 0
    assert not (out / "supernet.pt").exists()
    assert sorted(p.name for p in (out / "ckpt" / "supernet").iterdir()) == ["step_000000005"]
    _ok(torchrun("-m", "torchrec_nas.launch.main", "supernet", "--config", str(cfg),
                 "--out", str(out), "--quiet"))  # fmt: skip
    summary = json.loads((out / "supernet.json").read_text())
    assert summary["resumed_from"] == 5
    assert max_difference(weights(out), weights(runs["two"])) < 1e-6
    assert losses(out)[-1] == pytest.approx(losses(runs["two"])[-1], abs=1e-6)


def test_distributed_search_matches_one_process_and_writes_once(runs: dict[str, Path]) -> None:
    one, two = runs["root"] / "search1", runs["root"] / "search2"
    for d in (one, two):
        d.mkdir()
        shutil.copy(runs["one"] / "supernet.pt", d / "supernet.pt")
    config = str(runs["config"])
    _ok(_run([sys.executable, "-m", "torchrec_nas.cli", "search", "--config", config,
              "--out", str(one), "--quiet"]))  # fmt: skip
    _ok(torchrun("-m", "torchrec_nas.launch.main", "search", "--config", config,
                 "--out", str(two), "--quiet"))  # fmt: skip
    a = [json.loads(x) for x in (one / "history.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (two / "history.jsonl").read_text().splitlines()]
    # Rank 0 alone writes: one line per candidate, no duplicates.
    assert len(a) == len(b) == 6 + 3 * 2
    assert [r["hash"] for r in a] == [r["hash"] for r in b]
    for ra, rb in zip(a, b):
        assert rb["metrics"]["rows"] == ra["metrics"]["rows"]  # all ranks' rows counted
        assert rb["score"] == pytest.approx(ra["score"], abs=1e-4)
    best = json.loads((two / "best_arch.json").read_text())
    assert best["hash"] == json.loads((one / "best_arch.json").read_text())["hash"]


def test_all_stages_refuse_re_ranking_before_training_the_supernet(tmp_path: Path) -> None:
    config = tmp_path / "rerank.yaml"
    config.write_text(TINY.replace("search:\n", "search:\n  rerank: {top_k: 2}\n"))
    out = tmp_path / "out"
    proc = torchrun("-m", "torchrec_nas.launch.main", "all", "--config", str(config),
                    "--out", str(out), "--quiet")  # fmt: skip
    assert proc.returncode != 0
    assert "search.rerank: re-ranking trains in one process" in proc.stderr
    assert not (out / "supernet").exists()  # refused before any training


def test_torchx_local_cwd_runs_the_supernet_component(tmp_path: Path) -> None:
    pytest.importorskip("torchx")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.replace("steps: 12", "steps: 4"))
    out = tmp_path / "tx"
    proc = _run([str(Path(sys.executable).parent / "torchx"), "run", "-s", "local_cwd",
                 "torchrec_nas/launch/components.py:supernet", "--nproc_per_node", "2",
                 "--config", str(config), "--out", str(out), "--quiet", "True"])  # fmt: skip
    _ok(proc)
    summary = json.loads((out / "supernet.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert (out / "supernet.pt").is_file() and (out / "supernet" / "sharding_plan.txt").is_file()


def test_components_build_torchrun_apps() -> None:
    pytest.importorskip("torchx")
    from torchrec_nas.launch.components import search, supernet, train

    app = supernet(config="c.yaml", out="o", nnodes=2, nproc_per_node=8, gpu=8)
    cmd = " ".join(app.roles[0].args)
    assert "-m torchrec_nas.launch.main supernet --config c.yaml --out o" in cmd
    assert "--nnodes 2 --nproc_per_node 8" in cmd and app.roles[0].num_replicas == 2
    assert "search --config" in " ".join(search().roles[0].args)
    t = " ".join(train(arch="a.json", baselines=False).roles[0].args)
    assert "--arch a.json --no-baselines" in t


def test_distributed_config_is_validated() -> None:
    cfg = Config.from_dict({"distributed": {"sharding_types": {"t_x": ["column_wise"]}}})
    assert cfg.distributed.types_for("t_x") == ["column_wise"]
    assert cfg.distributed.types_for("t_y") == ["table_wise", "row_wise", "column_wise"]
    with pytest.raises(ConfigError, match="sharding_types.t_x: 'data_parallel'"):
        Config.from_dict({"distributed": {"sharding_types": {"t_x": ["data_parallel"]}}}, "f.yaml")
    with pytest.raises(ConfigError, match="dense_sync"):
        Config.from_dict({"distributed": {"dense_sync": "nope"}})


def test_rank_shards_are_equal_sized_and_disjoint() -> None:
    shards = [list(RankShard(range(7), r, 2)) for r in range(2)]
    assert shards == [[0, 2, 4], [1, 3, 5]]  # the 7th batch would leave rank 1 a step behind
    assert [list(RankShard(range(7), r, 2, limit=4)) for r in range(2)] == [[0, 2], [1, 3]]
    assert list(RankShard(range(7), 0, 1, limit=5)) == [0, 1, 2, 3, 4]
