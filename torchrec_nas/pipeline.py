"""The stages of a run as library functions: supernet training, search, final training.

Each CLI subcommand is a thin wrapper around one of these; each stage reads what the previous
one wrote under ``out`` (``supernet.pt``, ``history.jsonl``, ``best_arch.json``) and resumes
where a killed run stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchrec.datasets.utils import Batch
from torchrec.modules.embedding_configs import EmbeddingBagConfig

from torchrec_nas.config import Config
from torchrec_nas.data import DataSpec, DataSplits, build_data
from torchrec_nas.hardware.flops import architecture_costs
from torchrec_nas.models import NASRecModel, NASRecSubnet, build_baseline
from torchrec_nas.search.evaluator import SupernetEvaluator
from torchrec_nas.search.evolution import make_strategy
from torchrec_nas.search.history import SearchHistory
from torchrec_nas.search.provenance import search_provenance
from torchrec_nas.space import Architecture, SearchSpace
from torchrec_nas.train.checkpoint import load_checkpoint, save_atomic, write_text_atomic
from torchrec_nas.train.loop import TrainResult, batches_per_epoch, train_loop
from torchrec_nas.train.metrics import evaluate
from torchrec_nas.train.sampling import PathSampler, largest_path

logger = logging.getLogger(__name__)


def device_of(cfg: Config) -> torch.device:
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"config asks for device {cfg.device!r} but CUDA is not available")
    return torch.device(cfg.device)


def build_supernet(cfg: Config, spec: DataSpec) -> NASRecModel:
    """The supernet for ``cfg.space`` over the tables ``spec`` describes."""
    torch.manual_seed(cfg.seed)
    model = NASRecModel(spec.tables(cfg.space.embedding_dim), len(spec.dense_names), cfg.space)
    return model.to(device_of(cfg))


def _meta(cfg: Config, spec: DataSpec) -> dict[str, Any]:
    return {"space": asdict(cfg.space), "spec": spec.to_dict(), "seed": cfg.seed}


def run_supernet(cfg: Config, out: str | Path, data: DataSplits | None = None) -> TrainResult:
    """Trains the supernet; writes ``supernet.pt`` (and a resumable ``supernet/checkpoint.pt``).

    Example::

        run_supernet(Config.load("configs/demo.yaml"), "runs/demo")
    """
    out = Path(out)
    data = data or build_data(cfg.data, cfg.seed)
    model = build_supernet(cfg, data.spec)
    sc = cfg.supernet
    total = sc.total_steps(batches_per_epoch(data.train))
    sampler = PathSampler(
        cfg.space, cfg.seed, int(sc.path_warmup_fraction * total), sc.path_warmup_prob
    )
    probe = largest_path(cfg.space, random.Random(cfg.seed))

    def forward(batch: Batch, step: int) -> torch.Tensor:
        # Validation (step -1) tracks one fixed wide path, so the curve is comparable.
        return model(batch, sampler(step) if step >= 0 else probe)

    result = train_loop(
        model, forward, data.train, sc, out / "supernet", data.val, "supernet", device_of(cfg)
    )
    save_atomic({"state_dict": model.state_dict(), **_meta(cfg, data.spec)}, out / "supernet.pt")
    write_text_atomic(out / "supernet.json", json.dumps(result.to_dict(), indent=2))
    return result


def load_supernet(cfg: Config, path: str | Path, spec: DataSpec) -> NASRecModel:
    """Loads ``supernet.pt``, checking it was trained for this space and data."""
    state = load_checkpoint(path)
    if state is None:
        raise FileNotFoundError(f"{path}: no supernet here; run `torchrec-nas supernet` first")
    if state["space"] != asdict(cfg.space):
        raise ValueError(f"{path}: the supernet was trained for another search space")
    if state["spec"] != spec.to_dict():
        raise ValueError(f"{path}: the supernet was trained on data with other features/tables")
    model = build_supernet(cfg, spec)
    model.load_state_dict(state["state_dict"])
    return model


def run_search(cfg: Config, out: str | Path, data: DataSplits | None = None) -> dict[str, Any]:
    """Searches with the trained supernet; appends to ``history.jsonl`` (resuming), writes
    ``best_arch.json``."""
    out = Path(out)
    data = data or build_data(cfg.data, cfg.seed)
    device = device_of(cfg)
    model = load_supernet(cfg, out / "supernet.pt", data.spec)
    ft = cfg.search.finetune
    evaluator = SupernetEvaluator(model, data.train, data.val, ft, device, seed=cfg.seed)
    tables = data.spec.tables(cfg.space.embedding_dim)
    dense_in = len(data.spec.dense_names)

    def costs(arch: Architecture) -> dict[str, float]:
        objective = cfg.search.objective
        return architecture_costs(
            arch, cfg.space, dense_in, tables, objective.hardware, objective.embedding_mode
        )

    provenance = search_provenance(cfg, data.spec, out / "supernet.pt")
    history = SearchHistory(out / "history.jsonl", provenance)
    strategy = make_strategy(cfg.space, cfg.search, cfg.seed)
    best = strategy.run(evaluator, history, costs, cfg.search.objective, cfg.search.progress)
    summary = {
        "best": best.to_dict(),
        "candidates": len(history),
        "evaluated": history.evaluated,
        "cache_hits": len(history) - history.evaluated,
        "strategy": cfg.search.strategy,
    }
    write_text_atomic(out / "best_arch.json", json.dumps(best.to_dict(), indent=2))
    write_text_atomic(out / "search.json", json.dumps(summary, indent=2))
    return summary


def save_model(model: nn.Module, path: str | Path, **meta: Any) -> None:
    """Saves a trained model with everything needed to rebuild it (see :func:`load_model`)."""
    if isinstance(model, NASRecSubnet):
        kind: dict[str, Any] = {
            "kind": "nasrec",
            "architecture": model.arch.to_dict(),
            "space": asdict(model.space),
        }
    else:
        kind = {"kind": getattr(model, "name", type(model).__name__)}
    save_atomic({**kind, **meta, "state_dict": model.state_dict()}, path)


def load_model(path: str | Path) -> nn.Module:
    """Loads a model saved by :func:`save_model` in one call.

    Example::

        model = load_model("runs/demo/train/model_nasrec.pt")
        logits = model(batch)
    """

    state = load_checkpoint(path)
    if state is None:
        raise FileNotFoundError(f"{path}: model file not found")
    spec = DataSpec.from_dict(state["spec"])
    dense_in = len(spec.dense_names)
    space = SearchSpace.from_mapping(state["space"], f"{path}: space")
    tables: list[EmbeddingBagConfig] = spec.tables(space.embedding_dim)
    model: nn.Module
    if state["kind"] == "nasrec":
        arch = Architecture.from_dict(state["architecture"], str(path))
        model = NASRecSubnet.build(tables, dense_in, space, arch)
    else:
        model = build_baseline(state["kind"], tables, dense_in, **state.get("options", {}))
    model.load_state_dict(state["state_dict"])
    return model.eval()


ModelBuilder = Callable[[], nn.Module]


def final_candidates(
    cfg: Config,
    tables: list[EmbeddingBagConfig],
    dense_in: int,
    arch: Architecture | None,
) -> list[tuple[str, ModelBuilder, dict[str, Any]]]:
    """``(name, build, options)`` of the found architecture and the configured baselines; each
    ``build()`` returns a freshly initialized model (seeded alike)."""
    candidates: list[tuple[str, ModelBuilder, dict[str, Any]]] = []
    if arch is not None:
        cfg.space.validate(arch)

        def build_nasrec(a: Architecture = arch) -> nn.Module:
            torch.manual_seed(cfg.seed)
            gain = cfg.train.norm_gain_init
            return NASRecSubnet.build(tables, dense_in, cfg.space, a, norm_gain_init=gain)

        candidates.append(("nasrec", build_nasrec, {}))
    bl = cfg.train.baselines
    for name in bl.models:
        options: dict[str, Any] = {
            "dense_arch_layer_sizes": bl.dense_arch_layer_sizes,
            "over_arch_layer_sizes": bl.over_arch_layer_sizes,
        }
        if name == "dcn":
            options.update(dcn_num_layers=bl.dcn_num_layers, dcn_low_rank_dim=bl.dcn_low_rank_dim)

        def build(name: str = name, options: dict[str, Any] = options) -> nn.Module:
            torch.manual_seed(cfg.seed)
            return build_baseline(name, tables, dense_in, **dict(options))

        candidates.append((name, build, options))
    return candidates


def train_final(
    cfg: Config,
    out: str | Path,
    arch: Architecture | None,
    data: DataSplits | None = None,
) -> dict[str, Any]:
    """Trains ``arch`` from scratch and the configured baselines on the same data and budget
    (each at its best learning rate of ``train.lr_grid`` by validation logloss); evaluates each
    on the test split; saves each model; writes ``train/results.json``."""
    out = Path(out)
    data = data or build_data(cfg.data, cfg.seed)
    device = device_of(cfg)
    spec = data.spec
    tables = spec.tables(cfg.space.embedding_dim)
    dense_in = len(spec.dense_names)
    results: dict[str, Any] = {}
    sample = next(iter(data.test))
    grid = cfg.train.lr_grid or [cfg.train.optimizer.lr]
    for name, build, options in final_candidates(cfg, tables, dense_in, arch):
        trials: dict[str, Any] = {}
        best: tuple[float, float, nn.Module, TrainResult] | None = None
        for lr in grid:
            loop = dataclasses.replace(
                cfg.train, optimizer=dataclasses.replace(cfg.train.optimizer, lr=lr)
            )
            model = build().to(device)
            trial_dir = out / "train" / name / (f"lr_{lr:g}" if len(grid) > 1 else "")
            res = train_loop(
                model,
                _fixed_forward(model),
                data.train,
                loop,
                trial_dir,
                data.val,
                f"train {name} lr={lr:g}",
                device,
            )
            val = res.val.logloss if res.val else float("nan")
            trials[f"{lr:g}"] = {"val_logloss": val, "train": res.to_dict()}
            if best is None or val < best[0]:
                best = (val, lr, model, res)
        assert best is not None
        _, lr, model, res = best
        model.eval()
        test = evaluate(model, data.test, None, device)
        results[name] = {
            "test": test.to_dict(),
            "val": res.val.to_dict() if res.val else None,
            "lr": lr,
            "lr_trials": trials,
            "train": res.to_dict(),
            **model_costs(model, sample),
        }
        if name == "nasrec" and arch is not None:
            # PyTorch's counter skips the CPU attention kernel; count NASRec's own way, as the
            # search did (matrix products plus element-wise work).
            results[name]["flops"] = architecture_costs(
                arch, cfg.space, dense_in, tables, hardware=None
            )["flops"]
        meta: dict[str, Any] = {
            "spec": spec.to_dict(),
            "space": asdict(cfg.space),
            "options": options,
        }
        save_model(model, out / "train" / f"model_{name}.pt", **meta)
    if arch is not None:
        results["nasrec"]["architecture"] = arch.to_dict()
    write_text_atomic(out / "train" / "results.json", json.dumps(results, indent=2))
    return results


def _fixed_forward(model: nn.Module) -> Callable[[Batch, int], torch.Tensor]:
    """A training-loop forward for a model with no path to choose."""

    def forward(batch: Batch, step: int) -> torch.Tensor:
        return model(batch)

    return forward


def model_costs(model: nn.Module, batch: Batch) -> dict[str, float]:
    """FLOPs per sample (PyTorch's own ``FlopCounterMode`` over one forward: matrix products)
    and dense parameters (everything but the embedding tables)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(batch)
    model.train(was_training)
    rows = batch.labels.numel()
    dense_params = sum(
        p.numel()
        for n, p in model.named_parameters()
        if "embedding_bag" not in n and "embedding_bags" not in n
    )
    return {"flops": counter.get_total_flops() / rows, "params": float(dense_params)}
