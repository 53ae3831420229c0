"""The stages of a run, each written once over a :class:`~torchrec_nas.runtime.Runtime`:
supernet training, search, final training and evaluation.

Each CLI subcommand and each rank of a distributed job calls one of these; each stage reads
what the previous one wrote under ``out`` and resumes where a killed run stopped.
"""

from torchrec_nas.stages.evaluate import ModelDataMismatch, evaluate_saved_model
from torchrec_nas.stages.models import (
    build_supernet,
    load_model,
    load_supernet,
    model_costs,
    save_model,
)
from torchrec_nas.stages.search import run_search
from torchrec_nas.stages.supernet import run_supernet
from torchrec_nas.stages.train import train_final

__all__ = [
    "ModelDataMismatch",
    "build_supernet",
    "evaluate_saved_model",
    "load_model",
    "load_supernet",
    "model_costs",
    "run_search",
    "run_supernet",
    "save_model",
    "train_final",
]
