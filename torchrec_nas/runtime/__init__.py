"""Where the stages run (one process, or a rank of a ``DistributedModelParallel`` job) and
the :class:`Trainer` they train with."""

from torchrec_nas.runtime.base import Runtime, parse_device
from torchrec_nas.runtime.callbacks import (
    Checkpointing,
    EarlyStopping,
    JsonlLog,
    ProgressBar,
    TensorBoard,
    standard_callbacks,
)
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.runtime.trainer import (
    Callback,
    Trainer,
    TrainingDiverged,
    TrainingInterrupted,
    TrainResult,
    TrainState,
)

__all__ = [
    "Callback",
    "Checkpointing",
    "EarlyStopping",
    "JsonlLog",
    "LocalRuntime",
    "ProgressBar",
    "Runtime",
    "TensorBoard",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "parse_device",
    "standard_callbacks",
]
