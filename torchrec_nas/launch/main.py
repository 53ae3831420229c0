"""The per-rank entry point of distributed jobs: ``torchrun`` or a TorchX component starts it
once per rank.

Example::

    torchrun --nproc_per_node 2 -m torchrec_nas.launch.main supernet \\
        --config configs/distributed-demo.yaml --out runs/dist
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

STAGES = ("supernet", "search", "train", "all")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m torchrec_nas.launch.main",
        description="One rank of a distributed torchrec_nas stage (run it under torchrun/TorchX).",
    )
    p.add_argument("stage", choices=STAGES, help="which stage (all: supernet, search, train)")
    p.add_argument("--config", required=True, help="YAML config")
    p.add_argument("--out", required=True, help="output directory (shared by all ranks)")
    p.add_argument("--arch", help="train: architecture JSON (default: OUT/best_arch.json)")
    p.add_argument("--no-baselines", action="store_true", help="train: only the architecture")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("torchrec_nas").setLevel(logging.INFO)
    from torchrec_nas.config import Config
    from torchrec_nas.distributed import stages
    from torchrec_nas.distributed.context import init_distributed, shutdown_distributed
    from torchrec_nas.runlock import RunLock, RunLockError
    from torchrec_nas.space import Architecture

    cfg = Config.load(args.config)
    if args.quiet:
        cfg.supernet.progress = cfg.train.progress = cfg.search.progress = False
    ctx = init_distributed(cfg.distributed.backend, cfg.device)
    out = Path(args.out)
    lock = RunLock(out)  # rank 0 holds it for the job
    try:
        if ctx.is_primary:
            lock.acquire()
        result: object = None
        if args.stage in ("supernet", "all"):
            result = stages.run_supernet_distributed(cfg, out, ctx).to_dict()
        if args.stage in ("search", "all"):
            result = stages.run_search_distributed(cfg, out, ctx)
        if args.stage in ("train", "all"):
            arch_path = Path(args.arch) if args.arch else out / "best_arch.json"
            if args.no_baselines:
                cfg.train.baselines.models = []
            result = stages.train_final_distributed(cfg, out, ctx, Architecture.load(arch_path))
        if ctx.is_primary:
            print(json.dumps(result, indent=2, default=str))
    except RunLockError as e:
        print(f"torchrec_nas.launch.main {args.stage}: error: {e}", file=sys.stderr)
        return 2
    finally:
        lock.release()
        shutdown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
