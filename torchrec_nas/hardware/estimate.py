"""The ``estimate`` command: PIM cost of a whole NASRec architecture, layer by layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torchrec_nas.hardware.flops import count_flops, count_params, model_layers
from torchrec_nas.hardware.pim import estimate_cost, format_cost_table
from torchrec_nas.space import Architecture

if TYPE_CHECKING:
    from torchrec_nas.config import Config


def estimate_architecture(
    cfg: Config, arch: Architecture, hardware: str = "isaac", embedding_mode: str = "near_memory"
) -> tuple[str, dict[str, Any]]:
    """Prices ``arch`` (with the tables of ``cfg.data``) on PIM ``hardware``.

    Returns:
        ``(table, report)``: a readable per-layer table and a JSON-able dict.

    Example::

        text, report = estimate_architecture(cfg, Architecture.load("best_arch.json"), "isaac")
    """
    from torchrec_nas.data import build_data

    cfg.space.validate(arch)
    spec = build_data(cfg.data, cfg.seed).spec
    tables = spec.tables(cfg.space.embedding_dim)
    layers = model_layers(arch, cfg.space, len(spec.dense_names), tables)
    report = estimate_cost(layers, hardware, embedding_mode)  # type: ignore[arg-type]
    result = report.to_dict()
    result["flops"] = count_flops(layers)
    result["params"] = count_params(layers)
    header = (
        f"architecture {arch.canonical_hash()}: {count_flops(layers):,} FLOPs/sample, "
        f"{count_params(layers):,} dense params\n"
    )
    return header + format_cost_table(report), result
