"""from_mapping: every value checked against its field's type, errors naming file and field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError, from_mapping


@dataclasses.dataclass
class _Optimizer:
    lr: float = 0.1
    clip: float | None = None
    grid: list[float] = dataclasses.field(default_factory=lambda: [0.1])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "nan", "1e999"])
def test_non_finite_numbers_are_rejected(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^opt\.lr: expected a finite number"):
        from_mapping(_Optimizer, {"lr": value}, "opt")
    with pytest.raises(ConfigError, match=r"^opt\.clip: expected a finite number"):
        from_mapping(_Optimizer, {"clip": value}, "opt")
    with pytest.raises(ConfigError, match=r"^opt\.grid\[1\]: expected a finite number"):
        from_mapping(_Optimizer, {"grid": [0.1, value]}, "opt")


def test_finite_numbers_and_numeric_strings_still_load() -> None:
    opt = from_mapping(_Optimizer, {"lr": "1e-2", "clip": 5, "grid": [1, 0.5]})
    assert opt == _Optimizer(lr=0.01, clip=5.0, grid=[1.0, 0.5])
    with pytest.raises(ConfigError, match="lr: expected a number, got True"):
        from_mapping(_Optimizer, {"lr": True})


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf", ".NaN"])
def test_yaml_nan_learning_rate_is_rejected_at_load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"supernet:\n  optimizer: {{lr: {text}}}\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: supernet\.optimizer\.lr: expected a finite"):
        Config.load(path)
