"""PIM energy saved by searching bit widths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.search.evaluator import SupernetEvaluator
from torchrec_nas.space import Architecture
from torchrec_nas.stages import load_supernet, run_search, run_supernet


def codesign(cfg: Config, data: DataSplits, out: str | Path) -> dict[str, Any]:
    """PIM energy saved by searching bit widths: the best uniform 8-bit model against the
    cheapest searched model within 0.001 logloss of it (see
    :func:`torchrec_nas.search.codesign.codesign_summary`). Trains the supernet and runs the
    search under ``out`` first if they are missing."""
    from torchrec_nas.hardware.flops import architecture_costs
    from torchrec_nas.search.codesign import codesign_summary
    from torchrec_nas.search.history import SearchHistory

    if not cfg.space.bit_choices:
        raise ValueError("codesign needs a space with bit_choices (see configs/codesign-demo.yaml)")
    runtime = LocalRuntime(cfg.device)
    if not storage.exists(storage.join(out, "supernet.pt")):
        run_supernet(cfg, out, runtime, data)
    run_search(cfg, out, runtime, data)
    device = runtime.device
    supernet = load_supernet(cfg, storage.join(out, "supernet.pt"), data.spec).to(device)
    evaluator = SupernetEvaluator(
        supernet, data.train, data.val, cfg.search.finetune, device, seed=cfg.seed
    )
    tables = data.spec.tables(cfg.space.embedding_dim)
    objective = cfg.search.objective

    def costs(arch: Architecture) -> dict[str, float]:
        return architecture_costs(
            arch, cfg.space, len(data.spec.dense_names), tables, objective.hardware or "isaac"
        )

    history = SearchHistory(storage.join(out, "history.jsonl"))
    return codesign_summary(history, evaluator, costs)
