"""PIM hardware presets: ISAAC, MNSIM 2.0 and NeuroSim, every constant with its source.

Units are in the field names (``_pj`` picojoules, ``_ns`` nanoseconds, ``_mw`` milliwatts,
``_mm2`` square millimetres); :class:`~torchrec_nas.hardware.pim.hardware.PIMHardware` is built
from one of these tables by :meth:`~torchrec_nas.hardware.pim.hardware.PIMHardware.preset`.
"""

from __future__ import annotations

from typing import Any

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
