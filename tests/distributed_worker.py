"""Run under torchrun by tests/test_distributed.py: a supernet job that dies mid-epoch.

torchrun --nproc_per_node 2 tests/distributed_worker.py CONFIG OUT CRASH_AFTER_BATCHES
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

from torchrec_nas.config import Config
from torchrec_nas.runtime.distributed import DistributedRuntime
from torchrec_nas.stages import run_supernet


class CrashAfter:
    """The train stream, except that the process dies (as if killed) after ``n`` batches."""

    def __init__(self, stream: Any, n: int) -> None:
        self.stream, self.n = stream, n

    def __len__(self) -> int:
        return len(self.stream)

    def __iter__(self) -> Iterator[Any]:
        for i, batch in enumerate(self.stream):
            if i == self.n:
                os._exit(17)  # no cleanup, no final checkpoint: a kill
            yield batch


def main() -> None:
    config, out, crash_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cfg = Config.load(config)
    runtime = DistributedRuntime.start(cfg)
    data = runtime.data(cfg)
    data.train = CrashAfter(data.train, crash_after)
    run_supernet(cfg, out, runtime, data)


if __name__ == "__main__":
    main()
