"""Stage 1: train the weight-sharing supernet."""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch import nn
from torchrec.datasets.utils import Batch

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.models import NASRecModel
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.callbacks import standard_callbacks
from torchrec_nas.runtime.default import default_runtime
from torchrec_nas.runtime.trainer import Trainer, TrainResult, batches_per_epoch
from torchrec_nas.space import Architecture
from torchrec_nas.stages.models import build_supernet, load_supernet, supernet_meta
from torchrec_nas.train.checkpoint import save_atomic, write_json_atomic
from torchrec_nas.train.sampling import PathSampler, largest_path


def check_same_architecture(runtime: Runtime, arch: Architecture, step: int) -> None:
    """Fails unless every rank is about to train ``arch`` at ``step``."""
    if len(set(runtime.gather(arch.to_json()))) != 1:
        raise RuntimeError(f"supernet: step {step}: ranks disagree on the sampled architecture")


def run_supernet(
    cfg: Config,
    out: str | Path,
    runtime: Runtime | None = None,
    data: DataSplits | None = None,
) -> TrainResult:
    """Trains the supernet, resuming from the stage's last checkpoint.

    Writes (on the primary rank) ``supernet.pt`` (unless a sharded job's
    ``distributed.export_full_model`` is off), ``supernet.json`` and
    ``supernet/train_log.jsonl``; checkpoints go to ``supernet/checkpoint.pt`` (one process)
    or ``supernet/dcp`` (sharded).

    Args:
        cfg: the run's config.
        out: the run's directory (a local path or URL).
        runtime: one process (default, on ``cfg.device``) or a rank of a sharded job.
        data: this rank's data (default: built from ``cfg.data``).

    Example::

        run_supernet(Config.load("configs/demo.yaml"), "runs/demo")
    """
    runtime = runtime or default_runtime(cfg)
    data = data or runtime.data(cfg)
    sc = cfg.supernet
    total = sc.total_steps(batches_per_epoch(data.train))
    plan = storage.join(out, "supernet", "sharding_plan.txt")
    model, opt = runtime.prepare(build_supernet(cfg, data.spec), sc.optimizer, total, cfg, plan)
    sampler = PathSampler(
        cfg.space, cfg.seed, int(sc.path_warmup_fraction * total), sc.path_warmup_prob
    )
    # Validation tracks one fixed wide path, so the curve is comparable across evaluations.
    probe = largest_path(cfg.space, random.Random(cfg.seed))
    verify = cfg.distributed.verify_arch_every if runtime.world_size > 1 else 0

    def train_forward(batch: Batch, step: int) -> torch.Tensor:
        arch = sampler(step)
        if verify and step % verify == 0:
            check_same_architecture(runtime, arch, step)
        logits: torch.Tensor = model(batch, arch)
        return logits

    def eval_forward(batch: Batch) -> torch.Tensor:
        logits: torch.Tensor = model(batch, probe)
        return logits

    checkpointer = runtime.checkpointer(cfg, out, "supernet")
    callbacks = standard_callbacks(
        sc, storage.join(out, "supernet"), checkpointer, runtime.is_primary
    )
    trainer = Trainer(model, opt, sc, train_forward, eval_forward, "supernet", callbacks, runtime)
    result = trainer.fit(data.train, data.val)
    if runtime.world_size == 1 or cfg.distributed.export_full_model:
        state = runtime.full_state_dict(model)
        if runtime.is_primary:
            meta = supernet_meta(cfg, data.spec)
            save_atomic({"state_dict": state, **meta}, storage.join(out, "supernet.pt"))
    if runtime.is_primary:
        summary = {**result.to_dict(), "world_size": runtime.world_size}
        write_json_atomic(storage.join(out, "supernet.json"), summary)
    runtime.barrier()
    return result


def trained_supernet(cfg: Config, out: str | Path, runtime: Runtime, data: DataSplits) -> nn.Module:
    """The trained supernet placed by ``runtime``: from ``out/supernet.pt``, or else from
    the supernet stage's last sharded checkpoint."""
    full = storage.join(out, "supernet.pt")
    plan = storage.join(out, "search_sharding_plan.txt")
    if storage.isfile(full) or runtime.world_size == 1:
        return runtime.place(load_supernet(cfg, full, data.spec), cfg, plan)
    model = runtime.place(build_supernet(cfg, data.spec), cfg, plan)
    if not runtime.restore(model, cfg, out, "supernet"):
        raise FileNotFoundError(f"{out}: no supernet here; run the supernet stage first")
    return model


def unwrap_supernet(runtime: Runtime, model: nn.Module) -> NASRecModel:
    """The :class:`NASRecModel` inside a placed supernet."""
    inner = runtime.unwrap(model)
    assert isinstance(inner, NASRecModel)
    return inner
