"""The description of a ReRAM crossbar accelerator that the PIM cost model prices layers on."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torchrec_nas.config_utils import ConfigError, from_mapping, load_yaml
from torchrec_nas.hardware.pim.presets import PRESET_NAMES, PRESET_TABLES

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
        """One of the cited presets: ``"isaac"``, ``"mnsim"`` or ``"neurosim"``.

        Raises:
            ConfigError: ``name`` is not a preset (the message lists the presets).
        """
        if name not in PRESET_TABLES:
            raise ConfigError(
                f"hardware: unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}"
            )
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
        """A preset name, a YAML path, a mapping or hardware itself, as the CLI receives it.

        Raises:
            ConfigError: ``spec`` names neither a preset nor an existing file (the message lists
                the presets), or the file or mapping does not describe valid hardware.

        Example::

            PIMHardware.resolve("isaac")
            PIMHardware.resolve("configs/my_chip.yaml")
        """
        if isinstance(spec, PIMHardware):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_mapping(spec)
        if str(spec) in PRESET_TABLES:
            return cls.preset(str(spec))
        if not Path(spec).is_file():
            raise ConfigError(
                f"hardware: {str(spec)!r} is neither a preset ({', '.join(PRESET_NAMES)}) "
                "nor a YAML file"
            )
        return cls.from_yaml(spec)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
