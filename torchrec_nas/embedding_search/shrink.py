"""The standard-error rule on a width choice (the one-standard-error rule of Breiman,
Friedman, Olshen and Stone, CART, 1984, with ``k`` standard errors): of the choices whose
validation score is within the noise of the best one's, take the smaller.

Stage 2's policy picks a width per feature by the frozen supernet's score on fixed validation
batches. Where a feature's width moves that score less than the batches' noise, any width is
as good as another and the pick is arbitrary; this rule replaces it, deterministically, by the
cheapest width that the data cannot tell from it.

The noise is the standard error of the *paired* score difference between the pick and a
shrunk choice, on the same validation examples (both are scored by the same frozen supernet,
so most of the sampling noise cancels):

* ``auc``: DeLong, DeLong and Clarke-Pearson (1988). With the placement values
  ``V10_i = P(x_neg < x_i) + P(x_neg = x_i) / 2`` of each positive ``i`` and
  ``V01_j = P(x_pos > x_j) + P(x_pos = x_j) / 2`` of each negative ``j`` (``AUC = mean V10``),
  ``Var(AUC_a - AUC_b) = Var_i(V10_a - V10_b) / m + Var_j(V01_a - V01_b) / n``.
* ``logloss``: the mean of the per-example loss differences, and its standard error
  ``std / sqrt(N)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from torchrec_nas import storage
from torchrec_nas.embedding_search.dims import EmbeddingDims, dims_key, embedding_params
from torchrec_nas.embedding_search.scoring import WidthScorer

#: ``paired(reference, candidate) -> (drop, standard_error)``: how much lower the candidate's
#: score is than the reference's (negative: higher), and the standard error of that drop.
Paired = Callable[[Mapping[str, int], Mapping[str, int]], tuple[float, float]]


def _placements(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DeLong's placement values ``(V10 of each positive, V01 of each negative)``."""
    pos, neg = x[y], x[~y]
    sorted_neg, sorted_pos = torch.sort(neg).values, torch.sort(pos).values
    below = torch.searchsorted(sorted_neg, pos) + torch.searchsorted(sorted_neg, pos, right=True)
    above = torch.searchsorted(sorted_pos, neg) + torch.searchsorted(sorted_pos, neg, right=True)
    return below.double() / (2 * len(neg)), 1.0 - above.double() / (2 * len(pos))


def paired_auc_drop(
    reference: torch.Tensor, candidate: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float]:
    """``AUC(reference) - AUC(candidate)`` on the same examples and DeLong's standard error of
    it; ``(0, nan)`` where a class is missing or has a single example.

    Example::

        drop, se = paired_auc_drop(logits_a, logits_b, labels)   # drop <= se: within noise
    """
    y = labels.bool()
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        return 0.0, math.nan
    v10_a, v01_a = _placements(reference.double(), y)
    v10_b, v01_b = _placements(candidate.double(), y)
    drop = float(v10_a.mean() - v10_b.mean())
    var = float((v10_a - v10_b).var() / m + (v01_a - v01_b).var() / n)
    return drop, math.sqrt(max(var, 0.0))


def paired_logloss_drop(
    reference: torch.Tensor, candidate: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float]:
    """``logloss(candidate) - logloss(reference)`` (the score is minus the logloss) on the
    same examples, and the standard error of the mean of the per-example differences."""
    y = labels.double()
    loss_a = F.binary_cross_entropy_with_logits(reference.double(), y, reduction="none")
    loss_b = F.binary_cross_entropy_with_logits(candidate.double(), y, reduction="none")
    diff = loss_b - loss_a
    if len(diff) < 2:
        return float(diff.sum()), math.nan
    return float(diff.mean()), float(diff.std() / math.sqrt(len(diff)))


class PairedScores:
    """Paired score drops of width choices against a reference on a :class:`WidthScorer`'s
    validation examples, cached in a JSONL file (``None``: in memory only) so that a resumed
    search makes the same decisions without recomputing them.

    Args:
        scorer: the frozen supernet's validation scorer.
        metric: ``auc`` or ``logloss``.
        cache_path: the cache.

    Example::

        paired = PairedScores(scorer, "auc", "runs/emb/embedding_search/shrink.jsonl")
        drop, se = paired(pick, {**pick, "cat_0": 8})
    """

    def __init__(
        self, scorer: WidthScorer, metric: str, cache_path: str | Path | None = None
    ) -> None:
        if metric not in ("auc", "logloss"):
            raise ValueError(f"PairedScores: metric {metric!r} is not 'auc' or 'logloss'")
        self.scorer = scorer
        self.metric = metric
        self.cache_path = str(cache_path) if cache_path is not None else None
        self.cache: dict[str, tuple[float, float]] = {}
        self.evaluated = 0
        self._reference: tuple[str, torch.Tensor] | None = None
        if self.cache_path is not None:
            for _, row in storage.read_jsonl(self.cache_path):
                self.cache[row["key"]] = (float(row["drop"]), float(row["se"]))

    def __call__(
        self, reference: Mapping[str, int], candidate: Mapping[str, int]
    ) -> tuple[float, float]:
        ref_key = dims_key(reference)
        key = f"{self.metric}|{ref_key}|{dims_key(candidate)}"
        if key in self.cache:
            return self.cache[key]
        if self._reference is None or self._reference[0] != ref_key:
            self._reference = (ref_key, self.scorer.logits(reference)[0])
        x_cand, labels = self.scorer.logits(candidate)
        drop_of = paired_auc_drop if self.metric == "auc" else paired_logloss_drop
        value = drop_of(self._reference[1], x_cand, labels)
        self.cache[key] = value
        self.evaluated += 1
        if self.cache_path is not None:
            row = {"key": key, "drop": value[0], "se": value[1]}
            storage.append_lines(self.cache_path, [json.dumps(row)])
        return value


def one_se_shrink(
    pick: Mapping[str, int],
    paired: Paired,
    rows: Mapping[str, int],
    token_width: int,
    allowed: Mapping[str, Sequence[int]],
    k: float = 1.0,
) -> tuple[EmbeddingDims, list[dict[str, Any]]]:
    """The one-standard-error rule per feature, greedy and deterministic.

    Features are taken largest table first (then by name), so the parameters that matter most
    are shrunk first. Each steps down its sorted ``allowed`` widths, skipping a width that does
    not lower its parameters (below the token width a projection is added), and keeps a step
    while ``drop <= k * se``: the pick's score exceeds the shrunk choice's by at most ``k``
    standard errors of the paired difference (``paired``). The comparison is always against
    the pick, not the previous step, so the drops of all features together stay within the
    noise. The first step that fails ends that feature. Every kept step lowers the
    parameters, so a pick within the budget stays within it.

    Args:
        pick: the policy's pick.
        paired: the paired drop and its standard error (:class:`PairedScores`).
        rows: rows of each feature's table.
        token_width: the interaction's token width (no projection at it).
        allowed: each feature's widths.
        k: standard errors allowed.

    Returns:
        The shrunk widths and one record per step tried (feature, widths, drop, se, kept).

    Example::

        dims, steps = one_se_shrink(pick, PairedScores(scorer, "auc"), rows, 16, allowed)
    """
    order = sorted(pick, key=lambda f: (-rows[f], f))
    current = dict(pick)
    steps: list[dict[str, Any]] = []
    for f in order:
        for w in sorted((w for w in allowed[f] if w < current[f]), reverse=True):
            candidate = {**current, f: w}
            if embedding_params({f: w}, rows, token_width) >= embedding_params(
                {f: current[f]}, rows, token_width
            ):
                continue
            drop, se = paired(pick, candidate)
            kept = drop <= k * se  # False where se is nan
            steps.append(
                {"feature": f, "from": current[f], "to": w, "drop": drop, "se": se, "kept": kept}
            )
            if not kept:
                break
            current = candidate
    return current, steps
