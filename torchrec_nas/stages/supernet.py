"""Stage 1: train the weight-sharing supernet."""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.datasets.utils import Batch

from torchrec_nas import storage
from torchrec_nas.config import Config, SupernetConfig
from torchrec_nas.data import DataSplits
from torchrec_nas.models import NASRecModel
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.callbacks import standard_callbacks
from torchrec_nas.runtime.default import default_runtime
from torchrec_nas.runtime.trainer import Trainer, TrainResult, batches_per_epoch
from torchrec_nas.search.batches import IndexedBatches
from torchrec_nas.search.evaluator import SupernetEvaluator
from torchrec_nas.space import Architecture
from torchrec_nas.stages.models import build_supernet, load_supernet, supernet_meta
from torchrec_nas.train.checkpoint import save_atomic, write_json_atomic
from torchrec_nas.train.sampling import PathSampler, largest_path

#: ``model(batch, arch) -> logits``.
PathForward = Callable[[Batch, Architecture], torch.Tensor]


def check_same_architecture(
    runtime: Runtime, arch: Architecture | list[Architecture], step: int
) -> None:
    """Fails unless every rank is about to train ``arch`` (or these paths) at ``step``."""
    archs = arch if isinstance(arch, list) else [arch]
    text = "\n".join(a.to_json() for a in archs)
    if len(set(runtime.gather(text))) != 1:
        raise RuntimeError(f"supernet: step {step}: ranks disagree on the sampled architecture")


def path_sampler(cfg: Config, total: int) -> PathSampler:
    """The supernet's path sampler for a run of ``total`` steps."""
    sc = cfg.supernet
    return PathSampler(
        cfg.space,
        cfg.seed,
        int(sc.path_warmup_fraction * total),
        sc.path_warmup_prob,
        sc.path_warmup_schedule,
        sc.sandwich,
        sc.sandwich_random,
        sc.fair_operators,
    )


def sandwich_loss(
    forward: PathForward, batch: Batch, archs: list[Architecture], sc: SupernetConfig
) -> torch.Tensor:
    """The sum of the BCE losses of ``archs`` on ``batch`` (the first is the largest path);
    with ``sc.distill`` the others' targets mix the label with the largest path's detached
    probability by ``sc.distill_weight``.

    Example::

        loss = sandwich_loss(model, batch, sampler.paths(step), cfg.supernet)
        loss.backward()   # one backward: the tables' fused optimizer updates them once
    """
    labels = batch.labels.float()
    teacher = forward(batch, archs[0])
    loss = F.binary_cross_entropy_with_logits(teacher, labels)
    target = labels
    if sc.distill:
        w = sc.distill_weight
        target = (1.0 - w) * labels + w * torch.sigmoid(teacher.detach())
    for arch in archs[1:]:
        loss = loss + F.binary_cross_entropy_with_logits(forward(batch, arch), target)
    return loss


def chance_line(probe_ne: float, steps: int, rows: int, sc: SupernetConfig) -> str:
    """The one line that says the supernet did not learn, with the fix."""
    return (
        f"supernet: at chance (validation NE {probe_ne:.3f} >= {sc.chance_ne:g} after "
        f"{steps:,} steps on {rows:,} rows): it did not learn, so a search would rank noise; "
        "raise supernet.steps or the data, lower supernet.optimizer.lr, or bucketize numeric "
        "columns (data.bucketize_dense); "
        "`--allow-chance` (search.allow_chance) searches anyway"
    )


def chance_summary(
    probe: dict[str, float] | None, result: TrainResult, train_rows: int, sc: SupernetConfig
) -> dict[str, Any]:
    """``at_chance``, ``probe_ne`` (the probe path scored as a search scores a candidate:
    ``probe``, ``None`` without a validation split) and, at chance, ``chance_message`` for
    supernet.json. The supernet's own classifier is shared by every path and stays near
    chance even when the features rank subnets, so it is not what is judged."""
    if probe is None:
        return {"at_chance": False, "probe_ne": None}
    probe_ne = probe["ne"]
    at_chance = bool(probe_ne >= sc.chance_ne)
    summary: dict[str, Any] = {"at_chance": at_chance, "probe_ne": probe_ne}
    if at_chance:
        summary["chance_message"] = chance_line(probe_ne, result.steps, train_rows, sc)
    return summary


class SupernetAtChance(ValueError):
    """The supernet did not learn (see :func:`chance_line`); a search would rank noise."""


def check_not_at_chance(cfg: Config, out: str | Path) -> None:
    """Refuses a search on a supernet that ``supernet.json`` records at chance, unless
    ``cfg.search.allow_chance``; a run without that record passes.

    Raises:
        SupernetAtChance: with the line that says so and how to go on.
    """
    path = storage.join(out, "supernet.json")
    if cfg.search.allow_chance or not storage.isfile(path):
        return
    summary = json.loads(storage.read_text(path))
    if summary.get("at_chance"):
        raise SupernetAtChance(summary.get("chance_message") or "supernet: at chance")


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
    sampler = path_sampler(cfg, total)
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

    def train_loss(batch: Batch, step: int) -> torch.Tensor:
        archs = sampler.paths(step)
        if verify and step % verify == 0:
            check_same_architecture(runtime, archs, step)
        return sandwich_loss(model, batch, archs, sc)

    checkpointer = runtime.checkpointer(cfg, out, "supernet")
    callbacks = standard_callbacks(
        sc, storage.join(out, "supernet"), checkpointer, runtime.is_primary
    )
    trainer = Trainer(
        model,
        opt,
        sc,
        train_forward,
        eval_forward,
        "supernet",
        callbacks,
        runtime,
        train_loss if sc.sandwich else None,
    )
    result = trainer.fit(data.train, data.val)
    train_rows = (batches_per_epoch(data.train) or 0) * cfg.data.batch_size
    probe_score = None
    if data.val is not None:
        probe_score = runtime.broadcast(candidate_evaluator(cfg, model, data, runtime)(probe))
    chance = chance_summary(probe_score, result, train_rows, sc)
    if runtime.world_size == 1 or cfg.distributed.export_full_model:
        state = runtime.full_state_dict(model)
        if runtime.is_primary:
            meta = supernet_meta(cfg, data.spec)
            save_atomic({"state_dict": state, **meta}, storage.join(out, "supernet.pt"))
    if runtime.is_primary:
        summary = {**result.to_dict(), "world_size": runtime.world_size, **chance}
        write_json_atomic(storage.join(out, "supernet.json"), summary)
        if chance["at_chance"]:
            print(chance["chance_message"], file=sys.stderr, flush=True)
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


def candidate_evaluator(
    cfg: Config, model: nn.Module, data: DataSplits, runtime: Runtime
) -> SupernetEvaluator:
    """How the search scores a candidate with a placed supernet (``cfg.search.finetune``),
    on every rank of a sharded job alike."""
    ft = cfg.search.finetune
    return SupernetEvaluator(
        unwrap_supernet(runtime, model),
        IndexedBatches(data.train, runtime.rank, runtime.world_size),
        runtime.share(data.val, ft.eval_batches),
        dataclasses.replace(ft, eval_batches=None),
        runtime.device,
        reduce_gradients=runtime.gradient_reducer,
        seed=cfg.seed,
    )
