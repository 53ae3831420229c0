"""The pipeline's stages on many ranks: supernet training, search and final training of a job
launched by ``torchrun`` or TorchX (see :mod:`torchrec_nas.launch`).

Each is the distributed twin of the function of the same role in :mod:`torchrec_nas.pipeline`
and writes the same files under ``out`` (on rank 0 only), plus ``sharding_plan.txt``. The
config's ``data.batch_size`` is the *global* batch: each of ``W`` ranks trains on ``B / W``
rows per step, so a job's loss curve does not depend on ``W``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torchrec.datasets.utils import Batch

from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits, build_data
from torchrec_nas.distributed.checkpoint import DistributedCheckpointer
from torchrec_nas.distributed.context import (
    DistributedContext,
    RankShard,
    all_gather_object,
    all_reduce_mean,
    broadcast_object,
    mean_across_ranks,
)
from torchrec_nas.distributed.optim import ShardedModelOptimizer, apply_sparse_optimizer
from torchrec_nas.distributed.sharding import (
    ShardedModel,
    gather_full_state_dict,
    shard_model,
)
from torchrec_nas.hardware.flops import architecture_costs
from torchrec_nas.models import NASRecModel
from torchrec_nas.pipeline import _fixed_forward, final_candidates, model_costs, save_model
from torchrec_nas.search.batches import IndexedBatches
from torchrec_nas.search.evaluator import SupernetEvaluator
from torchrec_nas.search.evolution import make_strategy
from torchrec_nas.search.history import Evaluation, SearchHistory
from torchrec_nas.search.provenance import search_provenance
from torchrec_nas.space import Architecture
from torchrec_nas.train.checkpoint import load_checkpoint, save_atomic, write_text_atomic
from torchrec_nas.train.loop import TrainResult, batches_per_epoch, train_loop
from torchrec_nas.train.metrics import evaluate
from torchrec_nas.train.sampling import PathSampler, largest_path

logger = logging.getLogger(__name__)


def rank_batch_size(cfg: Config, ctx: DistributedContext) -> int:
    """Rows per step on one rank: the global batch divided by the number of ranks."""
    if cfg.data.batch_size % ctx.world_size:
        raise ValueError(
            f"data.batch_size: the global batch {cfg.data.batch_size} does not divide among "
            f"{ctx.world_size} ranks"
        )
    return cfg.data.batch_size // ctx.world_size


def build_rank_data(cfg: Config, ctx: DistributedContext) -> DataSplits:
    """This rank's data: its shard of the train batches (``B / W`` rows each); validation and
    test stay whole here and are shared out by :class:`RankShard` where they are read."""
    data_cfg = dataclasses.replace(cfg.data, batch_size=rank_batch_size(cfg, ctx))
    return build_data(data_cfg, cfg.seed, ctx.rank, ctx.world_size)


def rank_eval(batches: Any, ctx: DistributedContext, max_batches: int | None) -> RankShard:
    """This rank's share of the first ``max_batches`` global-batch-sized evaluation batches
    (batches here are ``B / W`` rows, so that is ``max_batches * W`` of them)."""
    limit = max_batches * ctx.world_size if max_batches is not None else None
    return RankShard(batches, ctx.rank, ctx.world_size, limit)


def write_report(ctx: DistributedContext, path: Path, text: str) -> None:
    if ctx.is_primary:
        write_text_atomic(path, text)


def _checkpointer(cfg: Config, out: Path, stage: str) -> DistributedCheckpointer:
    root = cfg.distributed.checkpoint_dir
    root = f"{root.rstrip('/')}/{stage}" if root else str(out / stage / "dcp")
    return DistributedCheckpointer(root, cfg.distributed.keep_checkpoints)


def _meta(cfg: Config, data: DataSplits) -> dict[str, Any]:
    return {"space": asdict(cfg.space), "spec": data.spec.to_dict(), "seed": cfg.seed}


def check_same_architecture(arch: Architecture, step: int) -> None:
    """Fails unless every rank is about to train ``arch`` at ``step``."""
    hashes = all_gather_object(arch.to_json())
    if len(set(hashes)) != 1:
        raise RuntimeError(f"step {step}: ranks disagree on the sampled architecture")


def run_supernet_distributed(
    cfg: Config, out: str | Path, ctx: DistributedContext, data: DataSplits | None = None
) -> TrainResult:
    """Trains the supernet with its tables sharded by TorchRec over the job's ranks.

    Writes, on rank 0: ``supernet/sharding_plan.txt``, ``supernet/train_log.jsonl``,
    ``supernet.json`` and (``distributed.export_full_model``) ``supernet.pt`` in the
    one-process format; all ranks write sharded checkpoints to ``supernet/dcp`` (or
    ``distributed.checkpoint_dir``), from which a restarted job resumes.

    Example::

        ctx = init_distributed(cfg.distributed.backend, cfg.device)
        run_supernet_distributed(cfg, "runs/x", ctx)
    """
    out = Path(out)
    data = data or build_rank_data(cfg, ctx)
    torch.manual_seed(cfg.seed)
    model = NASRecModel(
        data.spec.tables(cfg.space.embedding_dim), len(data.spec.dense_names), cfg.space
    )
    sc = cfg.supernet
    apply_sparse_optimizer(model, sc.optimizer)
    sharded = shard_model(model, cfg.distributed, ctx, rank_batch_size(cfg, ctx))
    write_report(ctx, out / "supernet" / "sharding_plan.txt", sharded.report)
    total = sc.total_steps(batches_per_epoch(data.train))
    opt = ShardedModelOptimizer(
        sharded.dmp, sc.optimizer, total, allreduce=cfg.distributed.dense_sync == "allreduce"
    )
    sampler = PathSampler(
        cfg.space, cfg.seed, int(sc.path_warmup_fraction * total), sc.path_warmup_prob
    )
    probe = largest_path(cfg.space, random.Random(cfg.seed))
    verify = cfg.distributed.verify_arch_every
    dmp = sharded.dmp

    def forward(batch: Batch, step: int) -> torch.Tensor:
        arch = sampler(step) if step >= 0 else probe
        if verify and step >= 0 and step % verify == 0:
            check_same_architecture(arch, step)
        logits: torch.Tensor = dmp(batch, arch)
        return logits

    loop_cfg = dataclasses.replace(sc, eval_batches=None)
    result = train_loop(
        dmp,
        forward,
        data.train,
        loop_cfg,
        out / "supernet",
        rank_eval(data.val, ctx, sc.eval_batches),
        "supernet",
        ctx.device,
        optimizer=opt,
        checkpointer=_checkpointer(cfg, out, "supernet"),
        primary=ctx.is_primary,
        reduce_loss=mean_across_ranks,
    )
    result = _global_result(result, ctx)
    if cfg.distributed.export_full_model:
        state = gather_full_state_dict(dmp)
        if ctx.is_primary:
            save_atomic({"state_dict": state, **_meta(cfg, data)}, out / "supernet.pt")
    if ctx.is_primary:
        summary = {**result.to_dict(), "world_size": ctx.world_size, "backend": ctx.backend}
        write_text_atomic(out / "supernet.json", json.dumps(summary, indent=2))
    ctx.barrier()
    return result


def _global_result(result: TrainResult, ctx: DistributedContext) -> TrainResult:
    """The job's rows and time: rows summed over ranks, the slowest rank's seconds."""
    rows = all_gather_object((result.rows, result.seconds))
    return dataclasses.replace(
        result, rows=sum(r for r, _ in rows), seconds=max(s for _, s in rows)
    )


def load_sharded_supernet(
    cfg: Config, out: Path, ctx: DistributedContext, data: DataSplits
) -> ShardedModel:
    """The trained supernet, sharded: from ``supernet.pt`` if there is one (either path writes
    it), else from the supernet stage's last sharded checkpoint."""
    torch.manual_seed(cfg.seed)
    model = NASRecModel(
        data.spec.tables(cfg.space.embedding_dim), len(data.spec.dense_names), cfg.space
    )
    full = out / "supernet.pt"
    if full.is_file():
        state = load_checkpoint(full)
        assert state is not None
        if state["space"] != asdict(cfg.space):
            raise ValueError(f"{full}: the supernet was trained for another search space")
        if state["spec"] != data.spec.to_dict():
            raise ValueError(f"{full}: the supernet was trained on data with other features")
        model.load_state_dict(state["state_dict"])
        return shard_model(model, cfg.distributed, ctx, rank_batch_size(cfg, ctx))
    sharded = shard_model(model, cfg.distributed, ctx, rank_batch_size(cfg, ctx))
    ckpt = _checkpointer(cfg, out, "supernet")
    if not ckpt.steps():
        raise FileNotFoundError(f"{out}: no supernet here; run the supernet stage first")
    ckpt.load_model(sharded.dmp)
    return sharded


def replicated_history(
    path: Path, ctx: DistributedContext, provenance: dict[str, str] | None = None
) -> SearchHistory:
    """The search history: rank 0 reads and appends to ``path`` (checking ``provenance``); the
    other ranks hold the same records in memory (sent by rank 0), so every rank's strategy
    resumes identically."""
    history = SearchHistory(path if ctx.is_primary else None, provenance)
    records = broadcast_object([r.to_dict() for r in history] if ctx.is_primary else None)
    if not ctx.is_primary and records:
        for i, rec in enumerate(records):
            history.append(Evaluation.from_dict(rec, f"{path} (from rank 0), record {i}"))
    return history


def run_search_distributed(
    cfg: Config, out: str | Path, ctx: DistributedContext, data: DataSplits | None = None
) -> dict[str, Any]:
    """The search with the sharded supernet: every rank runs the same (deterministic) strategy,
    each candidate is fine-tuned and scored on all ranks' shards (gradients and metrics
    reduced), rank 0 alone appends to ``history.jsonl`` and writes ``best_arch.json`` and
    ``search.json`` atomically. A restarted job resumes from the history.

    Example::

        run_search_distributed(cfg, "runs/x", ctx)
    """
    out = Path(out)
    data = data or build_rank_data(cfg, ctx)
    sharded = load_sharded_supernet(cfg, out, ctx, data)
    write_report(ctx, out / "search_sharding_plan.txt", sharded.report)
    model = sharded.module
    assert isinstance(model, NASRecModel)
    ft = cfg.search.finetune
    evaluator = SupernetEvaluator(
        model,
        IndexedBatches(data.train, ctx.rank, ctx.world_size),
        rank_eval(data.val, ctx, ft.eval_batches),
        dataclasses.replace(ft, eval_batches=None),
        ctx.device,
        reduce_gradients=all_reduce_mean,
        seed=cfg.seed,
    )

    def score(arch: Architecture) -> dict[str, float]:
        # Reduced metrics agree across ranks already; rank 0's copy makes them bit-identical,
        # so no rank's strategy can drift.
        return broadcast_object(evaluator(arch))

    tables = data.spec.tables(cfg.space.embedding_dim)
    dense_in = len(data.spec.dense_names)

    def costs(arch: Architecture) -> dict[str, float]:
        objective = cfg.search.objective
        return architecture_costs(
            arch, cfg.space, dense_in, tables, objective.hardware, objective.embedding_mode
        )

    supernet = out / "supernet.pt"
    if not supernet.is_file():
        supernet = Path(_checkpointer(cfg, out, "supernet").root)
    provenance = search_provenance(cfg, data.spec, supernet) if ctx.is_primary else None
    history = replicated_history(out / "history.jsonl", ctx, provenance)
    strategy = make_strategy(cfg.space, cfg.search, cfg.seed)
    progress = cfg.search.progress and ctx.is_primary
    best = strategy.run(score, history, costs, cfg.search.objective, progress)
    summary = {
        "best": best.to_dict(),
        "candidates": len(history),
        "evaluated": history.evaluated,
        "cache_hits": len(history) - history.evaluated,
        "strategy": cfg.search.strategy,
        "world_size": ctx.world_size,
    }
    if ctx.is_primary:
        write_text_atomic(out / "best_arch.json", json.dumps(best.to_dict(), indent=2))
        write_text_atomic(out / "search.json", json.dumps(summary, indent=2))
    ctx.barrier()
    return summary


def _final_candidates(
    cfg: Config, data: DataSplits, arch: Architecture | None
) -> list[tuple[str, Any, dict[str, Any]]]:
    """``(name, build, options)`` of each model to train, as the one-process path builds them."""
    tables = data.spec.tables(cfg.space.embedding_dim)
    return list(final_candidates(cfg, tables, len(data.spec.dense_names), arch))


def train_final_distributed(
    cfg: Config,
    out: str | Path,
    ctx: DistributedContext,
    arch: Architecture | None,
    data: DataSplits | None = None,
) -> dict[str, Any]:
    """Trains ``arch`` and the configured baselines from scratch, each sharded; evaluates each
    on the test split across ranks; rank 0 writes ``train/results.json`` and (with
    ``distributed.export_full_model``) ``train/model_<name>.pt`` in the one-process format.

    Example::

        train_final_distributed(cfg, "runs/x", ctx, Architecture.load("runs/x/best_arch.json"))
    """
    out = Path(out)
    data = data or build_rank_data(cfg, ctx)
    results: dict[str, Any] = {}
    tc = cfg.train
    for name, build, options in _final_candidates(cfg, data, arch):
        model = build()
        apply_sparse_optimizer(model, tc.optimizer)
        sharded = shard_model(model, cfg.distributed, ctx, rank_batch_size(cfg, ctx))
        write_report(ctx, out / "train" / name / "sharding_plan.txt", sharded.report)
        total = tc.total_steps(batches_per_epoch(data.train))
        opt = ShardedModelOptimizer(
            sharded.dmp, tc.optimizer, total, allreduce=cfg.distributed.dense_sync == "allreduce"
        )
        dmp = sharded.dmp
        res = train_loop(
            dmp,
            _fixed_forward(dmp),
            data.train,
            dataclasses.replace(tc, eval_batches=None),
            out / "train" / name,
            rank_eval(data.val, ctx, tc.eval_batches),
            f"train {name}",
            ctx.device,
            optimizer=opt,
            checkpointer=_checkpointer(cfg, out, f"train/{name}"),
            primary=ctx.is_primary,
            reduce_loss=mean_across_ranks,
        )
        res = _global_result(res, ctx)
        dmp.eval()
        test = evaluate(dmp, rank_eval(data.test, ctx, None), None, ctx.device)
        entry: dict[str, Any] = {
            "test": test.to_dict(),
            "val": res.val.to_dict() if res.val else None,
            "train": res.to_dict(),
        }
        if cfg.distributed.export_full_model:
            state = gather_full_state_dict(dmp)
            if ctx.is_primary:
                whole = build()
                whole.load_state_dict(state)
                entry.update(model_costs(whole, next(iter(data.test))))
                meta = {"spec": data.spec.to_dict(), "space": asdict(cfg.space), "options": options}
                save_model(whole, out / "train" / f"model_{name}.pt", **meta)
        results[name] = entry
    if arch is not None:
        results["nasrec"]["architecture"] = arch.to_dict()
    if ctx.is_primary:
        write_text_atomic(out / "train" / "results.json", json.dumps(results, indent=2))
    ctx.barrier()
    return results
