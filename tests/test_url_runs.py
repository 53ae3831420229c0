"""A whole run written to a URL (``memory://`` in-process, ``file://`` through the CLI) resumes
after an interruption to the same files as an uninterrupted run; ``s3://`` without ``s3fs`` is
one clean error, never a local folder ``s3:``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from torchrec_nas import stages, storage
from torchrec_nas.cli import main
from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.runtime import LocalRuntime
from torchrec_nas.runtime.trainer import Trainer
from torchrec_nas.space import Architecture

TINY = """
seed: 0
data:
  batch_size: 64
  synthetic: {rows: 3000, num_dense: 4, num_sparse: 5, cardinalities: 100}
space: {preset: nasrec-small, num_blocks: 3, dense_dims: [16, 32], sparse_tokens: [16]}
supernet: {steps: 8, checkpoint_every: 3, eval_batches: 2, log_every: 1, progress: false}
search:
  population: 4
  tournament: 2
  children: 2
  generations: 2
  finetune: {steps: 2, eval_batches: 2}
  progress: false
  allow_chance: true  # 8 supernet steps learn nothing
train:
  steps: 4
  checkpoint_every: 2
  eval_batches: 2
  log_every: 1
  progress: false
  baselines: {models: []}
"""

#: Files whose content a resumed run must reproduce exactly.
COMPARED = ("history.jsonl", "best_arch.json", "train/results.json")


def interrupt_supernet_at(monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    """Ctrl-C in the supernet stage's step ``at`` (other stages run on)."""
    step = Trainer.train_step

    def interrupted(self: Trainer, batch: Any, state: Any) -> None:
        if state.desc == "supernet" and state.step == at:
            raise KeyboardInterrupt
        step(self, batch, state)

    monkeypatch.setattr(Trainer, "train_step", interrupted)


def results(out: str) -> dict[str, Any]:
    """The compared files, with measured times (rows/s, seconds) left out."""
    found: dict[str, Any] = {}
    for name in COMPARED:
        text = storage.read_text(storage.join(out, name))
        if name.endswith(".jsonl"):
            found[name] = text
        else:
            found[name] = json.loads(text)
    for entry in found["train/results.json"].values():
        for part in (entry, entry["train"]):
            part.pop("rows_per_second", None)
            part.pop("seconds", None)
            part.pop("resumed_from", None)
        entry.pop("lr_trials", None)
    return found


def whole_run(cfg: Config, out: str) -> dict[str, Any]:
    runtime = LocalRuntime("cpu")
    data = runtime.data(cfg)
    stages.run_supernet(cfg, out, runtime, data)
    stages.run_search(cfg, out, runtime, data)
    arch = Architecture.load(storage.join(out, "best_arch.json"))
    stages.train_final(cfg, out, arch, data, runtime)
    return results(out)


def test_a_run_on_memory_url_resumes_to_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    cfg = Config.load(tmp_path / "tiny.yaml")
    root = f"memory://test_url_runs/{os.getpid()}"
    straight = whole_run(cfg, f"{root}/straight")
    out = f"{root}/resumed"
    with monkeypatch.context() as m:
        interrupt_supernet_at(m, 5)
        with pytest.raises(KeyboardInterrupt):
            whole_run(cfg, out)
    assert storage.isfile(storage.join(out, "supernet", "checkpoint.pt"))
    assert not storage.exists(storage.join(out, "supernet.pt"))
    assert whole_run(cfg, out) == straight
    log = storage.read_text(storage.join(out, "supernet", "train_log.jsonl"))
    steps = [json.loads(x)["step"] for x in log.splitlines() if '"loss"' in x]
    assert steps == list(range(1, 9))
    assert not Path("memory:").exists()


def cli_run(cfg: Path, out: str) -> None:
    for command in ("supernet", "search", "train"):
        assert main([command, "--config", str(cfg), "--out", out, "--quiet"]) == 0


def test_a_cli_run_on_file_url_resumes_to_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    cfg_url = f"file://{cfg}"
    straight = f"file://{tmp_path}/straight"
    cli_run(cfg, straight)
    out = f"file://{tmp_path}/resumed"
    with monkeypatch.context() as m:
        interrupt_supernet_at(m, 5)
        assert main(["supernet", "--config", cfg_url, "--out", out, "--quiet"]) == 130
    assert "resume from step 3" in capsys.readouterr().err
    assert (tmp_path / "resumed" / "supernet" / "dcp" / "step_000000003" / ".metadata").is_file()
    cli_run(cfg, out)
    assert results(out) == results(straight)
    assert not (tmp_path / "resumed" / "run.lock").exists()
    assert not Path("file:").exists()


def test_s3_without_s3fs_is_one_line_and_no_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("s3fs is installed")
    monkeypatch.chdir(tmp_path)
    assert main(["supernet", "--out", "s3://bucket/x", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("torchrec-nas supernet: error: s3://bucket/x")
    assert "fsspec backend for s3://" in err and "s3fs" in err
    assert os.listdir(tmp_path) == []


def test_remote_memory_mapped_data_is_refused_naming_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {source: criteo_npy, path: 's3://bucket/npy'}\n")
    with pytest.raises(
        ConfigError, match=r"data\.path: s3://bucket/npy: source criteo_npy is memory-mapped"
    ):
        Config.load(cfg)
    cfg.write_text(f"data: {{source: criteo_tsv, path: 'file://{tmp_path}/day_0.gz'}}\n")
    assert Config.load(cfg).data.path == f"{tmp_path}/day_0.gz"
