"""Pareto fronts of search results: the non-dominated set, its 2-D hypervolume and a plot.

A point may be a mapping (``{"logloss": 0.44, "pim_energy": 3e5}``), a mapping with nested
``"metrics"`` / ``"costs"`` (a history line), or an object with those attributes (an
:class:`~torchrec_nas.search.history.Evaluation`); :func:`objective_value` reads any of them.

Example::

    points = [{"logloss": 0.44, "pim_energy": 3.0}, {"logloss": 0.45, "pim_energy": 1.0},
              {"logloss": 0.46, "pim_energy": 2.0}]
    pareto_front(points, ["logloss", "pim_energy"])  # the first two
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def objective_value(point: Any, name: str) -> float:
    """The value of objective ``name`` of a point (NaN when the point does not have it).

    Looks in this order: ``point[name]``, ``point["metrics"][name]``, ``point["costs"][name]``
    for mappings; ``point.name``, ``point.metrics[name]``, ``point.costs[name]`` for objects.
    """
    if isinstance(point, Mapping):
        if name in point:
            return float(point[name])
        for section in ("metrics", "costs"):
            nested = point.get(section)
            if isinstance(nested, Mapping) and name in nested:
                return float(nested[name])
        return math.nan
    value = getattr(point, name, None)
    if isinstance(value, (int, float)):
        return float(value)
    for section in ("metrics", "costs"):
        nested = getattr(point, section, None)
        if isinstance(nested, Mapping) and name in nested:
            return float(nested[name])
    return math.nan


def _minimize_flags(objectives: Sequence[str], minimize: bool | Sequence[bool]) -> list[bool]:
    if isinstance(minimize, bool):
        return [minimize] * len(objectives)
    flags = list(minimize)
    if len(flags) != len(objectives):
        raise ValueError(f"minimize: {len(flags)} flags for {len(objectives)} objectives")
    return flags


def _oriented_values(
    points: Sequence[Any], objectives: Sequence[str], minimize: bool | Sequence[bool]
) -> np.ndarray:
    """An ``[n, k]`` array where smaller is better in every column (maximized ones negated)."""
    flags = _minimize_flags(objectives, minimize)
    values = np.array(
        [[objective_value(p, name) for name in objectives] for p in points], dtype=np.float64
    ).reshape(len(points), len(objectives))
    for column, is_minimized in enumerate(flags):
        if not is_minimized:
            values[:, column] = -values[:, column]
    return values


def pareto_mask(
    points: Sequence[Any], objectives: Sequence[str], minimize: bool | Sequence[bool] = True
) -> list[bool]:
    """For each point: is it on the Pareto front? (see :func:`pareto_front`)"""
    if not objectives:
        raise ValueError("objectives: give at least one objective name")
    if len(points) == 0:
        return []
    values = _oriented_values(points, objectives, minimize)
    usable = ~np.isnan(values).any(axis=1)
    candidates = values[usable]
    mask = []
    for index, row in enumerate(values):
        if not usable[index]:
            mask.append(False)
            continue
        no_worse = (candidates <= row).all(axis=1)
        better_somewhere = (candidates < row).any(axis=1)
        mask.append(not bool((no_worse & better_somewhere).any()))
    return mask


def pareto_front(
    points: Sequence[T], objectives: Sequence[str], minimize: bool | Sequence[bool] = True
) -> list[T]:
    """The non-dominated points, in their original order.

    A point dominates another if it is no worse in every objective and better in at least one.
    Points with equal objective values do not dominate each other, so ties are all kept. Points
    missing an objective (or with NaN) are left out.

    Args:
        points: mappings or objects (see :func:`objective_value`).
        objectives: objective names, for example ``["logloss", "pim_energy"]``.
        minimize: one flag for all objectives or one per objective (``False`` maximizes).

    Returns:
        The points on the front, in input order.

    Example::

        pareto_front(history, ["auc", "flops"], minimize=[False, True])
    """
    mask = pareto_mask(points, objectives, minimize)
    return [point for point, on_front in zip(points, mask) if on_front]


def hypervolume_2d(
    points: Sequence[Any],
    objectives: Sequence[str],
    reference: Sequence[float],
    minimize: bool | Sequence[bool] = True,
) -> float:
    """Area dominated by the points and bounded by ``reference`` (two objectives).

    Args:
        points: the points (need not be a front; dominated ones add nothing).
        objectives: two objective names.
        reference: the reference point, in the objectives' own units (worse than every point
            of interest; points not better than it in both objectives add nothing).
        minimize: as in :func:`pareto_front`.

    Example::

        hypervolume_2d([{"a": 1, "b": 2}, {"a": 2, "b": 1}], ["a", "b"], reference=[3, 3])  # 3
    """
    if len(objectives) != 2 or len(reference) != 2:
        raise ValueError("hypervolume_2d: needs exactly two objectives and a 2-D reference")
    flags = _minimize_flags(objectives, minimize)
    ref = np.array([r if m else -r for r, m in zip(reference, flags)], dtype=np.float64)
    values = _oriented_values(points, objectives, minimize)
    values = values[~np.isnan(values).any(axis=1)]
    values = values[(values < ref).all(axis=1)]
    if len(values) == 0:
        return 0.0
    # Sorted by x (then y), the front is where y strictly falls; the dominated area is the
    # union of the boxes [x, ref_x] x [y, ref_y] of its points.
    sorted_values = values[np.lexsort((values[:, 1], values[:, 0]))]
    front = sorted_values[_sweep_front(sorted_values)]
    area = 0.0
    for i, (x, y) in enumerate(front):
        next_x = front[i + 1][0] if i + 1 < len(front) else ref[0]
        area += (next_x - x) * (ref[1] - y)
    return float(area)


def _sweep_front(sorted_values: np.ndarray) -> list[int]:
    """Indices of the 2-D front of points sorted by x then y (strictly falling y)."""
    keep, best_y = [], math.inf
    for index, (_, y) in enumerate(sorted_values):
        if y < best_y:
            keep.append(index)
            best_y = y
    return keep


def plot_pareto(
    history_records: Sequence[Any],
    x: str = "pim_energy",
    y: str = "logloss",
    out_png: str | Path = "pareto.png",
    minimize: bool | Sequence[bool] = True,
    title: str | None = None,
    log_x: bool | None = None,
) -> list[Any]:
    """Scatters every record by two objectives and marks the Pareto front; saves a PNG.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change), so it runs on
    machines without a display.

    Args:
        history_records: evaluations, history dicts or plain mappings.
        x: objective on the horizontal axis.
        y: objective on the vertical axis.
        out_png: where to save the figure.
        minimize: as in :func:`pareto_front`, for ``(x, y)``.
        title: figure title (default: ``"Pareto front: y vs x"``).
        log_x: logarithmic x axis; by default when x spans more than a factor of 100.

    Returns:
        The records on the front, in input order.

    Example::

        plot_pareto(history.evaluations, x="pim_energy", y="logloss", out_png="runs/pareto.png")
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = list(history_records)
    mask = pareto_mask(records, [x, y], minimize)
    xs = np.array([objective_value(r, x) for r in records], dtype=np.float64)
    ys = np.array([objective_value(r, y) for r in records], dtype=np.float64)
    usable = ~(np.isnan(xs) | np.isnan(ys))
    on_front = np.array(mask, dtype=bool)

    figure = Figure(figsize=(6.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    dominated = usable & ~on_front
    axes.scatter(xs[dominated], ys[dominated], s=14, c="0.6", label="evaluated", alpha=0.7)
    if on_front.any():
        order = np.argsort(xs[on_front], kind="stable")
        front_x, front_y = xs[on_front][order], ys[on_front][order]
        axes.plot(front_x, front_y, "-", color="tab:red", linewidth=1.2, drawstyle="steps-post")
        axes.scatter(front_x, front_y, s=28, c="tab:red", label="Pareto front", zorder=3)
    positive = xs[usable][xs[usable] > 0]
    if log_x is None:
        log_x = len(positive) == int(usable.sum()) and len(positive) > 1
        log_x = bool(log_x and positive.max() / positive.min() > 100)
    if log_x:
        axes.set_xscale("log")
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.set_title(title or f"Pareto front: {y} vs {x}")
    axes.grid(True, alpha=0.3)
    if usable.any():
        axes.legend(loc="best")
    figure.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    return [record for record, keep in zip(records, mask) if keep]
