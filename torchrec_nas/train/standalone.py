"""Subnets trained stand-alone with the final-training recipe, cached on disk.

A result is keyed by (architecture canonical hash, data fingerprint, recipe hash, seed) in a
JSON-lines file: one line per finished training, appended whole (``O_APPEND``, then fsync), so
a killed benchmark loses at most the training in flight and a rerun only trains what is
missing. A torn last line is ignored on reading.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchrec.datasets.utils import Batch

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSpec, DataSplits
from torchrec_nas.distributed.sharding import sharded_tensor_warnings_off
from torchrec_nas.models import NASRecSubnet
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.callbacks import standard_callbacks
from torchrec_nas.runtime.trainer import Callback, Trainer, TrainState, batches_per_epoch
from torchrec_nas.search.provenance import fingerprint
from torchrec_nas.space import Architecture
from torchrec_nas.train.checkpoint import json_dumps
from torchrec_nas.train.config import LoopConfig
from torchrec_nas.train.metrics import evaluate

# Data settings that change neither rows nor their order.
DATA_FIELDS_WITHOUT_EFFECT = ("cache_dir", "chunk_rows")


def data_fingerprint(cfg: Config, spec: DataSpec) -> str:
    """SHA-256 of the data settings that change rows or their order, and of the features and
    tables (as :func:`~torchrec_nas.search.provenance.search_provenance` fingerprints data)."""
    data = asdict(cfg.data)
    for name in DATA_FIELDS_WITHOUT_EFFECT:
        data.pop(name, None)
    return fingerprint({"data": data, "spec": spec.to_dict()})


def standalone_loop(
    cfg: Config,
    steps_per_epoch: int | None,
    max_epochs: float | None = None,
    eval_every: int | None = None,
    patience: int | None = None,
    min_fraction: float | None = None,
) -> LoopConfig:
    """The loop a subnet trains with: ``cfg.train``'s optimizer at ``cfg.train.optimizer.lr``,
    capped at ``max_epochs`` (default ``bench.ranking_max_steps``, or
    ``bench.ranking_max_epochs``, or the final-training recipe's length: ``train.steps`` or
    ``train.epochs``), validating every ``eval_every`` steps (default
    ``bench.ranking_eval_every``) and stopping after ``patience`` validations (default
    ``bench.ranking_patience``) without a lower logloss."""
    b = cfg.bench
    steps = b.ranking_max_steps if max_epochs is None else None
    epochs = b.ranking_max_epochs if max_epochs is None else max_epochs
    if steps is None and epochs is None:
        steps = cfg.train.steps
        epochs = cfg.train.epochs
    if steps is None:
        if not steps_per_epoch or epochs is None:
            raise ValueError("bench: the training split's length is unknown: set ranking_max_steps")
        steps = max(1, int(epochs * steps_per_epoch))
    every = b.ranking_eval_every if eval_every is None else eval_every
    wait = b.ranking_patience if patience is None else patience
    after = b.ranking_min_fraction if min_fraction is None else min_fraction
    return dataclasses.replace(
        cfg.train,
        steps=steps,
        eval_every=every,
        early_stopping_patience=wait if every else 0,
        early_stopping_min_fraction=after if every and wait else 0.0,
        checkpoint_every=0,
        progress=False,
        tensorboard=False,
    )


def recipe_hash(cfg: Config, loop: LoopConfig) -> str:
    """SHA-256 of everything besides data, architecture and seed that changes a result."""
    settings = asdict(loop)
    if not settings["early_stopping_min_fraction"]:
        # Only when set, so results cached before the option existed keep their keys.
        del settings["early_stopping_min_fraction"]
    if settings["steps"] is not None:
        del settings["epochs"]  # unread when the length is in steps
    return fingerprint(
        {
            "loop": settings,
            "norm_gain_init": cfg.train.norm_gain_init,
            "embedding_dim": cfg.space.embedding_dim,
            "val_batches": cfg.bench.ranking_eval_batches,
            # Only when off, so results cached before the option existed keep their keys.
            **({} if cfg.space.layer_norm else {"layer_norm": False}),
        }
    )


class StandaloneCache:
    """A JSON-lines file of stand-alone results keyed by ``(arch, data, recipe, seed)``.

    Example::

        cache = StandaloneCache("runs/x/standalone_cache.jsonl")
        cache.get(key) or cache.put(key, train(...))
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        for _, record in storage.read_jsonl(self.path):
            if isinstance(record, dict) and "key" in record:
                self.entries[record["key"]] = record

    @staticmethod
    def key(arch_hash: str, data_fp: str, recipe_fp: str, seed: int) -> str:
        return f"{arch_hash}:{data_fp[:16]}:{recipe_fp[:16]}:{seed}"

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, result: dict[str, Any]) -> dict[str, Any]:
        """Appends ``result`` under ``key`` in one write and returns the stored record."""
        record = {"key": key, **result}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = "\n" + json_dumps(record, indent=None) + "\n"
        # The leading newline ends a line torn by an earlier kill; blank lines are skipped.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.entries[key] = record
        return record


class BestWeights(Callback):
    """Keeps a copy of the weights at the lowest validation logloss and restores it at the end."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.best = float("inf")
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation(self, state: TrainState) -> None:
        if state.val is not None and state.val.logloss < self.best:
            self.best = state.val.logloss
            with sharded_tensor_warnings_off():  # the tables of a model under DMP
                self.state = copy.deepcopy(self.model.state_dict())

    def on_end(self, state: TrainState, model: nn.Module, optimizer: Any) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)


def train_standalone(
    cfg: Config,
    data: DataSplits,
    runtime: Runtime,
    arch: Architecture,
    seed: int,
    loop: LoopConfig | None = None,
) -> dict[str, Any]:
    """Trains ``arch`` from scratch (initialized from ``seed``) with ``loop`` (default
    :func:`standalone_loop`) and measures the weights of its best validation on the validation
    and test splits.

    Returns:
        ``val`` and ``test`` metrics, ``steps``, ``seconds``, ``stopped_early``, ``seed``,
        ``hash``.
    """
    tables = data.spec.tables(cfg.space.embedding_dim)
    dense_in = len(data.spec.dense_names)
    loop = loop or standalone_loop(cfg, batches_per_epoch(data.train))
    torch.manual_seed(seed)
    model: nn.Module = NASRecSubnet.build(
        tables, dense_in, cfg.space, arch, norm_gain_init=cfg.train.norm_gain_init
    )
    model, opt = runtime.prepare(model, loop.optimizer, loop.total_steps(None), cfg, None)

    def forward(batch: Batch) -> torch.Tensor:
        logits: torch.Tensor = model(batch)
        return logits

    best = BestWeights(model)
    callbacks = [best, *standard_callbacks(loop, None, None)]
    desc = f"stand-alone {arch.canonical_hash()[:8]} seed {seed}"
    t0 = time.perf_counter()
    res = Trainer(model, opt, loop, lambda b, _: forward(b), forward, desc, callbacks, runtime).fit(
        data.train, data.val
    )
    model.eval()
    device = runtime.device
    val = evaluate(forward, data.val, cfg.bench.ranking_eval_batches, device)
    test = evaluate(forward, data.test, None, device)
    return {
        "hash": arch.canonical_hash(),
        "seed": seed,
        "val": val.to_dict(),
        "test": test.to_dict(),
        "steps": res.steps,
        "stopped_early": res.stopped_early,
        "seconds": time.perf_counter() - t0,
        "architecture": arch.to_dict(),
    }


class StandaloneTrainer:
    """Stand-alone results through a cache: ``trainer(arch, seed)`` trains only on a miss.

    Args:
        cfg: the run's config (its ``train`` optimizer and ``bench.ranking_*`` settings).
        data: the data splits.
        runtime: one process.
        cache: the cache file.
        loop: the training loop (default :func:`standalone_loop`: the ranking benchmark's).

    Example::

        alone = StandaloneTrainer(cfg, data, LocalRuntime("cpu"), "runs/x/cache.jsonl")
        alone(arch, seed=1)["val"]["logloss"]
    """

    def __init__(
        self,
        cfg: Config,
        data: DataSplits,
        runtime: Runtime,
        cache: str | Path,
        loop: LoopConfig | None = None,
    ) -> None:
        self.cfg, self.data, self.runtime = cfg, data, runtime
        self.cache = StandaloneCache(cache)
        self.data_fp = data_fingerprint(cfg, data.spec)
        self.loop = loop or standalone_loop(cfg, batches_per_epoch(data.train))
        self.recipe_fp = recipe_hash(cfg, self.loop)
        self.trained = 0

    def __call__(self, arch: Architecture, seed: int) -> dict[str, Any]:
        key = StandaloneCache.key(arch.canonical_hash(), self.data_fp, self.recipe_fp, seed)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        self.trained += 1
        result = train_standalone(self.cfg, self.data, self.runtime, arch, seed, self.loop)
        return self.cache.put(key, result)
