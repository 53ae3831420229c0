"""What the PIM cost model returns: the cost of each layer and of the whole model."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

LayerKind = Literal["dense", "activation", "embedding"]


@dataclass(frozen=True)
class LayerCost:
    """What one layer costs for one sample.

    Args:
        name: the layer's name.
        kind: ``"dense"`` (crossbar linear layer), ``"activation"`` (digital unit) or
            ``"embedding"``.
        energy_pj: total energy.
        latency_ns: time from first input to last output.
        area_mm2: area of the crossbars the layer occupies (0 off the crossbars).
        crossbars: crossbars the layer's weights occupy.
        adc_conversions / crossbar_reads / dac_drives / shift_adds: event counts.
        bits_moved: bits moved over the bus (or read from DRAM for near-memory lookups).
        energy_breakdown_pj: energy by component (adc, dac, array, shift_add, buffer, bus,
            digital, dram).
    """

    name: str
    kind: LayerKind
    energy_pj: float
    latency_ns: float
    area_mm2: float
    crossbars: int
    adc_conversions: float = 0.0
    crossbar_reads: float = 0.0
    dac_drives: float = 0.0
    shift_adds: float = 0.0
    bits_moved: float = 0.0
    energy_breakdown_pj: dict[str, float] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CostReport:
    """Per-layer and total cost of a model on one piece of PIM hardware, for one sample.

    Totals: energy and latency add up over layers (layers run in sequence); area is the layers'
    crossbars plus one buffer and one digital unit.

    Example::

        report = PIMCostModel(PIMHardware.preset("isaac")).estimate(layers)
        report.energy_pj, report.latency_ns, report.area_mm2, report.crossbars
        json.dumps(report.to_dict())
    """

    hardware: str
    embedding_mode: str
    layers: tuple[LayerCost, ...]
    overhead_area_mm2: float = 0.0

    def _sum(self, attribute: str, kinds: tuple[str, ...] | None = None) -> float:
        return float(
            sum(
                getattr(layer, attribute)
                for layer in self.layers
                if kinds is None or layer.kind in kinds
            )
        )

    @property
    def energy_pj(self) -> float:
        return self._sum("energy_pj")

    @property
    def latency_ns(self) -> float:
        return self._sum("latency_ns")

    @property
    def area_mm2(self) -> float:
        return self._sum("area_mm2") + self.overhead_area_mm2

    @property
    def crossbars(self) -> int:
        return int(self._sum("crossbars"))

    @property
    def dense_energy_pj(self) -> float:
        """Energy of everything but the embedding lookups."""
        return self._sum("energy_pj", ("dense", "activation"))

    @property
    def embedding_energy_pj(self) -> float:
        return self._sum("energy_pj", ("embedding",))

    def part(self, kinds: tuple[str, ...]) -> dict[str, float]:
        """Subtotals of the layers of the given kinds."""
        return {
            "energy_pj": self._sum("energy_pj", kinds),
            "latency_ns": self._sum("latency_ns", kinds),
            "area_mm2": self._sum("area_mm2", kinds),
            "crossbars": self._sum("crossbars", kinds),
        }

    def totals(self) -> dict[str, float]:
        counts = (
            "adc_conversions",
            "crossbar_reads",
            "dac_drives",
            "shift_adds",
            "bits_moved",
        )
        result: dict[str, float] = {
            "energy_pj": self.energy_pj,
            "latency_ns": self.latency_ns,
            "area_mm2": self.area_mm2,
            "crossbars": self.crossbars,
        }
        result.update({name: self._sum(name) for name in counts})
        return result

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: hardware, mode, totals, dense and embedding subtotals, layers."""
        return {
            "hardware": self.hardware,
            "embedding_mode": self.embedding_mode,
            "total": self.totals(),
            "dense": self.part(("dense", "activation")),
            "embedding": self.part(("embedding",)),
            "overhead_area_mm2": self.overhead_area_mm2,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)
