"""Runs that survive anything: divergence, resumes, Ctrl-C and bad inputs give clean records
and one clear line."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from torchrec_nas import stages
from torchrec_nas.cli import main
from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.runtime import LocalRuntime
from torchrec_nas.runtime.default import default_runtime
from torchrec_nas.runtime.trainer import Trainer
from torchrec_nas.stages.models import final_candidates
from torchrec_nas.train.checkpoint import CheckpointError, json_dumps, write_json_atomic
from torchrec_nas.train.resume import FileCheckpointer

TINY = """
seed: 0
data:
  batch_size: 64
  synthetic: {rows: 3000, num_dense: 4, num_sparse: 5, cardinalities: 100}
space: {preset: nasrec-small, num_blocks: 3, dense_dims: [16, 32], sparse_tokens: [16]}
supernet: {steps: 10, checkpoint_every: 4, eval_batches: 2, log_every: 1, progress: false}
search: {progress: false, allow_chance: true}
train:
  steps: 6
  checkpoint_every: 4
  eval_batches: 2
  log_every: 1
  progress: false
  baselines: {models: [dlrm], dense_arch_layer_sizes: [16], over_arch_layer_sizes: [16]}
"""


class Killed(Exception):
    pass


class DieAfter:
    """The train stream, except that it raises ``error`` after ``n`` batches."""

    def __init__(self, stream: Any, n: int, error: BaseException) -> None:
        self.stream, self.n, self.error = stream, n, error

    def __len__(self) -> int:
        return len(self.stream)

    def __iter__(self) -> Iterator[Any]:
        for i, batch in enumerate(self.stream):
            if i == self.n:
                raise self.error
            yield batch


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY + extra)
    return path


def log_steps(path: Path) -> list[int]:
    return [json.loads(x)["step"] for x in path.read_text().splitlines() if '"loss"' in x]


def test_divergence_stops_with_the_stage_and_step_and_keeps_the_last_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path = config(tmp_path)
    sgd = "progress: false, optimizer: {name: sgd, lr: 1.0e+6}}"
    every_step = TINY.replace("checkpoint_every: 4, eval", "checkpoint_every: 1, eval", 1)
    cfg_path.write_text(every_step.replace("progress: false}", sgd, 1))
    out = tmp_path / "out"
    assert main(["supernet", "--config", str(cfg_path), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "supernet: the training loss is nan at step" in err[0]
    assert not (out / "supernet.pt").exists() and not (out / "supernet.json").exists()
    kept = re.search(r"last good checkpoint, step (\d+)", err[0])
    assert kept is not None
    steps = sorted(p.name for p in (out / "supernet" / "dcp").iterdir())
    assert int(kept.group(1)) > 0 and steps[-1] == f"step_{int(kept.group(1)):09d}"
    assert "NaN" not in (out / "supernet" / "train_log.jsonl").read_text()


def test_json_files_never_hold_nan(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "r.json", {"logloss": float("nan"), "x": [float("inf"), 1.0]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"logloss": None, "x": [None, 1.0]}
    assert "NaN" not in json_dumps({"a": float("nan")})
    with pytest.raises(ConfigError, match="lr"):
        Config.from_dict({"supernet": {"optimizer": {"lr": float("nan")}}}, "f.yaml")


@pytest.mark.parametrize("sharded", [True, False], ids=["dmp", "plain"])
def test_resumed_supernet_leaves_clean_records(tmp_path: Path, sharded: bool) -> None:
    cfg = Config.load(config(tmp_path))
    out = tmp_path / "out"
    runtime = default_runtime(cfg) if sharded else LocalRuntime("cpu")
    data = runtime.data(cfg)
    train = data.train
    data.train = DieAfter(train, 7, Killed())  # dies in step 8; last checkpoint: step 4
    old_mask = os.umask(0o027)
    try:
        with pytest.raises(Killed):
            stages.run_supernet(cfg, out, runtime, data)
        # A kill while a checkpoint was being written leaves a part of it behind.
        if sharded:
            (out / "supernet" / "dcp" / "step_000000006").mkdir(parents=True)
        else:
            (out / "supernet" / ".checkpoint.pt.dead.tmp").write_bytes(b"")
        data.train = train
        result = stages.run_supernet(cfg, out, runtime, data)
    finally:
        os.umask(old_mask)
    assert result.resumed_from == 4 and result.steps == 10
    summary = json.loads((out / "supernet.json").read_text())
    assert summary["rows"] == 10 * 64  # all rows of the run, not only the resumed session's
    assert log_steps(out / "supernet" / "train_log.jsonl") == list(range(1, 11))
    assert not list((out / "supernet").glob(".*.tmp"))
    checkpoints = (
        ["supernet/dcp/step_000000010/.metadata"] if sharded else ["supernet/checkpoint.pt"]
    )
    if sharded:
        dcp = sorted(p.name for p in (out / "supernet" / "dcp").iterdir())
        assert dcp == ["step_000000008", "step_000000010"]  # keep_checkpoints: 2
    for name in ("supernet.pt", "supernet.json", *checkpoints):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o640, name


def test_a_finished_trial_reports_its_real_final_loss(tmp_path: Path) -> None:
    cfg = Config.load(config(tmp_path))
    out = tmp_path / "out"
    first = stages.train_final(cfg, out, None)
    again = stages.train_final(cfg, out, None)  # every trial is finished: nothing retrained
    a, b = first["dlrm"]["train"], again["dlrm"]["train"]
    assert b["resumed_from"] == 6 and b["final_loss"] == a["final_loss"]
    assert b["rows"] == a["rows"] == 6 * 64
    # Its throughput is the whole run's, not the empty rerun's.
    assert a["rows_per_second"] > 0
    assert b["rows_per_second"] == pytest.approx(a["rows_per_second"], rel=0.05)
    assert again["dlrm"]["test"] == first["dlrm"]["test"]
    assert log_steps(out / "train" / "dlrm" / "train_log.jsonl") == list(range(1, 7))


def test_ctrl_c_exits_130_naming_the_step_to_resume_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    step = Trainer.train_step

    def interrupted(self: Trainer, batch: Any, state: Any) -> None:
        if state.step == 6:
            raise KeyboardInterrupt
        step(self, batch, state)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    cfg, out = config(tmp_path), tmp_path / "out"
    assert main(["supernet", "--config", str(cfg), "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "torchrec-nas supernet: interrupted; rerun the same command to resume from step 4"


def test_evaluate_checks_that_the_model_fits_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path = config(tmp_path)
    cfg = Config.load(cfg_path)
    data = LocalRuntime("cpu").data(cfg)
    tables = data.spec.tables(cfg.space.embedding_dim)
    (_, build, options), *_ = final_candidates(cfg, tables, 4, None)
    model_path = tmp_path / "model_dlrm.pt"
    meta = {"spec": data.spec.to_dict(), "space": asdict(cfg.space), "options": options}
    stages.save_model(build(), model_path, **meta)
    args = ["evaluate", "--config", str(cfg_path), "--out", str(tmp_path / "o")]
    assert main([*args, "--model", str(model_path)]) == 0
    capsys.readouterr()

    other = tmp_path / "other.yaml"
    other.write_text(TINY.replace("num_dense: 4", "num_dense: 3"))
    other_args = ["evaluate", "--config", str(other), "--out", str(tmp_path / "o")]
    assert main([*other_args, "--model", str(model_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit the config's data: dense features: the model has 4" in err
    assert len(err.splitlines()) == 1

    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    assert main([*args, "--model", str(not_a_model)]) == 2
    assert "not a readable model file" in capsys.readouterr().err
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model": {}, "optimizer": {}}, ckpt)
    assert main([*args, "--model", str(ckpt)]) == 2
    assert "not a model written by `torchrec-nas train`" in capsys.readouterr().err


def test_bad_inputs_give_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path)
    out = tmp_path / "out"
    (out / "supernet" / "dcp" / "step_000000004").mkdir(parents=True)
    (out / "supernet" / "dcp" / "step_000000004" / ".metadata").write_bytes(b"\x00" * 10)
    assert main(["supernet", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "step_000000004: checkpoint could not be read" in err
    assert "delete it" in err
    ckpt = tmp_path / "checkpoint.pt"  # the one-process form of a checkpoint
    ckpt.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="not a readable checkpoint .*; delete it"):
        FileCheckpointer(ckpt).load("supernet", torch.nn.Linear(1, 1), None)

    a_file = tmp_path / "file"
    a_file.write_text("")
    assert main(["supernet", "--config", str(cfg), "--out", str(a_file)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err

    bad_device = tmp_path / "gpu.yaml"
    bad_device.write_text(TINY + "device: gpu\n")
    assert main(["supernet", "--config", str(bad_device), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "device: 'gpu' is not a torch device" in err
