"""The joint search's summary: the Pareto front of validation logloss against embedding
memory, for ``search.json`` (``pareto_memory``)."""

from __future__ import annotations

import math
from typing import Any

from torchrec_nas.search.history import SearchHistory
from torchrec_nas.search.pareto import pareto_front


def memory_front(history: SearchHistory, metric: str = "logloss") -> list[dict[str, Any]]:
    """The evaluated, feasible candidates on the front of ``metric`` against ``memory_bytes``
    (both minimized), by memory: hash, both values, ``embedding_params`` and the widths.

    Example::

        memory_front(SearchHistory("runs/joint/history.jsonl"))[0]["memory_bytes"]
    """
    records = [
        r.to_dict()
        for r in history
        if not r.cached and math.isfinite(r.score) and "memory_bytes" in r.costs
    ]
    front = pareto_front(records, [metric, "memory_bytes"])
    return [
        {
            "hash": r["hash"],
            metric: r["metrics"][metric],
            "memory_bytes": r["costs"]["memory_bytes"],
            "embedding_params": r["costs"].get("embedding_params"),
            "embedding_dims": r["architecture"].get("embedding_dims"),
        }
        for r in sorted(front, key=lambda r: r["costs"]["memory_bytes"])
    ]
