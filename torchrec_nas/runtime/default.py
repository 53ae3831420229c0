"""The runtime the stages use when none is given."""

from __future__ import annotations

from torchrec_nas.config import Config
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.distributed import DistributedRuntime


def default_runtime(cfg: Config) -> Runtime:
    """``DistributedModelParallel`` over the ranks of this job: the ranks ``torchrun`` or
    TorchX started, or, in a plain process, one rank (a local process group).

    Example::

        runtime = default_runtime(cfg)
        run_supernet(cfg, "runs/demo", runtime)
    """
    return DistributedRuntime.start(cfg)
