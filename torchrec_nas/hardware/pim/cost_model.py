"""Energy, latency and area of a model on Processing-In-Memory (ReRAM crossbar) hardware.

A model is priced from its hardware-neutral description (:mod:`torchrec_nas.hardware.layers`):

* a :class:`~torchrec_nas.hardware.layers.LinearLayer` ``[N, K]`` with ``W``-bit weights and
  ``A``-bit inputs is mapped onto ``R x C`` crossbars whose cells hold ``c`` bits each:

  - weight slices ``S = ceil(W / c)``, doubled when positive and negative weights live in
    separate arrays (:attr:`PIMHardware.differential_arrays`);
  - crossbars ``ceil(K / R) * ceil(N * S / C)``;
  - input cycles ``ceil(A / dac_bits)`` (inputs are streamed bit-serially through the DACs);
  - row groups ``ceil(rows / parallel_rows)`` per crossbar (how many rows are switched on at
    once, the "partial parallel" read of NeuroSim);
  - every (input cycle, row group, crossbar) is one crossbar read; every occupied column of it
    is one ADC conversion followed by one shift-and-add;

* an :class:`~torchrec_nas.hardware.layers.ActivationOp` runs on a digital vector unit;
* an :class:`~torchrec_nas.hardware.layers.EmbeddingLookup` is either gathered from DRAM by a
  near-memory engine (``embedding_mode="near_memory"``) or stored in crossbars and summed by one
  multi-hot read per crossbar touched (``embedding_mode="in_crossbar"``).

Energy is the sum of event counts times unit energies plus bits moved times per-bit
buffer/bus energies. Assumptions of the timing model (all per sample, no batching):

* the crossbars of one layer work in parallel; layers run one after another;
* a crossbar read and the conversion of the previous read overlap (sample-and-hold, as in
  ISAAC), so one step takes ``max(read time, columns_per_adc * conversion time)``: each ADC is
  shared by ``columns_per_adc`` columns and converts them one after another;
* partial sums of the ``ceil(K / R)`` row tiles are added by an adder tree, one digital clock
  per level; data moves over one bus of :attr:`PIMHardware.bus_bits_per_ns`;
* a layer applied to several vectors per sample (EFC over embedding channels) reuses the same
  crossbars for one vector after another.

Area is the crossbars' area (array, ADCs, DACs, shift-and-add units) plus one buffer and one
digital unit.

Example::

    from torchrec_nas.hardware.layers import LinearLayer
    from torchrec_nas.hardware.pim import PIMCostModel, PIMHardware, format_cost_table

    model = PIMCostModel(PIMHardware.preset("isaac"))
    report = model.estimate([LinearLayer("fc", in_features=512, out_features=256)])
    print(format_cost_table(report))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from torchrec_nas.hardware.layers import ActivationOp, EmbeddingLookup, Layer, LinearLayer
from torchrec_nas.hardware.pim.hardware import PIMHardware
from torchrec_nas.hardware.pim.report import CostReport, LayerCost

EmbeddingMode = Literal["near_memory", "in_crossbar"]
EMBEDDING_MODES: tuple[str, ...] = ("near_memory", "in_crossbar")


def _adder_tree_levels(inputs: float) -> int:
    return math.ceil(math.log2(inputs)) if inputs > 1 else 0


class PIMCostModel:
    """Prices a list of :data:`~torchrec_nas.hardware.layers.Layer` records on PIM hardware.

    A pure function of the layers and the hardware: no torch, microseconds per layer, so it can
    run for every candidate of a search.

    Args:
        hardware: the accelerator (see :class:`PIMHardware`).

    Example::

        model = PIMCostModel(PIMHardware.preset("neurosim"))
        report = model.estimate(layers, embedding_mode="in_crossbar")
        print(report.energy_pj, report.latency_ns)
    """

    def __init__(self, hardware: PIMHardware) -> None:
        self.hardware = hardware

    def estimate(
        self, layers: Sequence[Layer], embedding_mode: EmbeddingMode = "near_memory"
    ) -> CostReport:
        """Costs every layer for one sample.

        Args:
            layers: linear layers, activation ops and embedding lookups, in execution order.
            embedding_mode: ``"near_memory"`` (DRAM gather by a near-memory engine) or
                ``"in_crossbar"`` (tables stored in crossbars, one multi-hot read per crossbar
                touched).

        Returns:
            A :class:`CostReport`.
        """
        if embedding_mode not in EMBEDDING_MODES:
            raise ValueError(f"embedding_mode: {embedding_mode!r} is not one of {EMBEDDING_MODES}")
        costs = tuple(self.layer_cost(layer, embedding_mode) for layer in layers)
        hw = self.hardware
        return CostReport(
            hardware=hw.name,
            embedding_mode=embedding_mode,
            layers=costs,
            overhead_area_mm2=hw.buffer_area_mm2 + hw.digital_area_mm2,
        )

    def layer_cost(self, layer: Layer, embedding_mode: EmbeddingMode = "near_memory") -> LayerCost:
        """Costs one layer for one sample."""
        if isinstance(layer, LinearLayer):
            return self.linear_cost(layer)
        if isinstance(layer, ActivationOp):
            return self.activation_cost(layer)
        if isinstance(layer, EmbeddingLookup):
            if embedding_mode == "in_crossbar":
                return self.embedding_in_crossbar_cost(layer)
            return self.embedding_near_memory_cost(layer)
        raise TypeError(f"cannot price {type(layer).__name__}: {layer!r}")

    def linear_cost(self, layer: LinearLayer) -> LayerCost:
        """A weight matrix on crossbars, inputs streamed bit-serially (see the module doc)."""
        hw = self.hardware
        k, n = layer.in_features, layer.out_features
        vectors = layer.vectors_per_sample
        occupied_columns = n * hw.weight_slices(layer.weight_bits)
        row_tiles = -(-k // hw.rows)
        column_tiles = -(-occupied_columns // hw.columns)
        input_cycles = -(-layer.activation_bits // hw.dac_bits)
        # Full row tiles hold R rows, the last one the rest; each needs its own row groups.
        full_tiles, last_rows = divmod(k, hw.rows)
        groups_full = -(-hw.rows // hw.parallel_rows)
        groups_last = -(-last_rows // hw.parallel_rows)
        row_groups = full_tiles * groups_full + groups_last
        longest_groups = groups_full if full_tiles else groups_last

        cycles = vectors * input_cycles
        crossbar_reads = cycles * row_groups * column_tiles
        adc_conversions = cycles * row_groups * occupied_columns
        dac_drives = cycles * k * column_tiles
        tile_sums = vectors * n * (row_tiles - 1)
        shift_adds = adc_conversions + tile_sums
        # The array draws current in proportion to the rows driven.
        array_reads = cycles * k * column_tiles / hw.rows
        buffer_bits = vectors * (k + n) * layer.activation_bits
        bits_moved = (
            vectors * (k * column_tiles + n) * layer.activation_bits
            + tile_sums * hw.partial_sum_bits
        )
        breakdown = {
            "adc": adc_conversions * hw.adc_energy_pj,
            "dac": dac_drives * hw.dac_energy_pj,
            "array": array_reads * hw.crossbar_read_energy_pj,
            "shift_add": shift_adds * hw.shift_add_energy_pj,
            "buffer": buffer_bits * hw.buffer_energy_pj_per_bit,
            "bus": bits_moved * hw.bus_energy_pj_per_bit,
        }
        latency = vectors * (
            input_cycles * longest_groups * hw.read_step_ns
            + _adder_tree_levels(row_tiles) / hw.digital_clock_ghz
        )
        latency += bits_moved / hw.bus_bits_per_ns
        crossbars = row_tiles * column_tiles
        return LayerCost(
            name=layer.name,
            kind="dense",
            energy_pj=sum(breakdown.values()),
            latency_ns=latency,
            area_mm2=crossbars * hw.area_per_crossbar_mm2,
            crossbars=crossbars,
            adc_conversions=adc_conversions,
            crossbar_reads=crossbar_reads,
            dac_drives=dac_drives,
            shift_adds=shift_adds,
            bits_moved=bits_moved,
            energy_breakdown_pj=breakdown,
        )

    def activation_cost(self, op: ActivationOp) -> LayerCost:
        """Work between activations on the digital vector unit (no crossbars).

        Operands are assumed to stay in the unit's registers: no buffer or bus traffic is
        charged, because the record does not say how large the operands are.
        """
        hw = self.hardware
        digital = op.macs * hw.digital_mac_energy_pj(op.activation_bits) + (
            op.elementwise * hw.digital_op_energy_pj(op.activation_bits)
        )
        latency = (op.macs + op.elementwise) / (hw.digital_lanes * hw.digital_clock_ghz)
        return LayerCost(
            name=op.name,
            kind="activation",
            energy_pj=digital,
            latency_ns=latency,
            area_mm2=0.0,
            crossbars=0,
            energy_breakdown_pj={"digital": digital},
        )

    def embedding_near_memory_cost(self, lookup: EmbeddingLookup) -> LayerCost:
        """Rows gathered from DRAM and summed by a near-memory engine beside the ranks.

        Rows are spread over :attr:`PIMHardware.dram_ranks` ranks read in parallel; only the
        pooled vector crosses the bus to the accelerator.
        """
        hw = self.hardware
        lookups = lookup.lookups_per_sample
        dim, bits = lookup.embedding_dim, lookup.weight_bits
        dram_bits = lookups * dim * bits
        pooling_adds = max(lookups - 1.0, 0.0) * dim
        output_bits = dim * bits
        breakdown = {
            "dram": dram_bits * hw.dram_energy_pj_per_bit,
            "digital": pooling_adds * hw.digital_op_energy_pj(bits),
            "bus": output_bits * hw.bus_energy_pj_per_bit,
        }
        latency = (
            hw.dram_latency_ns
            + dram_bits / (hw.dram_ranks * hw.dram_rank_bits_per_ns)
            + output_bits / hw.bus_bits_per_ns
        )
        return LayerCost(
            name=lookup.name,
            kind="embedding",
            energy_pj=sum(breakdown.values()),
            latency_ns=latency,
            area_mm2=0.0,
            crossbars=0,
            bits_moved=dram_bits + output_bits,
            energy_breakdown_pj=breakdown,
        )

    def embedding_in_crossbar_cost(self, lookup: EmbeddingLookup) -> LayerCost:
        """A table stored in crossbars; the looked-up rows are driven together (a multi-hot
        input) so the bit lines sum them, one read per crossbar touched.

        The lookups are assumed to fall in different row tiles (worst case), so
        ``min(lookups, row tiles)`` tiles are touched, each across all its column tiles.
        """
        hw = self.hardware
        rows, dim = lookup.num_embeddings, lookup.embedding_dim
        lookups = lookup.lookups_per_sample
        occupied_columns = dim * hw.weight_slices(lookup.weight_bits)
        row_tiles = -(-rows // hw.rows)
        column_tiles = -(-occupied_columns // hw.columns)
        touched_tiles = min(lookups, float(row_tiles))
        rows_per_tile = lookups / touched_tiles if touched_tiles > 0 else 0.0
        groups = max(1, math.ceil(rows_per_tile / hw.parallel_rows))

        crossbar_reads = touched_tiles * groups * column_tiles
        adc_conversions = touched_tiles * groups * occupied_columns
        dac_drives = lookups * column_tiles
        tile_sums = dim * max(touched_tiles - 1.0, 0.0)
        shift_adds = adc_conversions + tile_sums
        array_reads = lookups * column_tiles / hw.rows
        bits_moved = tile_sums * hw.partial_sum_bits + dim * hw.partial_sum_bits
        breakdown = {
            "adc": adc_conversions * hw.adc_energy_pj,
            "dac": dac_drives * hw.dac_energy_pj,
            "array": array_reads * hw.crossbar_read_energy_pj,
            "shift_add": shift_adds * hw.shift_add_energy_pj,
            "bus": bits_moved * hw.bus_energy_pj_per_bit,
        }
        latency = (
            groups * hw.read_step_ns
            + _adder_tree_levels(touched_tiles) / hw.digital_clock_ghz
            + bits_moved / hw.bus_bits_per_ns
        )
        crossbars = row_tiles * column_tiles
        return LayerCost(
            name=lookup.name,
            kind="embedding",
            energy_pj=sum(breakdown.values()),
            latency_ns=latency,
            area_mm2=crossbars * hw.area_per_crossbar_mm2,
            crossbars=crossbars,
            adc_conversions=adc_conversions,
            crossbar_reads=crossbar_reads,
            dac_drives=dac_drives,
            shift_adds=shift_adds,
            bits_moved=bits_moved,
            energy_breakdown_pj=breakdown,
        )


def estimate_cost(
    layers: Sequence[Layer],
    hardware: str | PIMHardware = "isaac",
    embedding_mode: EmbeddingMode = "near_memory",
) -> CostReport:
    """Shortcut: ``PIMCostModel(PIMHardware.resolve(hardware)).estimate(layers, mode)``."""
    return PIMCostModel(PIMHardware.resolve(hardware)).estimate(layers, embedding_mode)
