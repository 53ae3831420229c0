"""What the search minimizes: a metric, under budgets on metrics and costs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BUDGET_BASELINES = ("dlrm", "dcn")
_METRICS = ("logloss", "ne")


@dataclass
class ObjectiveConfig:
    """The search's objective and constraints.

    Args:
        metric: what to minimize: a validation metric (``logloss``, ``ne``) or a cost
            (``flops``, ``params``, ``embedding_params``, ``memory_bytes``, ``pim_energy``,
            ``pim_latency``).
        budgets: upper limits, by metric or cost name; a candidate over any is infeasible. A
            cost's limit may name a baseline (``flops: dcn``: at most DCN-v2's FLOPs, as an
            architecture of the space without LayerNorms at ``train.baselines``' sizes;
            ``dlrm`` likewise), resolved when the search starts.
        pareto: metrics and costs whose Pareto front the report shows (all minimized).
        hardware: PIM hardware preset (``isaac``, ``mnsim``, ``neurosim``) or YAML file that
            prices every candidate (``pim_*`` costs); ``null`` to skip PIM costs.
        embedding_mode: ``near_memory`` or ``in_crossbar`` embedding lookups.

    Example::

        ObjectiveConfig(metric="logloss", budgets={"flops": 3e6})
    """

    metric: str = "logloss"
    budgets: dict[str, float | str] = field(default_factory=dict)
    pareto: list[str] = field(default_factory=lambda: ["logloss", "flops"])
    hardware: str | None = "isaac"
    embedding_mode: str = "near_memory"

    def validate(self) -> None:
        known = {"logloss", "ne", "flops", "params", "embedding_params", "memory_bytes"} | {
            "pim_energy",
            "pim_latency",
            "pim_area",
            "pim_crossbars",
        }
        for name in [self.metric, *self.budgets, *self.pareto]:
            if name not in known:
                raise ValueError(f"unknown objective {name!r}; known: {sorted(known)}")
            if name.startswith("pim_") and self.hardware is None:
                raise ValueError(f"{name!r} needs a PIM `hardware`")
        for name, limit in self.budgets.items():
            if isinstance(limit, str) and (limit not in BUDGET_BASELINES or name in _METRICS):
                raise ValueError(
                    f"budgets.{name}: {limit!r} is neither a number nor a baseline whose "
                    f"{name} bounds it ({', '.join(BUDGET_BASELINES)})"
                )
        if self.embedding_mode not in ("near_memory", "in_crossbar"):
            raise ValueError(
                f"embedding_mode: {self.embedding_mode!r} is not near_memory or in_crossbar"
            )

    def over_budget(self, values: dict[str, float]) -> str:
        """The first budget that ``values`` exceed, as ``"flops 7e+05 over the budget
        6.3e+05"``, or ``""``; budgets on names ``values`` lacks are not checked.

        Raises:
            ValueError: a budget still names a baseline (see ``budgets``).
        """
        for name, limit in self.budgets.items():
            if isinstance(limit, str):
                raise ValueError(f"budgets.{name}: {limit!r} is not resolved to a number")
            if name in values and values[name] > limit:
                return f"{name} {values[name]:.6g} over the budget {limit:.6g}"
        return ""

    def score(self, metrics: dict[str, float], costs: dict[str, float]) -> float:
        """The value to minimize, or ``inf`` when a budget is exceeded."""
        values = {**costs, **metrics}
        for name in self.budgets:
            if name not in values:
                raise KeyError(f"budget on {name!r}, which is neither measured nor costed")
        if self.over_budget(values):
            return math.inf
        if self.metric not in values:
            raise KeyError(f"objective {self.metric!r} is neither measured nor costed")
        value = values[self.metric]
        return value if math.isfinite(value) else math.inf
