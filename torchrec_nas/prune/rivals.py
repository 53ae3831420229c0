"""A rival architecture for a FLOPs target the search left empty: architectures of the space
are sampled (seeded) and those at or below the target kept; the largest few are scored with
the supernet's weights where a ``supernet.pt`` lies beside the model's run (the best by
validation logloss wins), else the largest is taken."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.hardware.flops import architecture_costs
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.space import Architecture

#: Largest sampled architectures under the target scored with the supernet.
SCORED = 8


@dataclass
class SampledRival:
    """A sampled architecture under a FLOPs target.

    Args:
        arch: the architecture.
        arch_hash: its canonical hash.
        flops: its FLOPs per sample.
        how: how it was chosen, in words.
        metrics: the supernet's validation metrics of it (empty without a supernet).
    """

    arch: Architecture
    arch_hash: str
    flops: float
    how: str
    metrics: dict[str, float]


def sample_under(
    cfg: Config, dense_in: int, tables: list[Any], max_flops: float, draws: int, seed: int
) -> list[tuple[float, Architecture]]:
    """Distinct architectures of ``cfg.space`` with at most ``max_flops``, drawn ``draws``
    times from ``random.Random(seed)``, largest FLOPs first.

    Example::

        fitting = sample_under(cfg, 13, tables, 2e5, draws=2000, seed=2018)
    """
    rng = random.Random(seed)
    seen: dict[str, tuple[float, Architecture]] = {}
    for _ in range(draws):
        arch = cfg.space.sample(rng)
        key = arch.canonical_hash()
        if key in seen:
            continue
        flops = architecture_costs(arch, cfg.space, dense_in, tables, hardware=None)["flops"]
        if flops <= max_flops:
            seen[key] = (flops, arch)
    return sorted(seen.values(), key=lambda fa: (-fa[0], fa[1].canonical_hash()))


def _supernet_scores(
    cfg: Config,
    supernet: str,
    archs: list[Architecture],
    runtime: Runtime,
    data: DataSplits,
) -> list[dict[str, float]] | None:
    """The supernet's validation metrics of ``archs`` (``None``: the supernet does not load
    for this config)."""
    from torchrec_nas.search.batches import IndexedBatches
    from torchrec_nas.search.evaluator import SupernetEvaluator
    from torchrec_nas.stages.models import load_supernet
    from torchrec_nas.train.checkpoint import CheckpointError

    try:
        model = load_supernet(cfg, supernet, data.spec).to(runtime.device).eval()
    except (ValueError, CheckpointError, FileNotFoundError):
        return None
    ft = cfg.search.finetune
    evaluator = SupernetEvaluator(
        model,
        IndexedBatches(data.train),
        runtime.share(data.val, ft.eval_batches),
        dataclasses.replace(ft, eval_batches=None),
        runtime.device,
        seed=cfg.seed,
    )
    return [evaluator(arch) for arch in archs]


def sampled_rival(
    cfg: Config,
    model_path: str | Path,
    max_flops: float,
    draws: int,
    runtime: Runtime,
    data: DataSplits,
) -> SampledRival | None:
    """The rival of a target of ``max_flops`` FLOPs that the search has no candidate for
    (``None``: no sampled architecture fits).

    Example::

        rival = sampled_rival(cfg, "runs/x/train/model_nasrec.pt", 1e5, 2000, runtime, data)
    """
    dense_in = len(data.spec.dense_names)
    tables = data.spec.tables(cfg.space.embedding_dim)
    fitting = sample_under(cfg, dense_in, tables, max_flops, draws, cfg.seed + int(max_flops))
    if not fitting:
        return None
    supernet = storage.join(storage.parent(storage.parent(str(model_path))), "supernet.pt")
    scored = fitting[:SCORED]
    metrics = None
    if storage.exists(supernet):
        metrics = _supernet_scores(cfg, supernet, [a for _, a in scored], runtime, data)
    if metrics is None:
        flops, arch = fitting[0]
        how = f"the largest of {len(fitting)} distinct architectures sampled under the target"
        return SampledRival(arch, arch.canonical_hash(), flops, how, {})
    best = min(range(len(scored)), key=lambda i: (metrics[i]["logloss"], i))
    flops, arch = scored[best]
    how = (
        f"the best by the supernet's validation logloss of the {len(scored)} largest of "
        f"{len(fitting)} distinct architectures sampled under the target"
    )
    return SampledRival(arch, arch.canonical_hash(), flops, how, metrics[best])
