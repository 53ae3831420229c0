"""Latency of a trained model per batch: eager against its ``torch.export`` program.

``python -m torchrec_nas.stages.export_latency --model runs/demo/train/model_nasrec.pt``
prints one JSON line per variant (eager, exported float, exported with int8 tables): the
median and spread of milliseconds per batch over repeated calls, alternated between variants so
that a busy machine slows each alike, and the largest logit difference from the eager model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.export import ExportedProgram
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from torchrec_nas.data import DataSpec
from torchrec_nas.models import NASRecSubnet
from torchrec_nas.stages.export import (
    InferenceModel,
    example_inputs,
    export_program,
    quantize_embeddings,
)
from torchrec_nas.stages.models import load_model, read_model_file

Inputs = tuple[torch.Tensor, KeyedJaggedTensor]


def _caller(module: torch.nn.Module) -> Callable[[Inputs], torch.Tensor]:
    def call(inputs: Inputs) -> torch.Tensor:
        logits: torch.Tensor = module(*inputs)
        return logits

    return call


def export_latency(
    model_path: str | Path, batch_size: int = 512, repeats: int = 30, quantize: bool = True
) -> dict[str, dict[str, float]]:
    """Milliseconds per batch of ``batch_size`` rows of the eager model and of its exported
    programs (float tables, and int8 tables when ``quantize``).

    Each variant gets three untimed calls, then the variants are called in turn ``repeats``
    times; the inputs are synthetic rows of the model's schema (one or two ids per feature).

    Args:
        model_path: a ``model_<name>.pt`` written by ``train``.
        batch_size: rows per call.
        repeats: timed calls per variant.
        quantize: also time the program with int8 embedding tables.

    Returns:
        Per variant: ``median_ms``, ``min_ms``, ``max_ms`` and ``max_abs_logit_diff``
        against the eager model.

    Example::

        export_latency("runs/demo/train/model_nasrec.pt")["exported"]["median_ms"]
    """
    state = read_model_file(model_path)
    spec = DataSpec.from_dict(state["spec"])
    eager = InferenceModel(load_model(model_path)).eval()
    tables = [
        c
        for m in eager.modules()
        if isinstance(m, EmbeddingBagCollection)
        for c in m.embedding_bag_configs()
    ]
    if not tables and isinstance(eager.model, NASRecSubnet):
        tables = eager.model.tables
    inputs: Inputs = example_inputs(spec, tables, batch_size)
    variants: dict[str, Callable[[Inputs], torch.Tensor]] = {"eager": lambda x: eager(*x)}
    programs: list[ExportedProgram] = [export_program(eager, example_inputs(spec, tables))]
    if quantize:
        quantized = quantize_embeddings(InferenceModel(load_model(model_path)).eval(), "int8")
        programs.append(export_program(quantized, example_inputs(spec, tables)))
    for name, program in zip(("exported", "exported_int8"), programs):
        variants[name] = _caller(program.module())
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.no_grad():
        reference = eager(*inputs)
        diffs = {
            name: float((call(inputs) - reference).abs().max()) for name, call in variants.items()
        }
        for call in variants.values():
            for _ in range(2):
                call(inputs)
        for _ in range(repeats):
            for name, call in variants.items():
                t0 = time.perf_counter()
                call(inputs)
                times[name].append(1e3 * (time.perf_counter() - t0))
    return {
        name: {
            "median_ms": statistics.median(ts),
            "min_ms": min(ts),
            "max_ms": max(ts),
            "max_abs_logit_diff": diffs[name],
            "batch_size": batch_size,
            "threads": torch.get_num_threads(),
        }
        for name, ts in times.items()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model_*.pt written by `train`")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    for name, row in export_latency(args.model, args.batch_size, args.repeats).items():
        print(json.dumps({"variant": name, **row}))


if __name__ == "__main__":
    main()
