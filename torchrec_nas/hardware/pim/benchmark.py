"""How fast the PIM cost model prices a whole model (it runs for every search candidate)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from torchrec_nas.hardware.layers import ActivationOp, EmbeddingLookup, Layer, LinearLayer
from torchrec_nas.hardware.pim.cost_model import PIMCostModel
from torchrec_nas.hardware.pim.hardware import PIMHardware


def example_layers(num_blocks: int = 7, num_tables: int = 26) -> list[Layer]:
    """A NASRec-Full-sized layer list (about 60 records) for benchmarks and tests."""
    layers: list[Layer] = [
        EmbeddingLookup(f"table_{i}", num_embeddings=100_000, embedding_dim=16)
        for i in range(num_tables)
    ]
    width = 13
    for block in range(num_blocks):
        out = (1024, 512, 256, 768, 128, 512, 256)[block % 7]
        layers.append(LinearLayer(f"block{block}.dense.fc", width + 16, out))
        layers.append(
            LinearLayer(f"block{block}.sparse.efc", 2 * num_tables, 48, vectors_per_sample=16)
        )
        layers.append(LinearLayer(f"block{block}.dense_to_sparse", out, 128))
        layers.append(ActivationOp(f"block{block}.dot", macs=48 * 48 * 16, elementwise=out))
        layers.append(ActivationOp(f"block{block}.layernorm", elementwise=4 * out))
        width = out
    layers.append(LinearLayer("classifier", width + 48 * 16, 1))
    return layers


def benchmark_estimator(
    hardware: str | PIMHardware = "isaac",
    layers: Sequence[Layer] | None = None,
    repeats: int = 200,
) -> dict[str, float]:
    """Times :meth:`PIMCostModel.estimate` on a whole model (no assertion, just a measurement).

    Args:
        hardware: the preset or hardware to price on.
        layers: the model; defaults to :func:`example_layers` (about 60 records).
        repeats: how many estimates to time.

    Returns:
        ``{"layers": ..., "ms_per_model": best, "ms_per_model_median": median}``.

    Example::

        benchmark_estimator("mnsim", repeats=50)["ms_per_model"]  # or: python -m torchrec_nas.hardware.pim
    """
    if repeats < 1:
        raise ValueError(f"repeats: must be at least 1, got {repeats}")
    model = PIMCostModel(PIMHardware.resolve(hardware))
    records = list(layers) if layers is not None else example_layers()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.estimate(records, "near_memory")
        timings.append((time.perf_counter() - start) * 1e3)
    timings.sort()
    return {
        "layers": float(len(records)),
        "ms_per_model": timings[0],
        "ms_per_model_median": timings[len(timings) // 2],
    }
