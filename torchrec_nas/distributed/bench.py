"""Throughput of supernet training: the one-process runtime against ``DistributedModelParallel``
on 1..N ranks, on the same config, architectures (the seed's path sampler) and global batch.

Run it once per setting and compare the ``rows_per_second`` it prints (rank 0)::

    python -m torchrec_nas.distributed.bench --config configs/distributed-demo.yaml --one-process
    torchrun --nproc_per_node 1 -m torchrec_nas.distributed.bench --config configs/distributed-demo.yaml
    torchrun --nproc_per_node 2 -m torchrec_nas.distributed.bench --config configs/distributed-demo.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from itertools import cycle, islice
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.datasets.utils import Batch

from torchrec_nas.config import Config
from torchrec_nas.distributed.context import shutdown_distributed
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.distributed import DistributedRuntime
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.stages.models import build_supernet
from torchrec_nas.train.sampling import PathSampler


def _time_steps(
    model: nn.Module,
    batches: list[Batch],
    sampler: PathSampler,
    step: Callable[[], None],
    warmup: int,
    sync: Callable[[], object],
) -> float:
    """Seconds for the steps after the first ``warmup`` (architecture of step ``i``: the
    sampler's, so every setting trains the same sequence of subnets)."""
    model.train()
    t0 = 0.0
    for i, batch in enumerate(batches):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(batch, sampler(i)), batch.labels.float())
        loss.backward()
        step()
    sync()
    return time.perf_counter() - t0


def _bench(cfg: Config, runtime: Runtime, steps: int, warmup: int) -> float:
    """Seconds of the timed steps of supernet training placed by ``runtime``."""
    data = runtime.data(cfg)
    batches = [b.to(runtime.device) for b in islice(cycle(iter(data.train)), warmup + steps)]
    model, opt = runtime.prepare(
        build_supernet(cfg, data.spec), cfg.supernet.optimizer, warmup + steps, cfg
    )
    sampler = PathSampler(cfg.space, cfg.seed)
    return _time_steps(model, batches, sampler, opt.step, warmup, runtime.barrier)


def bench_one_process(cfg: Config, steps: int, warmup: int) -> dict[str, Any]:
    """Rows/s of the one-process runtime."""
    seconds = _bench(cfg, LocalRuntime(cfg.device), steps, warmup)
    rows = steps * cfg.data.batch_size
    return {"mode": "one-process", "world_size": 1, "seconds": seconds, "rows": rows}


def bench_distributed(cfg: Config, steps: int, warmup: int) -> dict[str, Any]:
    """Rows/s (global) of the sharded runtime on the ranks of this ``torchrun`` job."""
    runtime = DistributedRuntime.start(cfg)
    seconds = _bench(cfg, runtime, steps, warmup)
    result = {
        "mode": f"dmp-{cfg.distributed.dense_sync}",
        "world_size": runtime.world_size,
        "backend": runtime.ctx.backend,
        "seconds": seconds,
        "rows": steps * cfg.data.batch_size,
    }
    shutdown_distributed()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", required=True)
    p.add_argument("--steps", type=int, default=60, help="timed steps")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--one-process", action="store_true", help="time the one-process path")
    p.add_argument("--dense-sync", choices=["allreduce", "ddp"], help="override the config")
    p.add_argument("--threads", type=int, help="torch threads per process")
    args = p.parse_args(argv)
    cfg = Config.load(args.config)
    if args.dense_sync:
        cfg.distributed.dense_sync = args.dense_sync
    if args.threads:
        torch.set_num_threads(args.threads)
    run = bench_one_process if args.one_process else bench_distributed
    result = run(cfg, args.steps, args.warmup)
    result.update(
        threads=torch.get_num_threads(),
        global_batch=cfg.data.batch_size,
        steps=args.steps,
        rows_per_second=result["rows"] / result["seconds"],
    )
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
