"""Stage 3: train the found architecture and the baselines from scratch."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchrec.datasets.utils import Batch

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.embedding_search.mixed import (
    compare_mixed,
    embedding_param_count,
    mixed_width_candidates,
)
from torchrec_nas.hardware.flops import architecture_costs
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.callbacks import standard_callbacks
from torchrec_nas.runtime.default import default_runtime
from torchrec_nas.runtime.trainer import Trainer, TrainResult, batches_per_epoch
from torchrec_nas.search.provenance import fingerprint
from torchrec_nas.space import Architecture
from torchrec_nas.stages.models import ModelBuilder, final_candidates, model_costs, save_model
from torchrec_nas.stages.spread import aggregate_seeds, compare_to_baselines
from torchrec_nas.train.checkpoint import check_record, write_json_atomic
from torchrec_nas.train.metrics import evaluate


def train_trial(
    cfg: Config,
    out: str | Path,
    runtime: Runtime,
    data: DataSplits,
    name: str,
    build: ModelBuilder,
    lr: float,
    trial: str,
) -> tuple[nn.Module, TrainResult]:
    """Trains one model at one dense learning rate under ``out/trial`` (resuming).

    Raises:
        ValueError: ``out/trial`` holds the checkpoints of another model (for example a new
            ``best_arch.json`` trained into the directory of the last one).
    """
    loop = dataclasses.replace(cfg.train, optimizer=dataclasses.replace(cfg.train.optimizer, lr=lr))
    total = loop.total_steps(batches_per_epoch(data.train))
    plan = storage.join(out, trial, "sharding_plan.txt")
    fresh = build()
    check_trial_model(out, trial, fresh, runtime)
    model, opt = runtime.prepare(fresh, loop.optimizer, total, cfg, plan)

    def forward(batch: Batch) -> torch.Tensor:
        logits: torch.Tensor = model(batch)
        return logits

    checkpointer = runtime.checkpointer(cfg, out, trial)
    callbacks = standard_callbacks(loop, storage.join(out, trial), checkpointer, runtime.is_primary)
    desc = f"train {name} lr={lr:g}"
    trainer = Trainer(model, opt, loop, lambda b, _: forward(b), forward, desc, callbacks, runtime)
    return model, trainer.fit(data.train, data.val)


def check_trial_model(out: str | Path, trial: str, model: nn.Module, runtime: Runtime) -> None:
    """Ties ``out/trial`` to ``model``: its parameter names and shapes and, for a searched
    model, its architecture's canonical hash, in ``model.json`` (written on the first run).
    A resumed trial whose record differs raises ``ValueError`` naming both, before any
    checkpoint is read."""
    arch = getattr(model, "arch", None)
    record = {
        "architecture": arch.canonical_hash() if isinstance(arch, Architecture) else None,
        "parameters": fingerprint({k: list(v.shape) for k, v in model.state_dict().items()}),
    }
    path = storage.join(out, trial, "model.json")
    old, changed = check_record(path, record, write=runtime.is_primary)
    if old is not None and changed:
        raise ValueError(
            f"{path}: this trial trained another model (architecture "
            f"{old.get('architecture')}, not {record['architecture']}); move "
            f"{storage.join(out, 'train')} away or use another --out"
        )
    runtime.barrier()


def train_final(
    cfg: Config,
    out: str | Path,
    arch: Architecture | None,
    data: DataSplits | None = None,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Trains ``arch`` from scratch and the configured baselines on the same data and budget,
    each at its best dense learning rate of ``train.lr_grid`` by validation logloss;
    evaluates each on the test split; with several ``train.seeds`` trains each model with each
    seed (``train/<name>/seed_<s>``; the learning rate is chosen on the first seed) and adds
    ``seeds`` (per-seed rows), ``test_seeds`` (mean and std of test AUC and logloss) and, on
    the searched model, ``versus_baselines`` (see :mod:`torchrec_nas.stages.spread`); saves each model (``train/model_<name>.pt``, in the
    one-process format); writes ``train/results.json``. Finished trials are not retrained.

    Args:
        cfg: the run's config.
        out: the run's directory (a local path or URL).
        arch: the architecture (``None``: only the baselines).
        data: this rank's data (default: built from ``cfg.data``).
        runtime: one process (default) or a rank of a sharded job.

    Example::

        train_final(cfg, "runs/demo", Architecture.load("runs/demo/best_arch.json"))
    """
    runtime = runtime or default_runtime(cfg)
    data = data or runtime.data(cfg)
    tables = data.spec.tables(cfg.space.embedding_dim)
    dense_in = len(data.spec.dense_names)
    sample = next(iter(data.test))
    grid = cfg.train.lr_grid or [cfg.train.optimizer.lr]
    seeds = cfg.train.seeds or [cfg.seed]
    # One seed equal to the run's seed keeps the single-seed layout (train/<name>[/lr_x]).
    seed_dirs = seeds != [cfg.seed]
    # The searched model also tries each of train.layer_norm_grid (LayerNorms after its
    # blocks or not), chosen on validation with the learning rate; baselines have none.
    norms = list(dict.fromkeys(cfg.train.layer_norm_grid)) or [cfg.space.layer_norm]
    if arch is not None and not arch.layer_norm:
        norms = [cfg.space.layer_norm]  # the architecture has none: nothing to choose
    spaces = {n: dataclasses.replace(cfg.space, layer_norm=n) for n in norms}
    # With train.embedding_dims, each model is also trained at those widths (<name>_mixed).
    builders = {
        (s, n): mixed_width_candidates(
            cfg,
            data.spec,
            final_candidates(
                dataclasses.replace(cfg, space=spaces[n]), tables, dense_in, arch, seed=s
            ),
        )
        for s in seeds
        for n in norms
    }
    results: dict[str, Any] = {}
    for k, (name, _, options) in enumerate(builders[seeds[0], norms[0]]):
        base = f"train/{name}" + (f"/seed_{seeds[0]}" if seed_dirs else "")
        choices = norms if name.startswith("nasrec") else norms[:1]
        trials: dict[str, Any] = {}
        best: tuple[float, float, bool, nn.Module, TrainResult] | None = None
        for lr in grid:
            for norm in choices:
                build = builders[seeds[0], norm][k][1]
                trial = base + (f"/lr_{lr:g}" if len(grid) > 1 else "") + _norm_dir(cfg, norm)
                model, res = train_trial(cfg, out, runtime, data, name, build, lr, trial)
                val = res.val.logloss if res.val else math.nan
                label = f"{lr:g}" + (f",layer_norm={str(norm).lower()}" if len(choices) > 1 else "")
                trials[label] = {"val_logloss": val, "train": res.to_dict()}
                if best is None or val < best[0]:
                    best = (val, lr, norm, model, res)
        assert best is not None
        _, lr, norm, model, res = best
        build = builders[seeds[0], norm][k][1]
        model.eval()
        test = evaluate(model, runtime.share(data.test, None), None, runtime.device)
        fresh = build()
        entry: dict[str, Any] = {
            "test": test.to_dict(),
            "val": res.val.to_dict() if res.val else None,
            "lr": lr,
            "lr_trials": trials,
            "train": res.to_dict(),
            # FLOPs and parameter counts do not depend on the weights: count a fresh copy.
            **model_costs(fresh, sample),
            "embedding_params": embedding_param_count(fresh),
        }
        entry["seeds"] = [{"seed": seeds[0], "test": entry["test"], "val": entry["val"]}]
        for s in seeds[1:]:
            # Further seeds train at the learning rate (and LayerNorm setting) the first chose.
            other = builders[s, norm][k][1]
            trial = f"train/{name}/seed_{s}" + _norm_dir(cfg, norm)
            m, r = train_trial(cfg, out, runtime, data, name, other, lr, trial)
            m.eval()
            t = evaluate(m, runtime.share(data.test, None), None, runtime.device)
            entry["seeds"].append(
                {"seed": s, "test": t.to_dict(), "val": r.val.to_dict() if r.val else None}
            )
        entry["test_seeds"] = aggregate_seeds([row["test"] for row in entry["seeds"]])
        if name == "nasrec" and arch is not None:
            # PyTorch's counter skips the CPU attention kernel; count NASRec's own way, as the
            # search did (matrix products plus element-wise work).
            costs = architecture_costs(arch, spaces[norm], dense_in, tables, None)
            entry["flops"] = costs["flops"]
            entry["architecture"] = arch.to_dict()
            entry["layer_norm"] = norm and arch.layer_norm
        if runtime.world_size == 1 or cfg.distributed.export_full_model:
            state = runtime.full_state_dict(model)
            if runtime.is_primary:
                whole = build()
                whole.load_state_dict(state)
                meta = {
                    "spec": data.spec.to_dict(),
                    "space": asdict(spaces[norm]),
                    "options": options,
                }
                save_model(whole, storage.join(out, "train", f"model_{name}.pt"), **meta)
        results[name] = entry
    if "nasrec" in results:
        results["nasrec"]["versus_baselines"] = compare_to_baselines(results)
    compare_mixed(results)
    if runtime.is_primary:
        write_json_atomic(storage.join(out, "train", "results.json"), results)
    runtime.barrier()
    return results


def _norm_dir(cfg: Config, layer_norm: bool) -> str:
    """The trial subdirectory of a LayerNorm setting other than the space's ("" otherwise,
    so runs without a ``train.layer_norm_grid`` keep their layout)."""
    return "" if layer_norm == cfg.space.layer_norm else f"/layer_norm_{str(layer_norm).lower()}"
