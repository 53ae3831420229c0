"""Markdown tables of a cost report and of a hardware description."""

from __future__ import annotations

import dataclasses

from torchrec_nas.hardware.pim.hardware import PIMHardware
from torchrec_nas.hardware.pim.report import CostReport


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return f"{value:.3e}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    return f"{value:.3f}"


def format_cost_table(report: CostReport) -> str:
    """A Markdown table of the report: one row per layer, then dense, embedding and total rows.

    Example::

        print(format_cost_table(PIMCostModel(PIMHardware.preset("isaac")).estimate(layers)))
    """
    header = (
        "| layer | kind | energy (pJ) | latency (ns) | area (mm²) | crossbars | ADC conv. "
        "| xbar reads | DAC drives | shift-adds | bits moved |"
    )
    lines = [
        f"PIM cost per sample on `{report.hardware}` (embeddings: {report.embedding_mode})",
        "",
        header,
        "|" + "---|" * 11,
    ]
    for layer in report.layers:
        lines.append(
            f"| {layer.name} | {layer.kind} | {_fmt(layer.energy_pj)} | {_fmt(layer.latency_ns)} "
            f"| {_fmt(layer.area_mm2)} | {layer.crossbars} | {_fmt(layer.adc_conversions)} "
            f"| {_fmt(layer.crossbar_reads)} | {_fmt(layer.dac_drives)} "
            f"| {_fmt(layer.shift_adds)} | {_fmt(layer.bits_moved)} |"
        )
    for label, part in (
        ("dense part", report.part(("dense", "activation"))),
        ("embedding part", report.part(("embedding",))),
    ):
        lines.append(
            f"| **{label}** | | {_fmt(part['energy_pj'])} | {_fmt(part['latency_ns'])} "
            f"| {_fmt(part['area_mm2'])} | {int(part['crossbars'])} | | | | | |"
        )
    totals = report.totals()
    lines.append(
        f"| **buffer + digital unit** | | | | {_fmt(report.overhead_area_mm2)} | | | | | | |"
    )
    lines.append(
        f"| **total** | | {_fmt(totals['energy_pj'])} | {_fmt(totals['latency_ns'])} "
        f"| {_fmt(totals['area_mm2'])} | {int(totals['crossbars'])} "
        f"| {_fmt(totals['adc_conversions'])} | {_fmt(totals['crossbar_reads'])} "
        f"| {_fmt(totals['dac_drives'])} | {_fmt(totals['shift_adds'])} "
        f"| {_fmt(totals['bits_moved'])} |"
    )
    return "\n".join(lines)


def format_hardware_table(hardware: PIMHardware) -> str:
    """A Markdown table of the hardware constants with their sources."""
    lines = ["| constant | value | source |", "|---|---|---|"]
    for f in dataclasses.fields(hardware):
        if f.name == "sources":
            continue
        value = getattr(hardware, f.name)
        shown = _fmt(value) if isinstance(value, float) else str(value)
        lines.append(f"| {f.name} | {shown} | {hardware.sources.get(f.name, '')} |")
    return "\n".join(lines)
