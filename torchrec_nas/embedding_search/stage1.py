"""Stage 1: train the embedding supernet with adaptive width sampling, on the project's
:class:`~torchrec_nas.runtime.trainer.Trainer` and runtime (one process or DMP), with its
checkpoints.

With ``embedding_search.cap_at_rows`` stage 1 draws each feature's width among its capped
widths only, as stage 2 searches them: the prefix weights a tiny table shares along the width
are then trained for the widths it can be given, not a compromise with wider ones it cannot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.datasets.utils import Batch
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from torchrec_nas import storage
from torchrec_nas.architecture import Architecture
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.data.spec import DataSpec
from torchrec_nas.embedding_search.modules import (
    DLRMHead,
    ElasticSparseArch,
    EmbeddingSupernet,
)
from torchrec_nas.embedding_search.sampling import AdaptiveWidthSampler
from torchrec_nas.models import NASRecSubnet, build_baseline
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.callbacks import standard_callbacks
from torchrec_nas.runtime.trainer import Trainer, batches_per_epoch
from torchrec_nas.space_widths import allowed_widths
from torchrec_nas.train.checkpoint import (
    check_record,
    load_checkpoint,
    save_atomic,
    write_json_atomic,
)

#: Where the stages write under ``--out``.
STAGE_DIR = "embedding_search"


def interaction_head(cfg: Config, spec: DataSpec) -> nn.Module:
    """The fixed interaction of the search, ``head(dense, tokens) -> logits``: TorchRec's
    DLRM (``train.baselines``' layer sizes) or the NASRec architecture at
    ``embedding_search.interaction``.

    Raises:
        ValueError: the architecture's logit does not read the embeddings.
    """
    token = cfg.space.embedding_dim
    tables = spec.tables(token)
    dense_in = len(spec.dense_names)
    es = cfg.embedding_search
    if es.interaction == "dlrm":
        bl = cfg.train.baselines
        model = build_baseline(
            "dlrm",
            tables,
            dense_in,
            dense_arch_layer_sizes=bl.dense_arch_layer_sizes,
            over_arch_layer_sizes=bl.over_arch_layer_sizes,
        )
        return DLRMHead(model.model)
    arch = Architecture.load(es.interaction)
    cfg.space.validate(arch)
    subnet = NASRecSubnet.build(
        tables, dense_in, cfg.space, arch, norm_gain_init=cfg.train.norm_gain_init
    )
    if subnet.sparse_arch is None:
        raise ValueError(
            f"embedding_search.interaction: {es.interaction}: no embedding reaches the logit"
        )
    return subnet.interaction


def stage_widths(cfg: Config, spec: DataSpec) -> dict[str, tuple[int, ...]]:
    """Each feature's widths: capped at its table's rows (``cap_at_rows``), or all.

    Example::

        stage_widths(cfg, data.spec)["cat_0"]   # (4,) for a table of 4 rows
    """
    es = cfg.embedding_search
    rows = dict(zip(spec.sparse_names, spec.num_embeddings))
    return allowed_widths(es.widths, rows if es.cap_at_rows else list(rows))


def build_embedding_supernet(cfg: Config, spec: DataSpec) -> EmbeddingSupernet:
    """The embedding supernet (seeded, on CPU) with its adaptive sampler as ``sampler``.

    Example::

        supernet = build_embedding_supernet(cfg, data.spec)
        logits = supernet(batch, supernet.sampler.sample(0))
    """
    es = cfg.embedding_search
    torch.manual_seed(cfg.seed)
    head = interaction_head(cfg, spec)
    ebc = EmbeddingBagCollection(tables=spec.tables(max(es.widths)), device=torch.device("cpu"))
    model = EmbeddingSupernet(ElasticSparseArch(ebc, cfg.space.embedding_dim), head)
    model.sampler = AdaptiveWidthSampler(
        model.feature_names,
        sorted(es.widths),
        es.uniform_floor,
        es.loss_decay,
        es.temperature,
        cfg.seed,
        stage_widths(cfg, spec),
    )
    return model


def supernet_meta(cfg: Config, spec: DataSpec) -> dict[str, Any]:
    """What ``embedding_search/supernet.pt`` records to check it fits a later config."""
    es = cfg.embedding_search
    return {
        "spec": spec.to_dict(),
        "widths": sorted(es.widths),
        "interaction": es.interaction,
        "token_width": cfg.space.embedding_dim,
        "projection": "every width",  # the token width included (see modules.py)
        "seed": cfg.seed,
        "cap_at_rows": es.cap_at_rows,
        # Recorded only when on, so that earlier stage-1 records still match.
        **({"sandwich": es.sandwich} if es.sandwich != "none" else {}),
    }


def _check_stage_meta(path: str, meta: dict[str, Any], runtime: Runtime) -> None:
    """Ties stage 1's checkpoints to the settings they train (``meta.json``, written on the
    first run): a resumed stage 1 under other widths, caps, interaction, data or seed raises
    ``ValueError`` naming the field, before any checkpoint is read."""
    old, changed = check_record(path, meta, write=runtime.is_primary)
    if old is not None and changed:
        key = next((k for k in meta if k in changed), changed[0])  # in the record's order
        raise ValueError(
            f"{path}: stage 1 was started with another {key} "
            f"({old.get(key)!r}, not {meta.get(key)!r}); use another --out"
            if key != "spec"
            else f"{path}: stage 1 was started on other data; use another --out"
        )
    runtime.barrier()


def load_embedding_supernet(cfg: Config, spec: DataSpec, out: str | Path) -> EmbeddingSupernet:
    """The trained supernet of ``out`` (on CPU), checked against this config and data.

    Raises:
        FileNotFoundError: stage 1 has not finished under ``out``.
        ValueError: it was trained for other widths, interaction or data.
    """
    path = storage.join(out, STAGE_DIR, "supernet.pt")
    state = load_checkpoint(path, "embedding supernet")
    if state is None:
        raise FileNotFoundError(f"{path}: no embedding supernet here; run stage 1 first")
    meta = supernet_meta(cfg, spec)
    state.setdefault("cap_at_rows", False)  # supernets trained before caps drew every width
    for key in ("spec", "widths", "interaction", "token_width", "projection", "cap_at_rows"):
        if state.get(key) != meta[key]:
            raise ValueError(f"{path}: the supernet was trained with another {key}")
    if state.get("sandwich", "none") != cfg.embedding_search.sandwich:
        raise ValueError(f"{path}: the supernet was trained with another sandwich")
    model = build_embedding_supernet(cfg, spec)
    model.load_state_dict(state["state_dict"])
    return model.eval()


def run_embedding_supernet(
    cfg: Config, out: str | Path, runtime: Runtime, data: DataSplits
) -> dict[str, Any]:
    """Trains the embedding supernet (stage 1), resuming from its last checkpoint; writes
    ``embedding_search/supernet.pt``, ``supernet.json`` and ``stage1/train_log.jsonl``.
    A finished stage (``supernet.json`` present) is not retrained.

    Example::

        run_embedding_supernet(cfg, "runs/emb", default_runtime(cfg), data)
    """
    summary_path = storage.join(out, STAGE_DIR, "supernet.json")
    es = cfg.embedding_search.for_train(cfg.train.epochs, batches_per_epoch(data.train))
    total = es.total_steps(batches_per_epoch(data.train))
    if storage.isfile(summary_path) and storage.isfile(storage.join(out, STAGE_DIR, "supernet.pt")):
        done = dict(json.loads(storage.read_text(summary_path)))
        if done.get("steps", total) != total and not done.get("stopped_early"):
            raise ValueError(
                f"{summary_path}: stage 1 was trained {done['steps']} steps, this config asks "
                f"for {total} (embedding_search.steps, epochs or match_train_epochs); delete "
                f"{storage.join(out, STAGE_DIR)} to train it again"
            )
        return done
    plan = storage.join(out, STAGE_DIR, "sharding_plan.txt")
    model, opt = runtime.prepare(
        build_embedding_supernet(cfg, data.spec), es.optimizer, total, cfg, plan
    )
    inner = runtime.unwrap(model)
    sampler: AdaptiveWidthSampler = inner.sampler  # type: ignore[assignment]
    token = cfg.space.embedding_dim
    probe_width = token if token in es.widths else max(es.widths)
    own = stage_widths(cfg, data.spec)  # each probe width within the feature's cap
    probe = {f: max(w for w in own[f] if w <= max(probe_width, own[f][0])) for f in own}

    widest = {f: ws[-1] for f, ws in own.items()}

    def train_loss(batch: Batch, step: int) -> torch.Tensor:
        widths = sampler.sample(step)
        labels = batch.labels.float()
        logits = model(batch, widths)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        mean = runtime.mean(loss.detach()) if runtime.world_size > 1 else loss.detach()
        sampler.update(widths, mean)
        if es.sandwich == "none":
            return loss
        top = model(batch, widest)
        top_loss = F.binary_cross_entropy_with_logits(top, labels)
        if es.sandwich == "distill":
            # In-place distillation: the sampled widths learn the widest's predictions.
            soft = torch.sigmoid(top.detach())
            loss = F.binary_cross_entropy_with_logits(logits, soft)
        return top_loss + loss

    def eval_forward(batch: Batch) -> torch.Tensor:
        logits: torch.Tensor = model(batch, probe)
        return logits

    stage = storage.join(STAGE_DIR, "stage1")
    _check_stage_meta(storage.join(out, stage, "meta.json"), supernet_meta(cfg, data.spec), runtime)
    checkpointer = runtime.checkpointer(cfg, out, stage)
    callbacks = standard_callbacks(es, storage.join(out, stage), checkpointer, runtime.is_primary)
    trainer = Trainer(
        model,
        opt,
        es,
        lambda b, s: model(b, sampler.sample(s)),
        eval_forward,
        "embedding supernet",
        callbacks,
        runtime,
        train_loss,
    )
    result = trainer.fit(data.train, data.val)
    state = runtime.full_state_dict(model)
    summary = {
        **result.to_dict(),
        "world_size": runtime.world_size,
        "probe_widths": probe,
        "sampling_probabilities": sampler.probabilities().tolist(),
        "draws": sampler.counts.cpu().tolist(),
    }
    if runtime.is_primary:
        meta = supernet_meta(cfg, data.spec)
        save_atomic({"state_dict": state, **meta}, storage.join(out, STAGE_DIR, "supernet.pt"))
        write_json_atomic(summary_path, summary)
    runtime.barrier()
    return summary
