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

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torchrec_nas.config_utils import ConfigError, from_mapping, load_yaml
from torchrec_nas.hardware.layers import ActivationOp, EmbeddingLookup, Layer, LinearLayer

EmbeddingMode = Literal["near_memory", "in_crossbar"]
EMBEDDING_MODES: tuple[str, ...] = ("near_memory", "in_crossbar")

PRESET_NAMES: tuple[str, ...] = ("isaac", "mnsim", "neurosim")


def mnsim_crossbar_read_power_mw(
    rows: int, columns: int, read_voltage_v: float, r_hrs_ohm: float, r_lrs_ohm: float
) -> float:
    """Read power of a whole crossbar by MNSIM 2.0's behaviour-level device model.

    MNSIM takes every cell at an effective resistance ``R_hrs * R_lrs / (0.67 R_lrs + 0.33 R_hrs)``
    (a third of the cells in the high-resistance state) and an effective read voltage
    ``sqrt(0.1 * V_read^2)`` (a tenth of the rows driven), so each cell draws ``V^2 / R``.

    Args:
        rows: rows of the array.
        columns: columns of the array.
        read_voltage_v: the read voltage of a driven row, in volts.
        r_hrs_ohm: high-resistance state, in ohms.
        r_lrs_ohm: low-resistance state, in ohms.

    Returns:
        The read power in mW.

    Example::

        mnsim_crossbar_read_power_mw(256, 256, 0.15, 1e6, 1e4)  # 4.97 mW
    """
    resistance = r_hrs_ohm * r_lrs_ohm / (0.67 * r_lrs_ohm + 0.33 * r_hrs_ohm)
    voltage_squared = 0.1 * read_voltage_v**2
    return rows * columns * voltage_squared / resistance * 1e3


def cell_array_read_power_mw(
    rows: int, columns: int, read_voltage_v: float, r_on_ohm: float, r_off_ohm: float
) -> float:
    """Read power of a whole crossbar with every row driven and half the cells on (in mW)."""
    mean_conductance = 0.5 * (1.0 / r_on_ohm + 1.0 / r_off_ohm)
    return rows * columns * read_voltage_v**2 * mean_conductance * 1e3


# --------------------------------------------------------------------------------------------
# Presets: one table each, every constant with its source. Units are in the field names.
# --------------------------------------------------------------------------------------------

_ISAAC = "ISAAC (Shafiee et al., ISCA 2016), Table 6, 32 nm, 1.2 GHz"
_MNSIM = "MNSIM 2.0 (thu-nics/MNSIM-2.0) default SimConfig.ini"
_NEUROSIM = "DNN+NeuroSim V1.4 (neurosim/DNN_NeuroSim_V1.4) Param.cpp defaults"
_HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm"
_DDR4 = "DDR4-2400 (JEDEC JESD79-4): 19.2 GB/s per rank, tRC about 45 ns"
_DRAM_ENERGY = f"{_HOROWITZ}: DRAM 1.3-2.6 nJ per 64-bit access, low end"

PRESET_TABLES: dict[str, dict[str, tuple[Any, str]]] = {
    "isaac": {
        "technology_nm": (32, _ISAAC),
        "rows": (128, f"{_ISAAC}: 128x128 memristor arrays"),
        "columns": (128, f"{_ISAAC}: 128x128 memristor arrays"),
        "cell_bits": (2, f"{_ISAAC}: 2 bits per cell"),
        "differential_arrays": (False, "ISAAC encodes signs with a bias, not a second array"),
        "dac_bits": (1, f"{_ISAAC}: 1-bit DACs, inputs streamed one bit a cycle"),
        "parallel_rows": (128, "ISAAC drives all 128 rows of an array at once"),
        "adc_bits": (8, f"{_ISAAC}: 8-bit ADC"),
        "adc_power_mw": (2.0, f"{_ISAAC}: 16 mW for the 8 ADCs of an IMA"),
        "adc_sample_rate_gsps": (1.2, f"{_ISAAC}: 1.2 GS/s ADC (issue 5)"),
        "adc_timing": ("per_sample", "ISAAC: one conversion per sample period"),
        "columns_per_adc": (128, "ISAAC: one ADC per array serves its 128 columns"),
        "crossbar_read_power_mw": (0.3, f"{_ISAAC}: 2.4 mW for 8 arrays"),
        "crossbar_read_ns": (100.0, "ISAAC: 100 ns crossbar read cycle"),
        "dac_energy_pj": (0.417, "issue 5 figure for ISAAC's 1-bit DAC per drive"),
        "shift_add_energy_pj": (0.021, "issue 5 figure for ISAAC's shift-and-add per operation"),
        "buffer_energy_pj_per_bit": (20.45 / 256, f"{_ISAAC}: eDRAM 20.45 pJ per 256-bit access"),
        "bus_energy_pj_per_bit": (0.054, "issue 5 figure for ISAAC's on-chip bus"),
        "bus_bits_per_ns": (384 * 1.2, f"{_ISAAC}: 384-wire eDRAM-to-IMA bus at 1.2 GHz"),
        "partial_sum_bits": (16, "ISAAC: 16-bit fixed-point outputs"),
        "digital_mult_energy_pj": (0.2, f"{_HOROWITZ}: 8-bit integer multiply"),
        "digital_add_energy_pj": (0.03, f"{_HOROWITZ}: 8-bit integer add"),
        "digital_lanes": (128, "assumption: a 128-lane vector unit (one lane per array column)"),
        "digital_clock_ghz": (1.2, f"{_ISAAC}: 1.2 GHz"),
        "dram_energy_pj_per_bit": (20.0, _DRAM_ENERGY),
        "dram_rank_bits_per_ns": (153.6, _DDR4),
        "dram_ranks": (8, "assumption: 8 ranks read in parallel (RecNMP-style, ISCA 2020)"),
        "dram_latency_ns": (45.0, _DDR4),
        "crossbar_area_mm2": (0.0002 / 8, f"{_ISAAC}: 0.0002 mm2 for 8 arrays"),
        "adc_area_mm2": (0.0096 / 8, f"{_ISAAC}: 0.0096 mm2 for 8 ADCs"),
        "dac_area_mm2": (0.00017 / 1024, f"{_ISAAC}: 0.00017 mm2 for 8x128 DACs"),
        "shift_add_area_mm2": (0.00024 / 4, f"{_ISAAC}: 0.00024 mm2 for 4 shift-and-add units"),
        "buffer_area_mm2": (0.083, f"{_ISAAC}: 64 KB eDRAM tile buffer"),
        "digital_area_mm2": (0.0006 + 0.00024, f"{_ISAAC}: activation and pooling units"),
    },
    "mnsim": {
        "technology_nm": (130, f"{_MNSIM}: Device_Tech = 130"),
        "rows": (256, f"{_MNSIM}: Xbar_Size = 256,256"),
        "columns": (256, f"{_MNSIM}: Xbar_Size = 256,256"),
        "cell_bits": (1, f"{_MNSIM}: Device_Level = 2 (1 bit per cell)"),
        "differential_arrays": (True, f"{_MNSIM}: Xbar_Polarity = 2 (positive and negative)"),
        "dac_bits": (1, f"{_MNSIM}: DAC_Choice = 1 (1-bit DAC)"),
        "parallel_rows": (256, f"{_MNSIM}: Subarray_Size = 256 rows read together"),
        "adc_bits": (6, "MNSIM 2.0 ADC.py choice 4: 6-bit 1 GS/s SAR ADC"),
        "adc_power_mw": (1.26, "MNSIM 2.0 ADC.py choice 4: 1.26 mW"),
        "adc_sample_rate_gsps": (1.0, "MNSIM 2.0 ADC.py choice 4: 1 GS/s"),
        "adc_timing": ("sar", "MNSIM 2.0 ADC.py: latency = (bits + 2) / sample rate"),
        "columns_per_adc": (2, f"{_MNSIM}: ADC_Num = 128 per 256-column subarray"),
        "crossbar_read_power_mw": (
            mnsim_crossbar_read_power_mw(256, 256, 0.15, 1e6, 1e4),
            f"{_MNSIM} (Read_Voltage 0.15 V, Device_Resistance 1e6/1e4) with Device.py's model",
        ),
        "crossbar_read_ns": (3.16, f"{_MNSIM}: Read_Latency = 3.16 ns"),
        "dac_energy_pj": (0.0039, "MNSIM 2.0 DAC.py choice 1: 0.0039 mW at 1 GS/s"),
        "shift_add_energy_pj": (0.05, f"{_HOROWITZ}: 16-bit add, between 8-bit and 32-bit"),
        "buffer_energy_pj_per_bit": (20.0 / 64, f"{_HOROWITZ}: 32 KB SRAM, 20 pJ per 64 bits"),
        "bus_energy_pj_per_bit": (0.054, "assumption: ISAAC's bus energy"),
        "bus_bits_per_ns": (1024.0, f"{_MNSIM}: Intra_Tile_Bandwidth = 1024 Gbps"),
        "partial_sum_bits": (16, "assumption: 16-bit partial sums as in ISAAC"),
        "digital_mult_energy_pj": (0.2, f"{_HOROWITZ}: 8-bit integer multiply"),
        "digital_add_energy_pj": (0.03, f"{_HOROWITZ}: 8-bit integer add"),
        "digital_lanes": (64, f"{_MNSIM}: Pooling_unit_num = 64 digital units per tile"),
        "digital_clock_ghz": (0.5, f"{_MNSIM}: Digital_Frequency = 500 MHz"),
        "dram_energy_pj_per_bit": (20.0, _DRAM_ENERGY),
        "dram_rank_bits_per_ns": (153.6, _DDR4),
        "dram_ranks": (8, "assumption: 8 ranks read in parallel (RecNMP-style, ISCA 2020)"),
        "dram_latency_ns": (45.0, _DDR4),
        "crossbar_area_mm2": (256 * 256 * 1.44e-6, f"{_MNSIM}: Device_Area = 1.44 um2 a cell"),
        "adc_area_mm2": (580e-6, "MNSIM 2.0 ADC.py choice 4: 580 um2"),
        "dac_area_mm2": (0.166e-6, "MNSIM 2.0 DAC.py choice 1: 0.166 um2"),
        "shift_add_area_mm2": (0.00024 / 4, "assumption: ISAAC's shift-and-add unit"),
        "buffer_area_mm2": (82032e-6, "MNSIM 2.0 Buffer.py: SRAM buffer 82032 um2"),
        "digital_area_mm2": (0.0006 + 0.00024, "assumption: ISAAC's activation and pooling"),
    },
    "neurosim": {
        "technology_nm": (22, f"{_NEUROSIM}: technode 22 (issue 5)"),
        "rows": (128, f"{_NEUROSIM}: numRowSubArray = 128"),
        "columns": (128, f"{_NEUROSIM}: numColSubArray = 128"),
        "cell_bits": (1, f"{_NEUROSIM}: cellBit = 1"),
        "differential_arrays": (False, "NeuroSim subtracts a shared reference column instead"),
        "dac_bits": (1, "NeuroSim drives word lines with one input bit a cycle"),
        "parallel_rows": (128, f"{_NEUROSIM}: numRowParallel = numRowSubArray"),
        "adc_bits": (5, "issue 5: 5-bit ADC (NeuroSim levelOutput = 32)"),
        "adc_power_mw": (
            1.6,
            "assumption: Walden figure of merit 50 fJ/step (compact column ADCs, Murmann ADC "
            "survey range) x 2^5 steps = 1.6 pJ a conversion at 1 GS/s",
        ),
        "adc_sample_rate_gsps": (1.0, f"{_NEUROSIM}: clkFreq = 1 GHz"),
        "adc_timing": ("per_sample", "NeuroSim multi-level sense amplifier: one clock"),
        "columns_per_adc": (8, f"{_NEUROSIM}: numColMuxed = 8"),
        "crossbar_read_power_mw": (
            cell_array_read_power_mw(128, 128, 0.5, 100e3, 1.7e6),
            f"{_NEUROSIM}: readVoltage 0.5 V, resistanceOn 100 kOhm, resistanceOff 1.7 MOhm, "
            "half the cells on",
        ),
        "crossbar_read_ns": (10.0, f"{_NEUROSIM}: readPulseWidth = 10 ns"),
        "dac_energy_pj": (0.039, "MNSIM 2.0 DAC.py 1-bit 0.0039 mW over NeuroSim's 10 ns pulse"),
        "shift_add_energy_pj": (0.05, f"{_HOROWITZ}: 16-bit add, between 8-bit and 32-bit"),
        "buffer_energy_pj_per_bit": (20.0 / 64, f"{_HOROWITZ}: 32 KB SRAM, 20 pJ per 64 bits"),
        "bus_energy_pj_per_bit": (0.054, "assumption: ISAAC's bus energy"),
        "bus_bits_per_ns": (2048.0, f"{_NEUROSIM}: maxGlobalBusWidth 2048 at 1 GHz"),
        "partial_sum_bits": (16, "assumption: 16-bit partial sums as in ISAAC"),
        "digital_mult_energy_pj": (0.2, f"{_HOROWITZ}: 8-bit integer multiply"),
        "digital_add_energy_pj": (0.03, f"{_HOROWITZ}: 8-bit integer add"),
        "digital_lanes": (128, "assumption: a 128-lane vector unit (one lane per array column)"),
        "digital_clock_ghz": (1.0, f"{_NEUROSIM}: clkFreq = 1 GHz"),
        "dram_energy_pj_per_bit": (20.0, _DRAM_ENERGY),
        "dram_rank_bits_per_ns": (153.6, _DDR4),
        "dram_ranks": (8, "assumption: 8 ranks read in parallel (RecNMP-style, ISCA 2020)"),
        "dram_latency_ns": (45.0, _DDR4),
        "crossbar_area_mm2": (
            128 * 128 * 48 * (40e-6) ** 2,
            f"{_NEUROSIM}: 1T1R cell 4F x 12F, F = wire width 40 nm at 22 nm",
        ),
        "adc_area_mm2": (580e-6, "assumption: MNSIM 2.0's 6-bit SAR ADC area, 580 um2"),
        "dac_area_mm2": (0.166e-6, "assumption: MNSIM 2.0's 1-bit DAC area, 0.166 um2"),
        "shift_add_area_mm2": (0.00024 / 4, "assumption: ISAAC's shift-and-add unit"),
        "buffer_area_mm2": (0.083, "assumption: ISAAC's 64 KB tile buffer"),
        "digital_area_mm2": (0.0006 + 0.00024, "assumption: ISAAC's activation and pooling"),
    },
}


@dataclass(frozen=True)
class PIMHardware:
    """A ReRAM crossbar accelerator, described by the constants its cost is computed from.

    Build one with :meth:`preset` (``"isaac"``, ``"mnsim"``, ``"neurosim"``), from a mapping or
    YAML file with :meth:`from_mapping` / :meth:`from_yaml` (a ``base`` key names the preset to
    start from), or change a field with :func:`dataclasses.replace`. Units are in the names:
    ``_pj`` picojoules, ``_ns`` nanoseconds, ``_mw`` milliwatts, ``_mm2`` square millimetres.

    Args:
        name: a label for reports.
        technology_nm: process node (for reports only).
        rows: R, rows (word lines) of one crossbar.
        columns: C, columns (bit lines) of one crossbar.
        cell_bits: c, bits stored in one cell.
        differential_arrays: positive and negative weights in separate arrays (doubles slices).
        dac_bits: bits one DAC drives per cycle; inputs take ``ceil(A / dac_bits)`` cycles.
        parallel_rows: rows switched on in one read; a crossbar needs
            ``ceil(rows / parallel_rows)`` reads per input cycle.
        adc_bits: ADC resolution (for reports; the energy is given by power and timing).
        adc_power_mw: power of one ADC while converting.
        adc_sample_rate_gsps: sample rate of one ADC.
        adc_timing: ``"per_sample"``: a conversion takes one sample period; ``"sar"``: it takes
            ``adc_bits + 2`` periods (MNSIM's SAR model).
        columns_per_adc: columns sharing one ADC, converted one after another.
        crossbar_read_power_mw: power of one crossbar with all rows driven.
        crossbar_read_ns: duration of one crossbar read.
        dac_energy_pj: energy of one DAC driving one row for one cycle.
        shift_add_energy_pj: energy of one shift-and-add of a digitized partial sum.
        buffer_energy_pj_per_bit: energy per bit read from or written to the on-chip buffer.
        bus_energy_pj_per_bit: energy per bit moved over the on-chip bus.
        bus_bits_per_ns: bandwidth of the on-chip bus.
        partial_sum_bits: width of partial sums moved between crossbars.
        digital_mult_energy_pj: energy of an 8-bit multiply on the digital unit (scaled by
            ``(bits / 8)^2`` for other widths).
        digital_add_energy_pj: energy of an 8-bit add or element-wise op (scaled by ``bits / 8``).
        digital_lanes: operations the digital unit does per clock.
        digital_clock_ghz: clock of the digital unit.
        dram_energy_pj_per_bit: DRAM read energy per bit (near-memory embeddings).
        dram_rank_bits_per_ns: bandwidth of one DRAM rank.
        dram_ranks: ranks read in parallel by the near-memory engine.
        dram_latency_ns: latency of the first DRAM access.
        crossbar_area_mm2: area of one array.
        adc_area_mm2: area of one ADC.
        dac_area_mm2: area of one DAC (one per row).
        shift_add_area_mm2: area of one shift-and-add unit (one per ADC).
        buffer_area_mm2: area of the on-chip buffer (counted once).
        digital_area_mm2: area of the digital unit (counted once).
        sources: where each constant comes from (field name to citation).

    Example::

        hw = PIMHardware.preset("isaac")
        hw.adc_energy_pj  # 1.667
        six_bit = dataclasses.replace(hw, adc_bits=6)
    """

    name: str = "custom"
    technology_nm: int = 32
    rows: int = 128
    columns: int = 128
    cell_bits: int = 2
    differential_arrays: bool = False
    dac_bits: int = 1
    parallel_rows: int = 128
    adc_bits: int = 8
    adc_power_mw: float = 2.0
    adc_sample_rate_gsps: float = 1.2
    adc_timing: Literal["per_sample", "sar"] = "per_sample"
    columns_per_adc: int = 128
    crossbar_read_power_mw: float = 0.3
    crossbar_read_ns: float = 100.0
    dac_energy_pj: float = 0.417
    shift_add_energy_pj: float = 0.021
    buffer_energy_pj_per_bit: float = 20.45 / 256
    bus_energy_pj_per_bit: float = 0.054
    bus_bits_per_ns: float = 460.8
    partial_sum_bits: int = 16
    digital_mult_energy_pj: float = 0.2
    digital_add_energy_pj: float = 0.03
    digital_lanes: int = 128
    digital_clock_ghz: float = 1.2
    dram_energy_pj_per_bit: float = 20.0
    dram_rank_bits_per_ns: float = 153.6
    dram_ranks: int = 8
    dram_latency_ns: float = 45.0
    crossbar_area_mm2: float = 0.0002 / 8
    adc_area_mm2: float = 0.0096 / 8
    dac_area_mm2: float = 0.00017 / 1024
    shift_add_area_mm2: float = 0.00024 / 4
    buffer_area_mm2: float = 0.083
    digital_area_mm2: float = 0.00084
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def validate(self) -> None:
        """Raises ``ValueError`` naming the first field out of range."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if value < 0 or (value == 0 and f.name in _MUST_BE_POSITIVE):
                raise ValueError(
                    f"{f.name}: must be {'> 0' if value == 0 else '>= 0'}, got {value}"
                )
        if self.parallel_rows > self.rows:
            raise ValueError(f"parallel_rows: {self.parallel_rows} exceeds rows ({self.rows})")
        if self.columns_per_adc > self.columns:
            raise ValueError(
                f"columns_per_adc: {self.columns_per_adc} exceeds columns ({self.columns})"
            )
        if self.adc_timing not in ("per_sample", "sar"):
            raise ValueError(f"adc_timing: {self.adc_timing!r} is not 'per_sample' or 'sar'")

    def __post_init__(self) -> None:
        self.validate()

    # Derived unit costs ----------------------------------------------------------------------

    @property
    def adc_conversion_ns(self) -> float:
        """Time of one conversion: one sample period, or ``bits + 2`` periods for a SAR ADC."""
        periods = self.adc_bits + 2 if self.adc_timing == "sar" else 1
        return periods / self.adc_sample_rate_gsps

    @property
    def adc_energy_pj(self) -> float:
        """Energy of one conversion: power x conversion time (mW x ns = pJ)."""
        return self.adc_power_mw * self.adc_conversion_ns

    @property
    def crossbar_read_energy_pj(self) -> float:
        """Energy of one read of a whole crossbar with all rows driven."""
        return self.crossbar_read_power_mw * self.crossbar_read_ns

    @property
    def read_step_ns(self) -> float:
        """One read step: the array read overlaps the conversions of the previous read."""
        return max(self.crossbar_read_ns, self.columns_per_adc * self.adc_conversion_ns)

    @property
    def adcs_per_crossbar(self) -> int:
        return -(-self.columns // self.columns_per_adc)

    @property
    def area_per_crossbar_mm2(self) -> float:
        """One array with its DACs (one per row), ADCs and shift-and-add units."""
        adcs = self.adcs_per_crossbar
        return (
            self.crossbar_area_mm2
            + adcs * (self.adc_area_mm2 + self.shift_add_area_mm2)
            + self.rows * self.dac_area_mm2
        )

    def weight_slices(self, weight_bits: int) -> int:
        """Columns one weight takes: ``ceil(W / c)``, doubled with differential arrays."""
        slices = -(-weight_bits // self.cell_bits)
        return 2 * slices if self.differential_arrays else slices

    def digital_mac_energy_pj(self, bits: int) -> float:
        scale = bits / 8.0
        return self.digital_mult_energy_pj * scale * scale + self.digital_add_energy_pj * scale

    def digital_op_energy_pj(self, bits: int) -> float:
        return self.digital_add_energy_pj * bits / 8.0

    # Construction ----------------------------------------------------------------------------

    @classmethod
    def preset(cls, name: str) -> PIMHardware:
        """One of the cited presets: ``"isaac"``, ``"mnsim"`` or ``"neurosim"``."""
        if name not in PRESET_TABLES:
            raise ConfigError(f"hardware: unknown preset {name!r}; choose one of {PRESET_NAMES}")
        table = PRESET_TABLES[name]
        values = {key: value for key, (value, _) in table.items()}
        sources = {key: source for key, (_, source) in table.items()}
        return cls(name=name, sources=sources, **values)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "hardware") -> PIMHardware:
        """Builds hardware from a mapping; ``base: isaac`` starts from a preset.

        Unknown fields, wrong types and values out of range raise :class:`ConfigError` naming
        the field, for example ``hardware.adc_bits: expected an integer, got 'x'``.

        Example::

            PIMHardware.from_mapping({"base": "mnsim", "parallel_rows": 64})
        """
        data = dict(data)
        base_name = data.pop("base", None)
        if base_name is None:
            base = cls()
        elif isinstance(base_name, str):
            try:
                base = cls.preset(base_name)
            except ConfigError as e:
                raise ConfigError(f"{where}.base: {e}") from e
        else:
            raise ConfigError(f"{where}.base: expected a preset name, got {base_name!r}")
        merged = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        merged["sources"] = dict(base.sources)
        for key in data:
            merged["sources"].pop(key, None)
        merged.update(data)
        if "name" not in data and base_name is not None and len(data) > 0:
            merged["name"] = f"{base_name}+custom"
        return from_mapping(cls, merged, where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> PIMHardware:
        """Reads hardware from a YAML file (same keys as :meth:`from_mapping`)."""
        return cls.from_mapping(load_yaml(path), where=str(path))

    @classmethod
    def resolve(cls, spec: str | Path | Mapping[str, Any] | PIMHardware) -> PIMHardware:
        """A preset name, a YAML path, a mapping or hardware itself, as the CLI receives it."""
        if isinstance(spec, PIMHardware):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_mapping(spec)
        if str(spec) in PRESET_TABLES:
            return cls.preset(str(spec))
        return cls.from_yaml(spec)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_MUST_BE_POSITIVE = frozenset(
    {
        "rows",
        "columns",
        "cell_bits",
        "dac_bits",
        "parallel_rows",
        "adc_bits",
        "adc_sample_rate_gsps",
        "columns_per_adc",
        "bus_bits_per_ns",
        "digital_lanes",
        "digital_clock_ghz",
        "dram_rank_bits_per_ns",
        "dram_ranks",
    }
)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The cost model
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------------------------


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

        python -c "from torchrec_nas.hardware.pim import benchmark_estimator as b; print(b())"
    """
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


if __name__ == "__main__":
    print(benchmark_estimator())
