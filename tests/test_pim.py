"""PIM cost model: published figures, hand-computed counts, properties and configs."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchrec_nas.config_utils import ConfigError
from torchrec_nas.hardware.layers import ActivationOp, EmbeddingLookup, LinearLayer
from torchrec_nas.hardware.pim import (
    PRESET_NAMES,
    PRESET_TABLES,
    CostReport,
    PIMCostModel,
    PIMHardware,
    benchmark_estimator,
    estimate_cost,
    example_layers,
    format_cost_table,
    format_hardware_table,
    mnsim_crossbar_read_power_mw,
)

# ---------------------------------------------------------------------------------------------
# Published figures
# ---------------------------------------------------------------------------------------------


def test_isaac_adc_energy_per_conversion() -> None:
    # ISAAC Table 6: 16 mW for 8 ADCs at 1.2 GS/s -> 16 / (8 * 1.2) = 1.667 pJ a conversion.
    assert PIMHardware.preset("isaac").adc_energy_pj == pytest.approx(16 / (8 * 1.2), rel=1e-9)
    assert PIMHardware.preset("isaac").adc_energy_pj == pytest.approx(1.667, abs=1e-3)


def test_mnsim_adc_conversion_energy() -> None:
    # MNSIM 2.0 ADC.py: latency (6 + 2) / 1 GS/s = 8 ns; energy 1.26 mW x 8 ns = 10.08 pJ.
    hw = PIMHardware.preset("mnsim")
    assert hw.adc_conversion_ns == pytest.approx(8.0)
    assert hw.adc_energy_pj == pytest.approx(10.08, rel=1e-9)


def test_mnsim_crossbar_read_energy() -> None:
    # MNSIM 2.0 default: 256x256, V_read 0.15 V, R 1e6 / 1e4 ohm, 3.16 ns -> 15.7 pJ per read.
    hw = PIMHardware.preset("mnsim")
    assert hw.crossbar_read_energy_pj == pytest.approx(15.7, abs=0.05)
    assert mnsim_crossbar_read_power_mw(256, 256, 0.15, 1e6, 1e4) * 3.16 == pytest.approx(
        15.69, abs=0.01
    )


def test_neurosim_parallel_rows_trend() -> None:
    # NeuroSim: reading 64 rows at once instead of 32 raises TOPS/W by about 1.8x.
    base = PIMHardware.preset("neurosim")
    layer = LinearLayer("fc", in_features=512, out_features=512, weight_bits=8, activation_bits=8)

    def tops_per_watt(parallel_rows: int) -> float:
        hw = dataclasses.replace(base, parallel_rows=parallel_rows)
        cost = PIMCostModel(hw).linear_cost(layer)
        return 2 * layer.macs / cost.energy_pj  # operations per pJ == TOPS/W

    ratio = tops_per_watt(64) / tops_per_watt(32)
    assert ratio == pytest.approx(1.8, rel=0.2)


# ---------------------------------------------------------------------------------------------
# Hand-computed counts
# ---------------------------------------------------------------------------------------------


def test_isaac_small_layer_counts_by_hand() -> None:
    hw = PIMHardware.preset("isaac")
    layer = LinearLayer("fc", in_features=200, out_features=100, weight_bits=8, activation_bits=8)
    cost = PIMCostModel(hw).linear_cost(layer)
    # slices S = ceil(8 bits / 2 bits a cell) = 4 (ISAAC keeps signs without a second array)
    # occupied columns N*S = 400; row tiles ceil(200/128) = 2; column tiles ceil(400/128) = 4
    assert cost.crossbars == 2 * 4
    # input cycles ceil(8 / 1-bit DAC) = 8; row groups: 128 rows -> 1, last 72 rows -> 1; sum 2
    # crossbar reads = cycles 8 x row groups 2 x column tiles 4 = 64
    assert cost.crossbar_reads == 64
    # ADC conversions = cycles 8 x row groups 2 x occupied columns 400 = 6400
    assert cost.adc_conversions == 6400
    # DAC drives = cycles 8 x rows 200 x column tiles 4 = 6400
    assert cost.dac_drives == 6400
    # shift-adds = one per conversion 6400 + adding the 2 row tiles' outputs 100 x 1 = 6500
    assert cost.shift_adds == 6500
    # bits moved: inputs 200 x 8 bits to 4 column tiles = 6400, outputs 100 x 8 = 800,
    # partial sums 100 x 16 bits = 1600 -> 8800
    assert cost.bits_moved == 8800
    breakdown = cost.energy_breakdown_pj
    assert breakdown["adc"] == pytest.approx(6400 * 16 / 9.6)  # 10,666.7 pJ
    assert breakdown["dac"] == pytest.approx(6400 * 0.417)  # 2,668.8 pJ
    # array: 8 cycles x 200 driven rows x 4 column tiles / 128 rows = 50 full reads x 30 pJ
    assert breakdown["array"] == pytest.approx(50 * 0.3 * 100)
    assert breakdown["shift_add"] == pytest.approx(6500 * 0.021)
    # buffer: (200 + 100) x 8 bits at 20.45 pJ / 256 bits
    assert breakdown["buffer"] == pytest.approx(2400 * 20.45 / 256)
    assert breakdown["bus"] == pytest.approx(8800 * 0.054)
    assert cost.energy_pj == pytest.approx(sum(breakdown.values()))
    # latency: 8 cycles x 1 group x max(100 ns read, 128 columns x 1/1.2 ns) = 853.3 ns,
    # + one adder level at 1.2 GHz + 8800 bits / 460.8 bits a ns
    assert cost.latency_ns == pytest.approx(8 * 128 / 1.2 + 1 / 1.2 + 8800 / 460.8)
    # area: 8 crossbars x (array + 1 ADC + 1 shift-add + 128 DACs)
    per_crossbar = 0.0002 / 8 + 0.0096 / 8 + 0.00024 / 4 + 128 * 0.00017 / 1024
    assert cost.area_mm2 == pytest.approx(8 * per_crossbar)


def test_mnsim_differential_arrays_and_row_groups_by_hand() -> None:
    hw = PIMHardware.preset("mnsim")
    layer = LinearLayer("fc", in_features=300, out_features=10, weight_bits=4, activation_bits=4)
    cost = PIMCostModel(hw).linear_cost(layer)
    # S = ceil(4 / 1) x 2 (positive and negative arrays) = 8 -> 80 columns, 1 column tile
    # row tiles ceil(300 / 256) = 2; 256 parallel rows -> 1 group per tile
    assert cost.crossbars == 2
    # conversions = 4 input cycles x 2 groups x 80 columns
    assert cost.adc_conversions == 4 * 2 * 80
    assert cost.crossbar_reads == 4 * 2 * 1
    # With 64 parallel rows: 256 rows -> 4 groups, 44 rows -> 1 group -> 5 groups.
    fewer_rows = PIMCostModel(dataclasses.replace(hw, parallel_rows=64)).linear_cost(layer)
    assert fewer_rows.adc_conversions == 4 * 5 * 80


def test_vectors_per_sample_multiplies_work_not_crossbars() -> None:
    model = PIMCostModel(PIMHardware.preset("isaac"))
    one = model.linear_cost(LinearLayer("efc", 52, 48, vectors_per_sample=1))
    sixteen = model.linear_cost(LinearLayer("efc", 52, 48, vectors_per_sample=16))
    assert sixteen.crossbars == one.crossbars
    assert sixteen.adc_conversions == 16 * one.adc_conversions
    assert sixteen.energy_pj == pytest.approx(16 * one.energy_pj)


def test_activation_op_on_digital_unit() -> None:
    hw = PIMHardware.preset("isaac")
    cost = PIMCostModel(hw).activation_cost(ActivationOp("dot", macs=1000, elementwise=100))
    # 8-bit MAC = multiply 0.2 pJ + add 0.03 pJ; element-wise op = add 0.03 pJ (Horowitz)
    assert cost.energy_pj == pytest.approx(1000 * 0.23 + 100 * 0.03)
    assert cost.latency_ns == pytest.approx(1100 / (128 * 1.2))
    assert cost.crossbars == 0


def test_embedding_near_memory_by_hand() -> None:
    hw = PIMHardware.preset("isaac")
    lookup = EmbeddingLookup("t", num_embeddings=1000, embedding_dim=16, lookups_per_sample=4)
    cost = PIMCostModel(hw).embedding_near_memory_cost(lookup)
    # DRAM: 4 rows x 16 x 32 bits = 2048 bits at 20 pJ/bit; 3 x 16 pooling adds (32-bit);
    # pooled 16 x 32 bits over the bus
    expected = 2048 * 20.0 + 48 * 0.03 * 4 + 512 * 0.054
    assert cost.energy_pj == pytest.approx(expected)
    assert cost.latency_ns == pytest.approx(45.0 + 2048 / (8 * 153.6) + 512 / 460.8)
    assert cost.crossbars == 0


def test_embedding_in_crossbar_by_hand() -> None:
    hw = PIMHardware.preset("isaac")
    lookup = EmbeddingLookup(
        "t", num_embeddings=1000, embedding_dim=16, lookups_per_sample=3, weight_bits=8
    )
    cost = PIMCostModel(hw).embedding_in_crossbar_cost(lookup)
    # S = 4 -> 64 columns, 1 column tile; row tiles ceil(1000 / 128) = 8 -> 8 crossbars
    assert cost.crossbars == 8
    # 3 lookups touch (at worst) 3 row tiles: one multi-hot read each
    assert cost.crossbar_reads == 3
    assert cost.adc_conversions == 3 * 64
    assert cost.dac_drives == 3
    assert cost.shift_adds == 3 * 64 + 16 * 2


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

_presets = st.sampled_from(PRESET_NAMES)


@settings(max_examples=60, deadline=None)
@given(
    preset=_presets,
    k=st.integers(1, 2048),
    n=st.integers(1, 2048),
    bits=st.integers(1, 15),
)
def test_more_bits_cost_more(preset: str, k: int, n: int, bits: int) -> None:
    model = PIMCostModel(PIMHardware.preset(preset))
    base = model.linear_cost(LinearLayer("fc", k, n, weight_bits=bits, activation_bits=bits))
    more_weight = model.linear_cost(
        LinearLayer("fc", k, n, weight_bits=bits + 1, activation_bits=bits)
    )
    more_input = model.linear_cost(
        LinearLayer("fc", k, n, weight_bits=bits, activation_bits=bits + 1)
    )
    assert more_weight.energy_pj >= base.energy_pj
    assert more_weight.crossbars >= base.crossbars
    # 1-bit DACs: every extra input bit is one more cycle.
    assert more_input.energy_pj > base.energy_pj
    assert more_input.latency_ns > base.latency_ns


@settings(max_examples=60, deadline=None)
@given(preset=_presets, k=st.integers(1, 3000), n=st.integers(1, 3000), grow=st.integers(1, 500))
def test_bigger_layer_more_crossbars(preset: str, k: int, n: int, grow: int) -> None:
    model = PIMCostModel(PIMHardware.preset(preset))
    base = model.linear_cost(LinearLayer("fc", k, n))
    wider = model.linear_cost(LinearLayer("fc", k, n + grow))
    deeper = model.linear_cost(LinearLayer("fc", k + grow, n))
    for bigger in (wider, deeper):
        assert bigger.crossbars >= base.crossbars
        assert bigger.energy_pj > base.energy_pj
        assert bigger.adc_conversions >= base.adc_conversions


def test_adc_bits_raise_mnsim_energy() -> None:
    hw = PIMHardware.preset("mnsim")
    six = PIMCostModel(hw).linear_cost(LinearLayer("fc", 256, 256))
    eight = PIMCostModel(dataclasses.replace(hw, adc_bits=8)).linear_cost(
        LinearLayer("fc", 256, 256)
    )
    assert eight.energy_pj > six.energy_pj  # SAR timing: (bits + 2) periods a conversion


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


def test_report_totals_json_and_table() -> None:
    layers = example_layers()
    report = estimate_cost(layers, "isaac", "in_crossbar")
    assert isinstance(report, CostReport)
    assert len(report.layers) == len(layers)
    assert report.energy_pj == pytest.approx(report.dense_energy_pj + report.embedding_energy_pj)
    assert report.area_mm2 > sum(layer.area_mm2 for layer in report.layers)
    data = json.loads(report.to_json())
    assert data["total"]["energy_pj"] == pytest.approx(report.energy_pj)
    assert data["embedding"]["crossbars"] > 0
    assert len(data["layers"]) == len(layers)
    table = format_cost_table(report)
    assert "**total**" in table and "**dense part**" in table and "**embedding part**" in table
    assert "block0.dense.fc" in table and "table_0" in table
    assert table.count("\n") == len(layers) + 7


def test_embedding_modes_differ() -> None:
    layers = [EmbeddingLookup("t", 10_000, 16, lookups_per_sample=2)]
    near = estimate_cost(layers, "mnsim", "near_memory")
    in_xbar = estimate_cost(layers, "mnsim", "in_crossbar")
    assert near.crossbars == 0 and in_xbar.crossbars > 0
    assert near.energy_pj != in_xbar.energy_pj
    with pytest.raises(ValueError, match="embedding_mode"):
        estimate_cost(layers, "mnsim", "on_the_moon")  # type: ignore[arg-type]


def test_benchmark_times_the_layers_it_is_given() -> None:
    layers = example_layers()
    assert len(layers) == 26 + 7 * 5 + 1
    assert sum(isinstance(layer, EmbeddingLookup) for layer in layers) == 26
    result = benchmark_estimator(repeats=5)
    assert result["layers"] == len(layers)
    assert 0 < result["ms_per_model"] <= result["ms_per_model_median"]
    few = benchmark_estimator("mnsim", layers[:3], repeats=1)
    assert few["layers"] == 3 and few["ms_per_model"] == few["ms_per_model_median"]
    with pytest.raises(ValueError, match="repeats"):
        benchmark_estimator(repeats=0)


# ---------------------------------------------------------------------------------------------
# Presets and configs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_constant_has_a_source(name: str) -> None:
    hw = PIMHardware.preset(name)
    constants = {f.name for f in dataclasses.fields(hw)} - {"name", "sources"}
    assert set(PRESET_TABLES[name]) == constants
    assert all(hw.sources[key] for key in constants)
    assert "| adc_power_mw |" in format_hardware_table(hw)


def test_from_mapping_with_base_and_errors_naming_the_field() -> None:
    hw = PIMHardware.from_mapping({"base": "mnsim", "parallel_rows": 64})
    assert hw.parallel_rows == 64 and hw.rows == 256
    assert "parallel_rows" not in hw.sources
    with pytest.raises(ConfigError, match=r"hardware\.adc_bits"):
        PIMHardware.from_mapping({"base": "isaac", "adc_bits": "x"})
    with pytest.raises(ConfigError, match="adc_bitz"):
        PIMHardware.from_mapping({"adc_bitz": 6})
    with pytest.raises(ConfigError, match="rows"):
        PIMHardware.from_mapping({"base": "isaac", "rows": 0})
    with pytest.raises(ConfigError, match="parallel_rows"):
        PIMHardware.from_mapping({"base": "isaac", "parallel_rows": 256})
    with pytest.raises(ConfigError, match=r"hardware\.base"):
        PIMHardware.from_mapping({"base": "tpu"})
    with pytest.raises(ConfigError, match="unknown preset"):
        PIMHardware.preset("tpu")


def test_unknown_hardware_lists_the_presets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'foo' is neither a preset") as e:
        PIMHardware.resolve("foo")
    assert "isaac, mnsim, neurosim" in str(e.value)
    with pytest.raises(ConfigError, match="isaac, mnsim, neurosim"):
        estimate_cost(example_layers(), str(tmp_path / "missing.yaml"))


def test_cli_estimate_with_an_unknown_preset_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchrec_nas.cli import main
    from torchrec_nas.config import Config

    config = tmp_path / "run.yaml"
    config.write_text("data: {synthetic: {rows: 100}}\n")
    arch = tmp_path / "arch.json"
    arch.write_text(Config.load(config).space.sample(random.Random(0)).to_json())
    argv = ["estimate", "--config", str(config), "--out", str(tmp_path / "out")]
    assert main([*argv, "--arch", str(arch), "--hardware", "foo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("torchrec-nas estimate: error: hardware: 'foo' is neither a preset")
    assert "(isaac, mnsim, neurosim)" in err


def test_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "hw.yaml"
    path.write_text("base: neurosim\nadc_bits: 4\n")
    hw = PIMHardware.resolve(str(path))
    assert hw.adc_bits == 4 and hw.columns_per_adc == 8
    path.write_text("base: neurosim\ncell_bits: -2\n")
    with pytest.raises(ConfigError, match="cell_bits"):
        PIMHardware.from_yaml(path)
