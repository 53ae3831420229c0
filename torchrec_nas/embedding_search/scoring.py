"""Stage 2's objective: the frozen supernet's validation score of a width choice, its
embedding parameters, and the reward that penalizes going over the budget.

A candidate's score is a function of (supernet, widths) alone: it is computed on fixed
validation batches whose largest-width pooled embeddings are looked up once. Scores are
appended to a JSONL cache, so a killed search replays with the same numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_auroc
from torchrec.datasets.utils import Batch

from torchrec_nas import storage
from torchrec_nas.embedding_search.dims import dims_key, embedding_params
from torchrec_nas.embedding_search.modules import EmbeddingSupernet


class WidthScorer:
    """Validation metrics of width choices on a frozen :class:`EmbeddingSupernet`.

    Args:
        model: the trained supernet (put in eval mode).
        batches: validation batches; the first ``max_batches`` are used.
        max_batches: how many.
        cache_path: the score cache (``None``: in memory only).
        device: where to compute.

    Example::

        scorer = WidthScorer(supernet, data.val, 8)
        scorer.metrics({"c0": 8, "c1": 16})   # {"auc": ..., "logloss": ...}
    """

    def __init__(
        self,
        model: EmbeddingSupernet,
        batches: Iterable[Batch],
        max_batches: int,
        cache_path: str | Path | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.model = model.eval()
        self.device = device or torch.device("cpu")
        self.cache_path = str(cache_path) if cache_path is not None else None
        self.cache: dict[str, dict[str, float]] = {}
        self.evaluated = 0
        if self.cache_path is not None:
            for _, row in storage.read_jsonl(self.cache_path):
                self.cache[row["key"]] = row["metrics"]
        self.inputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        with torch.no_grad():
            for batch in islice(batches, max_batches):
                batch = batch.to(self.device)
                pooled = model.sparse_arch.pooled(batch.sparse_features)
                self.inputs.append((batch.dense_features, pooled, batch.labels))
        if not self.inputs:
            raise ValueError("embedding_search: the validation split is empty")

    @torch.no_grad()
    def logits(self, widths: Mapping[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits of ``widths`` and the labels on the validation batches, concatenated
        (``[N]`` each, float32; not cached)."""
        logits, labels = [], []
        for dense, pooled, batch_labels in self.inputs:
            tokens = self.model.sparse_arch.project(pooled, widths)
            logits.append(self.model.head(dense, tokens).float())
            labels.append(batch_labels.float())
        return torch.cat(logits), torch.cat(labels)

    @torch.no_grad()
    def metrics(self, widths: Mapping[str, int]) -> dict[str, float]:
        """``{"auc", "logloss"}`` of ``widths`` (cached)."""
        key = dims_key(widths)
        if key in self.cache:
            return self.cache[key]
        # Computed here, not with torchmetrics' modules: those reduce across ranks, and only
        # the primary rank scores.
        x, y = self.logits(widths)
        logloss = float(F.binary_cross_entropy_with_logits(x, y))
        auc = float(binary_auroc(torch.sigmoid(x), y.long())) if 0 < y.mean() < 1 else math.nan
        value = {"auc": auc, "logloss": logloss}
        self.cache[key] = value
        self.evaluated += 1
        if self.cache_path is not None:
            storage.append_lines(self.cache_path, [json.dumps({"key": key, "metrics": value})])
        return value


class WidthObjective:
    """The reward of a width choice: its score (AUC, or minus the logloss) minus
    ``penalty`` times its relative excess over the budget, ``max(0, P / budget - 1)``, minus
    ``size_weight * P / budget`` (a tie-break toward fewer parameters; 0 by default).

    Args:
        scorer: the validation metrics.
        rows: rows of each feature's table.
        token_width: the interaction's token width.
        budget: the parameter budget (a count).
        metric: ``auc`` or ``logloss``.
        penalty: the penalty per unit of relative excess.
        size_weight: the cost per unit of ``P / budget``.
    """

    def __init__(
        self,
        scorer: WidthScorer,
        rows: Mapping[str, int],
        token_width: int,
        budget: int,
        metric: str = "auc",
        penalty: float = 1.0,
        size_weight: float = 0.0,
    ) -> None:
        if metric not in ("auc", "logloss"):
            raise ValueError(f"WidthObjective: metric {metric!r} is not 'auc' or 'logloss'")
        self.scorer = scorer
        self.rows = dict(rows)
        self.token_width = token_width
        self.budget = budget
        self.metric = metric
        self.penalty = penalty
        self.size_weight = size_weight

    def params(self, widths: Mapping[str, int]) -> int:
        return embedding_params(widths, self.rows, self.token_width)

    def score(self, widths: Mapping[str, int]) -> float:
        """The validation score (higher is better)."""
        m = self.scorer.metrics(widths)
        return m["auc"] if self.metric == "auc" else -m["logloss"]

    def __call__(self, widths: dict[str, int]) -> float:
        size = self.params(widths) / self.budget
        reward = self.score(widths) - self.penalty * max(0.0, size - 1.0)
        return reward - self.size_weight * size if self.size_weight else reward

    def describe(self, widths: Mapping[str, int]) -> dict[str, Any]:
        """Metrics, parameters, whether within budget, and reward of ``widths``."""
        params = self.params(widths)
        return {
            **self.scorer.metrics(widths),
            "params": params,
            "within_budget": params <= self.budget,
            "reward": self(dict(widths)),
        }
