"""The per-rank entry point of distributed jobs: ``torchrun`` or a TorchX component starts it
once per rank.

Example::

    torchrun --nproc_per_node 2 -m torchrec_nas.launch.main supernet \\
        --config configs/distributed-demo.yaml --out runs/dist
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

STAGES = ("supernet", "search", "train", "all")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_launcher() -> bool:
    """Asks Linux to end this rank with SIGTERM when its launcher (``torchrun``'s agent) dies.

    Without it a SIGKILLed ``torchrun`` leaves its ranks running as orphans: they go on
    writing to ``--out`` and hold its run lock, so a rerun is refused until they end. Returns
    whether the request was made (Linux with a C library; elsewhere it does nothing).
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import signal

    try:
        return bool(ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m torchrec_nas.launch.main",
        description="One rank of a distributed torchrec_nas stage (run it under torchrun/TorchX).",
    )
    p.add_argument("stage", choices=STAGES, help="which stage (all: supernet, search, train)")
    p.add_argument("--config", required=True, help="YAML config")
    p.add_argument(
        "--out", required=True, help="output directory or fsspec URL (shared by all ranks)"
    )
    p.add_argument("--arch", help="train: architecture JSON (default: OUT/best_arch.json)")
    p.add_argument("--no-baselines", action="store_true", help="train: only the architecture")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    die_with_launcher()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("torchrec_nas").setLevel(logging.INFO)
    from torchrec_nas import storage
    from torchrec_nas.config import Config
    from torchrec_nas.distributed.context import shutdown_distributed
    from torchrec_nas.failures import failure_line
    from torchrec_nas.runlock import RunLock, RunLockError
    from torchrec_nas.runtime.distributed import DistributedRuntime
    from torchrec_nas.space import Architecture
    from torchrec_nas.stages import run_search, run_supernet, train_final
    from torchrec_nas.stages.rerank import check_rerank
    from torchrec_nas.train.checkpoint import json_dumps

    out: str = args.out
    lock = RunLock(out)  # rank 0 holds it for the job
    try:
        cfg = Config.load(args.config)
        if args.quiet:
            cfg.supernet.progress = cfg.train.progress = cfg.search.progress = False
        runtime = DistributedRuntime.start(cfg)
        refusal = ""
        if runtime.is_primary:
            try:
                lock.acquire()
            except RunLockError as e:
                refusal = str(e)
        # Every rank stops when rank 0 is refused, instead of waiting in a collective.
        refusal = runtime.broadcast(refusal)
        if refusal:
            raise RunLockError(refusal)
        result: object = None
        if args.stage == "all" and cfg.search.rerank.enabled:
            check_rerank(cfg, out, runtime)  # before the supernet, not after it
        data = runtime.data(cfg)
        if args.stage in ("supernet", "all"):
            result = run_supernet(cfg, out, runtime, data).to_dict()
        if args.stage in ("search", "all"):
            result = run_search(cfg, out, runtime, data)
        if args.stage in ("train", "all"):
            arch_path = args.arch or storage.join(out, "best_arch.json")
            if args.no_baselines:
                cfg.train.baselines.models = []
            result = train_final(cfg, out, Architecture.load(arch_path), data, runtime)
        if runtime.is_primary:
            print(json_dumps(result))
    except (KeyboardInterrupt, Exception) as e:
        failure = failure_line(f"rank {os.environ.get('RANK', '0')}: torchrec-nas {args.stage}", e)
        if failure is None:
            raise
        print(failure[1], file=sys.stderr)
        return failure[0]
    finally:
        lock.release()
        shutdown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
