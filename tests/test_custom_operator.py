"""A user operator, defined outside the package, in a space, a supernet, a subnet and FLOPs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import custom_operator  # noqa: E402

from torchrec_nas.modules.operators import known_operators, operator_spec  # noqa: E402


@pytest.mark.parametrize("name", ["low_rank", "custom_operator:LowRankOperator"])
def test_custom_operator_example_runs(name: str) -> None:
    # The example checks that supernet and subnet agree and that its FLOPs records match
    # PyTorch's counter.
    custom_operator.main(name)
    assert operator_spec(name) == custom_operator.LowRankOperator.spec
    assert "low_rank" in known_operators("dense")
