"""Mean and spread of results over seeds, and when a difference exceeds the spread.

The rule: two models differ beyond the spread when the absolute difference of their means is
larger than the standard deviations of both combined, ``|m_a - m_b| > sqrt(s_a² + s_b²)``
(sample standard deviations over seeds). With one seed the spread is unknown and no difference
is called larger than it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: The test metrics aggregated over seeds.
SEED_METRICS = ("auc", "logloss")

#: The rule, in words, for reports.
SPREAD_RULE = "|mean difference| > sqrt(std_a² + std_b²) over seeds"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``nan`` with fewer than two values).

    Example::

        mean_std([0.80, 0.81, 0.82])   # (0.81, 0.01)
    """
    if not values:
        raise ValueError("mean_std: no values")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def aggregate_seeds(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std"}}`` of :data:`SEED_METRICS` over per-seed metric dicts."""
    out = {}
    for metric in SEED_METRICS:
        mean, std = mean_std([float(m[metric]) for m in per_seed])
        out[metric] = {"mean": mean, "std": std}
    return out


def beyond_spread(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """Whether ``a`` and ``b`` (each ``{"mean", "std"}``) differ by more than the spread
    (see the module's rule); ``False`` when either spread is unknown.

    Example::

        beyond_spread({"mean": 0.81, "std": 0.001}, {"mean": 0.80, "std": 0.002})   # True
    """
    if math.isnan(a["std"]) or math.isnan(b["std"]):
        return False
    return abs(a["mean"] - b["mean"]) > math.sqrt(a["std"] ** 2 + b["std"] ** 2)


def compare_to_baselines(
    results: Mapping[str, Mapping[str, Any]], model: str = "nasrec"
) -> dict[str, dict[str, Any]]:
    """For each other model of ``results`` (``train_final``'s, with ``test_seeds``): the
    difference of ``model``'s mean from it per metric and whether it exceeds the spread."""
    if model not in results or "test_seeds" not in results[model]:
        return {}
    ours = results[model]["test_seeds"]
    out: dict[str, dict[str, Any]] = {}
    for name, entry in results.items():
        if name == model or "test_seeds" not in entry:
            continue
        theirs = entry["test_seeds"]
        out[name] = {
            metric: {
                "difference": ours[metric]["mean"] - theirs[metric]["mean"],
                "beyond_spread": beyond_spread(ours[metric], theirs[metric]),
            }
            for metric in SEED_METRICS
        }
    return out
