"""The runtimes: one process as DMP with one rank trains what the plain runtime trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from torchrec_nas.config import Config
from torchrec_nas.runtime import LocalRuntime, parse_device
from torchrec_nas.runtime.default import default_runtime
from torchrec_nas.stages import run_supernet

TINY = """
seed: 3
data:
  batch_size: 64
  synthetic: {rows: 3000, num_dense: 4, num_sparse: 5, cardinalities: 100}
space: {preset: nasrec-small, num_blocks: 3, dense_dims: [16, 32], sparse_tokens: [16]}
supernet: {steps: 8, checkpoint_every: 0, eval_batches: 2, log_every: 1, progress: false}
"""


def test_one_rank_dmp_follows_the_plain_runtime(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    cfg = Config.load(path)
    runs = {}
    for name, runtime in (("plain", LocalRuntime("cpu")), ("dmp", default_runtime(cfg))):
        run_supernet(cfg, tmp_path / name, runtime)
        log = (tmp_path / name / "supernet" / "train_log.jsonl").read_text().splitlines()
        weights = torch.load(tmp_path / name / "supernet.pt", weights_only=False)["state_dict"]
        runs[name] = ([r["loss"] for r in map(json.loads, log) if "loss" in r], weights)
    (plain_loss, plain_w), (dmp_loss, dmp_w) = runs["plain"], runs["dmp"]
    assert len(plain_loss) == len(dmp_loss) == 8
    # FBGEMM's fused Adagrad against torch's: float32 summation order only.
    assert max(abs(a - b) for a, b in zip(plain_loss, dmp_loss)) < 1e-4
    assert plain_w.keys() == dmp_w.keys()
    assert max(float((plain_w[k] - dmp_w[k]).abs().max()) for k in plain_w) < 1e-4


def test_bad_device_strings_are_refused_in_one_line() -> None:
    assert parse_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device: 'gpu' is not a torch device"):
        parse_device("gpu")
