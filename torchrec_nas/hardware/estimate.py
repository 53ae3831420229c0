"""The ``estimate`` command: PIM cost of a whole NASRec architecture, layer by layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torchrec_nas.hardware.flops import count_flops, count_params, model_layers
from torchrec_nas.hardware.pim import EmbeddingMode, PIMHardware, estimate_cost, format_cost_table
from torchrec_nas.space import Architecture

if TYPE_CHECKING:
    from torchrec_nas.config import Config


def estimate_architecture(
    cfg: Config,
    arch: Architecture,
    hardware: str | PIMHardware = "isaac",
    embedding_mode: EmbeddingMode = "near_memory",
) -> tuple[str, dict[str, Any]]:
    """Prices ``arch`` (with the tables of ``cfg.data``) on PIM ``hardware``.

    Args:
        cfg: the run's config (its data gives the tables, its space the layers).
        arch: the architecture.
        hardware: a preset name (``isaac``, ``mnsim``, ``neurosim``), a YAML file or hardware.
        embedding_mode: ``near_memory`` or ``in_crossbar``.

    Returns:
        ``(table, report)``: a readable per-layer table and a JSON-able dict.

    Raises:
        ConfigError: ``hardware`` is neither a preset nor a valid hardware file (the message
            lists the presets).

    Example::

        text, report = estimate_architecture(cfg, Architecture.load("best_arch.json"), "isaac")
    """
    from torchrec_nas.data import build_data

    pim_hardware = PIMHardware.resolve(hardware)  # a bad --hardware fails before any data is read
    cfg.space.validate(arch)
    spec = build_data(cfg.data, cfg.seed).spec
    tables = spec.tables(cfg.space.embedding_dim)
    layers = model_layers(arch, cfg.space, len(spec.dense_names), tables)
    report = estimate_cost(layers, pim_hardware, embedding_mode)
    result = report.to_dict()
    result["flops"] = count_flops(layers)
    result["params"] = count_params(layers)
    header = (
        f"architecture {arch.canonical_hash()}: {count_flops(layers):,} FLOPs/sample, "
        f"{count_params(layers):,} dense params\n"
    )
    return header + format_cost_table(report), result
