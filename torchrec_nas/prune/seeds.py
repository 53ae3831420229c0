"""Pruned models over seeds: mean and spread of test metrics per method and target."""

from __future__ import annotations

from typing import Any

from torchrec_nas.stages.spread import aggregate_seeds


def summarize(pruned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, target), in first-seen order: mean FLOPs, the per-seed test metrics and
    their mean and sample std (``test_seeds``, see
    :func:`~torchrec_nas.stages.spread.aggregate_seeds`).

    Example::

        summarize([{"method": "magnitude", "target": 0.5, "seed": 1, "flops": 10.0,
                    "test": {"auc": 0.8, "logloss": 0.4}}, ...])
    """
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for entry in pruned:
        groups.setdefault((entry["method"], entry["target"]), []).append(entry)
    rows = []
    for (method, target), entries in groups.items():
        rows.append(
            {
                "method": method,
                "target": target,
                "flops": sum(e["flops"] for e in entries) / len(entries),
                "seeds": [{"seed": e.get("seed"), "test": e["test"]} for e in entries],
                "test_seeds": aggregate_seeds([e["test"] for e in entries]),
            }
        )
    return rows
