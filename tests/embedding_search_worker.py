"""One rank of a distributed embedding-size search (tests/test_embedding_search_run.py):
``torchrun ... embedding_search_worker.py CONFIG OUT``."""

from __future__ import annotations

import sys

from torchrec_nas.config import Config
from torchrec_nas.distributed.context import shutdown_distributed
from torchrec_nas.embedding_search import EmbeddingSizeSearch
from torchrec_nas.runtime.distributed import DistributedRuntime

if __name__ == "__main__":
    cfg = Config.load(sys.argv[1])
    runtime = DistributedRuntime.start(cfg)
    try:
        EmbeddingSizeSearch(cfg, sys.argv[2], runtime).run()
    finally:
        shutdown_distributed()
