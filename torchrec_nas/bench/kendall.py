"""The quick rank figure (``bench --only kendall``): random subnets scored by the trained supernet
(inherit weights, fine-tune the classifier) and trained stand-alone for a fixed number of steps;
Kendall's tau between the two validation loglosses. :mod:`torchrec_nas.bench.ranking` is the
benchmark to trust (stratified subnets, early stopping, seeds, noise ceiling)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torchmetrics.functional import kendall_rank_corrcoef

from torchrec_nas import storage
from torchrec_nas.bench.sharing import standalone_forward
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.models import NASRecModel, NASRecSubnet
from torchrec_nas.runtime.callbacks import standard_callbacks
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.runtime.trainer import Trainer
from torchrec_nas.search.evaluator import SupernetEvaluator
from torchrec_nas.space import Architecture
from torchrec_nas.stages import load_supernet, run_supernet
from torchrec_nas.train.config import LoopConfig
from torchrec_nas.train.metrics import evaluate
from torchrec_nas.train.optim import ModelOptimizer


def ranking_correlation(cfg: Config, data: DataSplits, out: str | Path) -> dict[str, Any]:
    """Kendall's tau between supernet-inherited and stand-alone validation loglosses."""
    supernet_path = storage.join(out, "supernet.pt")
    runtime = LocalRuntime(cfg.device)
    if not storage.exists(supernet_path):
        run_supernet(cfg, out, runtime, data)
    device = runtime.device
    supernet: NASRecModel = load_supernet(cfg, supernet_path, data.spec).to(device)
    evaluator = SupernetEvaluator(
        supernet, data.train, data.val, cfg.search.finetune, device, seed=cfg.seed
    )
    rng = random.Random(f"{cfg.seed}:kendall")
    archs: list[Architecture] = list(cfg.space.enumerate_samples(rng, cfg.bench.kendall_subnets))
    tables = data.spec.tables(cfg.space.embedding_dim)
    loop = LoopConfig(
        steps=cfg.bench.kendall_steps,
        optimizer=cfg.train.optimizer,
        checkpoint_every=0,
        progress=cfg.train.progress,
    )
    inherited, standalone, rows = [], [], []
    for i, arch in enumerate(archs):
        score = evaluator(arch)["logloss"]
        torch.manual_seed(cfg.seed + i)
        model = NASRecSubnet.build(tables, len(data.spec.dense_names), cfg.space, arch).to(device)
        opt = ModelOptimizer(model, loop.optimizer, cfg.bench.kendall_steps)
        callbacks = standard_callbacks(loop, None, None)
        forward = standalone_forward(model)
        Trainer(model, opt, loop, forward, None, f"subnet {i}", callbacks, runtime).fit(data.train)
        model.eval()
        alone = evaluate(model, data.val, cfg.search.finetune.eval_batches, device).logloss
        inherited.append(score)
        standalone.append(alone)
        rows.append(
            {"hash": arch.canonical_hash(), "inherited_logloss": score, "standalone_logloss": alone}
        )
    tau_t = kendall_rank_corrcoef(torch.tensor(inherited), torch.tensor(standalone))
    assert isinstance(tau_t, torch.Tensor)
    tau = float(tau_t)
    return {
        "subnets": len(archs),
        "standalone_steps": cfg.bench.kendall_steps,
        "kendall_tau": tau,
        "per_subnet": rows,
    }
