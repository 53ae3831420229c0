"""Pareto front, 2-D hypervolume and plot, on hand-made points."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchrec_nas.search.pareto import (
    hypervolume_2d,
    objective_value,
    pareto_front,
    pareto_mask,
    plot_pareto,
)

OBJECTIVES = ["logloss", "pim_energy"]


def _p(name: str, logloss: float, energy: float) -> dict[str, object]:
    return {"name": name, "logloss": logloss, "pim_energy": energy}


def test_front_by_hand() -> None:
    points = [
        _p("a", 0.44, 5.0),  # best logloss
        _p("b", 0.45, 3.0),  # front
        _p("c", 0.46, 4.0),  # dominated by b
        _p("d", 0.47, 1.0),  # cheapest
        _p("e", 0.47, 2.0),  # dominated by d (same logloss, more energy)
    ]
    assert [p["name"] for p in pareto_front(points, OBJECTIVES)] == ["a", "b", "d"]
    assert pareto_mask(points, OBJECTIVES) == [True, True, False, True, False]


def test_ties_are_all_kept_and_order_is_stable() -> None:
    points = [_p("x", 0.5, 2.0), _p("y", 0.4, 3.0), _p("x2", 0.5, 2.0), _p("z", 0.6, 2.0)]
    assert [p["name"] for p in pareto_front(points, OBJECTIVES)] == ["x", "y", "x2"]


def test_maximize_and_missing_values() -> None:
    points = [
        {"auc": 0.80, "flops": 1e6},
        {"auc": 0.81, "flops": 2e6},
        {"auc": 0.79, "flops": 3e6},  # worse auc and more flops than the first
        {"flops": 1.0},  # no auc: left out
        {"auc": math.nan, "flops": 0.5},
    ]
    front = pareto_front(points, ["auc", "flops"], minimize=[False, True])
    assert front == points[:2]
    with pytest.raises(ValueError, match="minimize"):
        pareto_front(points, ["auc", "flops"], minimize=[True])
    assert pareto_front([], OBJECTIVES) == []


@dataclass
class _Evaluation:
    metrics: dict[str, float]
    costs: dict[str, float] = field(default_factory=dict)


def test_reads_history_objects_and_dicts() -> None:
    evaluation = _Evaluation(metrics={"logloss": 0.45}, costs={"pim_energy": 7.0})
    line = {"metrics": {"logloss": 0.44}, "costs": {"pim_energy": 9.0}}
    assert objective_value(evaluation, "pim_energy") == 7.0
    assert objective_value(line, "logloss") == 0.44
    assert math.isnan(objective_value(line, "auc"))
    assert pareto_front([evaluation, line], OBJECTIVES) == [evaluation, line]


def test_hypervolume_by_hand() -> None:
    points = [{"a": 1, "b": 2}, {"a": 2, "b": 1}, {"a": 2.5, "b": 2.5}]
    # Boxes to the reference (3, 3): [1,3]x[2,3] and [2,3]x[1,3]; union = 2 + 2 - 1 = 3.
    assert hypervolume_2d(points, ["a", "b"], reference=[3, 3]) == pytest.approx(3.0)
    # Maximizing b with reference b = 0: boxes [1,3]x[0,2] and [2,3]x[0,1] -> union 4.
    assert hypervolume_2d(
        points[:2], ["a", "b"], reference=[3, 0], minimize=[True, False]
    ) == pytest.approx(4.0)
    assert hypervolume_2d([{"a": 4, "b": 4}], ["a", "b"], reference=[3, 3]) == 0.0


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 20)),
        min_size=1,
        max_size=30,
    )
)
def test_front_properties(pairs: list[tuple[int, int]]) -> None:
    points = [{"x": float(a), "y": float(b)} for a, b in pairs]
    front = pareto_front(points, ["x", "y"])
    assert front
    for p in points:
        dominated = any(
            q["x"] <= p["x"] and q["y"] <= p["y"] and (q["x"] < p["x"] or q["y"] < p["y"])
            for q in points
        )
        assert (p in front) == (not dominated)
    # Adding dominated points does not change the hypervolume.
    assert hypervolume_2d(points, ["x", "y"], [21, 21]) == pytest.approx(
        hypervolume_2d(front, ["x", "y"], [21, 21])
    )


def test_plot_pareto_writes_png(tmp_path: Path) -> None:
    records = [
        {"metrics": {"logloss": 0.44 + 0.001 * i}, "costs": {"pim_energy": 1e3 * (30 - i)}}
        for i in range(30)
    ] + [{"metrics": {"logloss": 0.5}, "costs": {"pim_energy": 5e4}}]
    out = tmp_path / "plots" / "pareto.png"
    front = plot_pareto(records, x="pim_energy", y="logloss", out_png=out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(front) == 30  # every point of the diagonal trade-off, not the dominated one
