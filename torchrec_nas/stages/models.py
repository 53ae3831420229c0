"""Building, saving, loading and checking the models the stages train."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchrec.datasets.utils import Batch
from torchrec.modules.embedding_configs import EmbeddingBagConfig

from torchrec_nas.config import Config
from torchrec_nas.data import DataSpec
from torchrec_nas.embedding_search.dims import embedding_bag_configs
from torchrec_nas.embedding_search.modules import use_embedding_dims
from torchrec_nas.models import NASRecModel, NASRecSubnet, build_baseline
from torchrec_nas.space import Architecture, SearchSpace
from torchrec_nas.train.checkpoint import CheckpointError, load_checkpoint, save_atomic
from torchrec_nas.train.optim import dense_named_parameters

#: ``build() -> model``: a freshly initialized model (seeded alike on every call).
ModelBuilder = Callable[[], nn.Module]


def build_supernet(cfg: Config, spec: DataSpec) -> NASRecModel:
    """The supernet for ``cfg.space`` over the tables ``spec`` describes (seeded, on CPU)."""
    torch.manual_seed(cfg.seed)
    return NASRecModel(spec.tables(cfg.space.embedding_dim), len(spec.dense_names), cfg.space)


def supernet_meta(cfg: Config, spec: DataSpec) -> dict[str, Any]:
    """What ``supernet.pt`` records beside the weights, to check it fits a later config."""
    return {"space": asdict(cfg.space), "spec": spec.to_dict(), "seed": cfg.seed}


def load_supernet(cfg: Config, path: str | Path, spec: DataSpec) -> NASRecModel:
    """Loads ``supernet.pt`` (on CPU), checking it was trained for this space and data.

    Example::

        model = load_supernet(cfg, "runs/demo/supernet.pt", data.spec)
    """
    state = load_checkpoint(path, "supernet")
    if state is None:
        raise FileNotFoundError(f"{path}: no supernet here; run `torchrec-nas supernet` first")
    if "state_dict" not in state or "space" not in state:
        raise CheckpointError(f"{path}: not a supernet written by `torchrec-nas supernet`")
    # Fields added since the file was written take their defaults.
    saved = {**asdict(SearchSpace()), **state["space"]}
    # The joint search's widths are prefixes of the embedding_dim-wide tables: the supernet's
    # weights do not depend on them (its training samples no widths).
    differing = sorted(
        k for k, v in asdict(cfg.space).items() if saved.get(k) != v and k != "embedding_widths"
    )
    if differing:
        raise ValueError(
            f"{path}: the supernet was trained for another search space (space."
            + ", space.".join(differing)
            + " differ); train it again or use its config"
        )
    if state["spec"] != spec.to_dict():
        raise ValueError(f"{path}: the supernet was trained on data with other features/tables")
    model = build_supernet(cfg, spec)
    model.load_state_dict(state["state_dict"])
    return model


def final_candidates(
    cfg: Config,
    tables: list[EmbeddingBagConfig],
    dense_in: int,
    arch: Architecture | None,
    seed: int | None = None,
) -> list[tuple[str, ModelBuilder, dict[str, Any]]]:
    """``(name, build, options)`` of the found architecture and the configured baselines;
    ``build`` initializes from ``seed`` (default ``cfg.seed``)."""
    init_seed = cfg.seed if seed is None else seed
    candidates: list[tuple[str, ModelBuilder, dict[str, Any]]] = []
    if arch is not None:
        cfg.space.validate(arch)

        def build_nasrec(a: Architecture = arch) -> nn.Module:
            torch.manual_seed(init_seed)
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
            torch.manual_seed(init_seed)
            return build_baseline(name, tables, dense_in, **dict(options))

        candidates.append((name, build, options))
    return candidates


def model_costs(model: nn.Module, batch: Batch) -> dict[str, float]:
    """FLOPs per sample (PyTorch's ``FlopCounterMode`` over one forward: matrix products)
    and dense parameters (everything outside the embedding tables)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(batch)
    model.train(was_training)
    rows = batch.labels.numel()
    dense_params = sum(p.numel() for p in dense_named_parameters(model).values())
    return {"flops": counter.get_total_flops() / rows, "params": float(dense_params)}


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


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The contents of a model file written by ``train``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is unreadable or holds something else (a supernet, a
            training checkpoint).
    """
    state = load_checkpoint(path, "model file")
    if state is None:
        raise FileNotFoundError(f"{path}: model file not found")
    missing = [k for k in ("kind", "spec", "space", "state_dict") if k not in state]
    if missing:
        raise CheckpointError(
            f"{path}: not a model written by `torchrec-nas train` (no {missing[0]!r}); give "
            "one of OUT/train/model_*.pt"
        )
    return state


def load_model(path: str | Path) -> nn.Module:
    """Loads a model saved by :func:`save_model` in one call (in eval mode).

    Example::

        model = load_model("runs/demo/train/model_nasrec.pt")
        logits = model(batch)
    """
    state = read_model_file(path)
    spec = DataSpec.from_dict(state["spec"])
    dense_in = len(spec.dense_names)
    space = SearchSpace.from_mapping(state["space"], f"{path}: space")
    tables = spec.tables(space.embedding_dim)
    options = dict(state.get("options", {}))
    dims = options.pop("embedding_dims", None)  # a mixed-width model of `train`
    model: nn.Module
    if state["kind"] == "nasrec":
        arch = Architecture.from_dict(state["architecture"], str(path))
        model = NASRecSubnet.build(tables, dense_in, space, arch)
    else:
        model = build_baseline(state["kind"], tables, dense_in, **options)
    if dims:
        mixed = embedding_bag_configs(dims, tables)
        model = use_embedding_dims(model, mixed, space.embedding_dim)
    model.load_state_dict(state["state_dict"])
    return model.eval()


def spec_differences(saved: DataSpec, data: DataSpec) -> list[str]:
    """What differs between the data a model was trained on and the config's data."""
    diffs = []
    if saved.dense_names != data.dense_names:
        diffs.append(
            f"dense features: the model has {len(saved.dense_names)} {saved.dense_names}, "
            f"the data {len(data.dense_names)} {data.dense_names}"
        )
    if saved.sparse_names != data.sparse_names:
        diffs.append(
            f"sparse features: the model has {saved.sparse_names}, the data {data.sparse_names}"
        )
    else:
        rows = [
            f"{n} ({a} rows in the model, {b} in the data)"
            for n, a, b in zip(saved.sparse_names, saved.num_embeddings, data.num_embeddings)
            if a != b
        ]
        if rows:
            diffs.append("embedding tables of another size: " + ", ".join(rows))
    return diffs
