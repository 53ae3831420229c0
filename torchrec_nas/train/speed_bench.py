"""Supernet training throughput: rows/s of sampled-subnet steps over a fixed, seeded sequence.

Each step is what the supernet stage runs: ``model(batch, arch)`` for the ``PathSampler``'s
architecture of that step, binary cross-entropy, backward, ``ModelOptimizer.step()``. The
batches are drawn once (from the config's data source, cut to the batches the run needs) and
reused, so only the training step is timed.

Run::

    OMP_NUM_THREADS=1 python -m torchrec_nas.train.speed_bench --config configs/demo.yaml \\
        --steps 60 [--preset nasrec-full-x] [--profile]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from itertools import cycle, islice
from typing import Any

import torch
import torch.nn.functional as F

from torchrec_nas.config import Config
from torchrec_nas.data.build import build_data
from torchrec_nas.space import SearchSpace
from torchrec_nas.stages.models import build_supernet
from torchrec_nas.train.optim import ModelOptimizer
from torchrec_nas.train.sampling import PathSampler


def bench_config(path: str, preset: str | None) -> Config:
    """The config at ``path``; with ``preset``, its space swapped for that preset at the same
    widths and token counts."""
    cfg = Config.load(path)
    if preset is not None:
        space = SearchSpace.from_mapping(
            {
                "preset": preset,
                "dense_dims": list(cfg.space.dense_dims),
                "sparse_tokens": list(cfg.space.sparse_tokens),
            },
            "speed_bench: space",
        )
        cfg = dataclasses.replace(cfg, space=space)
    return cfg


def run(cfg: Config, steps: int, warmup: int, profile: bool = False) -> dict[str, Any]:
    """Trains ``warmup`` untimed then ``steps`` timed supernet steps; returns rows/s.

    Args:
        cfg: the config (space, data, supernet optimizer, seed).
        steps: timed steps.
        warmup: untimed steps before them (allocations, plan caches).
        profile: print a ``torch.profiler`` table of the timed steps.
    """
    data_cfg = cfg.data
    if data_cfg.source == "synthetic":
        rows = 40 * data_cfg.batch_size  # 16 train batches after the 8:1:1 split
        synthetic = dataclasses.replace(data_cfg.synthetic, rows=rows)
        data_cfg = dataclasses.replace(data_cfg, synthetic=synthetic)
    data = build_data(data_cfg, cfg.seed)
    batches = list(islice(cycle(iter(data.train)), min(steps + warmup, 16)))
    model = build_supernet(cfg, data.spec)
    model.train()
    total = steps + warmup
    opt = ModelOptimizer(model, cfg.supernet.optimizer, total)
    sampler = PathSampler(cfg.space, cfg.seed, int(cfg.supernet.path_warmup_fraction * total))

    phases = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}

    def one(step: int) -> None:
        batch = batches[step % len(batches)]
        t0 = time.perf_counter()
        logits = model(batch, sampler(step))
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels.float())
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        phases["forward"] += t1 - t0
        phases["backward"] += t2 - t1
        phases["optimizer"] += t3 - t2

    for s in range(warmup):
        one(s)
    phases.update(forward=0.0, backward=0.0, optimizer=0.0)
    n_rows = sum(batches[s % len(batches)].labels.numel() for s in range(warmup, total))
    prof = None
    if profile:
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        prof.__enter__()
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(warmup, total):
        one(s)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    if prof is not None:
        prof.__exit__(None, None, None)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40))
    dense = sum(p.numel() for p in opt.dense_params)
    return {
        "dense_ops": list(cfg.space.dense_ops),
        "steps": steps,
        "threads": torch.get_num_threads(),
        "dense_parameters": dense,
        "seconds": seconds,
        "rows_per_s": n_rows / seconds,
        # CPU time of this process: less sensitive than wall time to other jobs on the cores.
        "cpu_seconds": cpu_seconds,
        "rows_per_cpu_s": n_rows / cpu_seconds,
        "ms_per_step": {k: round(1e3 * v / steps, 2) for k, v in phases.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--preset", default=None, help="swap the space's preset (same widths)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    cfg = bench_config(args.config, args.preset)
    print(json.dumps(run(cfg, args.steps, args.warmup, args.profile)))


if __name__ == "__main__":
    main()
