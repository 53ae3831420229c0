"""Energy, latency and area of a model on Processing-In-Memory (ReRAM crossbar) hardware.

- :mod:`.presets`: the ISAAC, MNSIM 2.0 and NeuroSim constants with their sources;
- :mod:`.hardware`: :class:`PIMHardware`, built from a preset, a mapping or a YAML file;
- :mod:`.cost_model`: :class:`PIMCostModel` (the model itself is documented there) and
  :func:`estimate_cost`;
- :mod:`.report`: :class:`CostReport` and :class:`LayerCost`, what an estimate returns;
- :mod:`.formatting`: Markdown tables of reports and hardware;
- :mod:`.benchmark`: how fast an estimate is (``python -m torchrec_nas.hardware.pim``).

Example::

    from torchrec_nas.hardware.layers import LinearLayer
    from torchrec_nas.hardware.pim import PIMCostModel, PIMHardware, format_cost_table

    model = PIMCostModel(PIMHardware.preset("isaac"))
    report = model.estimate([LinearLayer("fc", in_features=512, out_features=256)])
    print(format_cost_table(report))
"""

from torchrec_nas.hardware.pim.benchmark import benchmark_estimator, example_layers
from torchrec_nas.hardware.pim.cost_model import (
    EMBEDDING_MODES,
    EmbeddingMode,
    PIMCostModel,
    estimate_cost,
)
from torchrec_nas.hardware.pim.formatting import format_cost_table, format_hardware_table
from torchrec_nas.hardware.pim.hardware import PIMHardware
from torchrec_nas.hardware.pim.presets import (
    PRESET_NAMES,
    PRESET_TABLES,
    cell_array_read_power_mw,
    mnsim_crossbar_read_power_mw,
)
from torchrec_nas.hardware.pim.report import CostReport, LayerCost, LayerKind

__all__ = [
    "EMBEDDING_MODES",
    "PRESET_NAMES",
    "PRESET_TABLES",
    "CostReport",
    "EmbeddingMode",
    "LayerCost",
    "LayerKind",
    "PIMCostModel",
    "PIMHardware",
    "benchmark_estimator",
    "cell_array_read_power_mw",
    "estimate_cost",
    "example_layers",
    "format_cost_table",
    "format_hardware_table",
    "mnsim_crossbar_read_power_mw",
]
