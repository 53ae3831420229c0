"""Evaluation: logloss, AUC and normalized entropy over a stream of batches."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import BinaryAUROC
from torchrec.datasets.utils import Batch


@dataclass(frozen=True)
class EvalResult:
    """Metrics over an evaluation split.

    Args:
        logloss: mean binary cross-entropy.
        auc: area under the ROC curve.
        ne: normalized entropy, logloss divided by the entropy of the average CTR.
        ctr: the average label.
        rows: number of rows evaluated.
    """

    logloss: float
    auc: float
    ne: float
    ctr: float
    rows: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "logloss": self.logloss,
            "auc": self.auc,
            "ne": self.ne,
            "ctr": self.ctr,
            "rows": self.rows,
        }


class BinaryMetrics:
    """Accumulates logloss (torchmetrics ``MeanMetric``), AUC (``BinaryAUROC``) and label
    mean; :meth:`compute` returns an :class:`EvalResult`. Under ``torch.distributed`` the
    torchmetrics states are reduced across ranks by torchmetrics itself.

    Example::

        metrics = BinaryMetrics()
        metrics.update(logits, labels)
        result = metrics.compute()
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self.logloss = MeanMetric().to(device or "cpu")
        self.ctr = MeanMetric().to(device or "cpu")
        self.auc = BinaryAUROC().to(device or "cpu")
        self.total_rows = SumMetric().to(device or "cpu")
        self.rows = 0  # this process's rows; compute() reports all ranks'

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        logits = logits.detach().float()
        labels = labels.detach().float()
        loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        self.logloss.update(loss)
        self.ctr.update(labels)
        self.auc.update(torch.sigmoid(logits), labels.long())
        self.rows += labels.numel()
        self.total_rows.update(float(labels.numel()))

    def compute(self) -> EvalResult:
        with warnings.catch_warnings():
            # torchmetrics' cross-rank gather indexes with a list, which PyTorch 2.8 warns of
            # once per metric and validation; nothing a user can change.
            warnings.filterwarnings("ignore", "Using a non-tuple sequence", UserWarning)
            logloss = float(self.logloss.compute())
            ctr = float(self.ctr.compute())
            auc = float(self.auc.compute()) if 0.0 < ctr < 1.0 else float("nan")
            rows = int(self.total_rows.compute())
        entropy = -(ctr * math.log(max(ctr, 1e-12)) + (1 - ctr) * math.log(max(1 - ctr, 1e-12)))
        return EvalResult(
            logloss, auc, logloss / entropy if entropy > 0 else float("nan"), ctr, rows
        )


@torch.no_grad()
def evaluate(
    forward: Callable[[Batch], torch.Tensor],
    batches: Iterable[Batch],
    max_batches: int | None = None,
    device: torch.device | None = None,
) -> EvalResult:
    """Evaluates ``forward`` (a batch to logits function) on up to ``max_batches`` batches.

    Example::

        result = evaluate(lambda b: model(b, arch), data.val, max_batches=50)
    """
    metrics = BinaryMetrics(device)
    for batch in islice(batches, max_batches):
        if device is not None:
            batch = batch.to(device)
        metrics.update(forward(batch), batch.labels)
    if metrics.rows == 0:
        raise ValueError("evaluation saw no rows: the evaluation split is empty")
    return metrics.compute()
