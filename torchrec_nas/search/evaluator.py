"""Scoring a candidate by inheriting supernet weights: fine-tune the classifier, measure on
the validation split."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice

import torch
import torch.nn.functional as F
from torchrec.datasets.utils import Batch

from torchrec_nas.models import NASRecModel
from torchrec_nas.search.batches import IndexedBatches, finetune_order
from torchrec_nas.search.config import FinetuneConfig
from torchrec_nas.space import Architecture
from torchrec_nas.train.metrics import BinaryMetrics


class SupernetEvaluator:
    """Scores architectures with the supernet's weights.

    The body of the subnet is frozen (its weights are the supernet's); only a copy of the
    classifier's active weights is fine-tuned, so the supernet itself never changes. A
    candidate's score is a function of (supernet, architecture, seed) alone: its fine-tuning
    batches are :func:`~torchrec_nas.search.batches.finetune_order` of its canonical hash, and
    validation reads ``val`` in its own (fixed) order. So scoring candidates in another order,
    or after a restart, gives the same scores.

    Args:
        model: the trained supernet.
        train: training batches for fine-tuning (wrapped in
            :class:`~torchrec_nas.search.batches.IndexedBatches` unless they already are).
        val: validation batches, re-iterable in a fixed order.
        cfg: fine-tuning settings.
        device: where to run.
        reduce_gradients: called on the fine-tuned weights' gradients before each step; a
            distributed search averages them across ranks here, so that every rank keeps the
            same classifier copy while fine-tuning on its own shard of the batches.
        seed: the search's seed; it picks every candidate's fine-tuning batches.

    Example::

        evaluator = SupernetEvaluator(model, data.train, data.val, FinetuneConfig(steps=50))
        metrics = evaluator(arch)   # {"logloss": ..., "auc": ..., "ne": ..., "rows": ...}
    """

    def __init__(
        self,
        model: NASRecModel,
        train: Iterable[Batch] | IndexedBatches,
        val: Iterable[Batch],
        cfg: FinetuneConfig,
        device: torch.device | None = None,
        reduce_gradients: Callable[[list[torch.Tensor]], None] | None = None,
        seed: int = 2018,
    ) -> None:
        self.model = model
        self.reduce_gradients = reduce_gradients
        self.train = train if isinstance(train, IndexedBatches) else IndexedBatches(train)
        self.seed = seed
        self.val = val
        self.cfg = cfg
        self.device = device

    def _to(self, batch: Batch) -> Batch:
        return batch.to(self.device) if self.device is not None else batch

    def __call__(self, arch: Architecture) -> dict[str, float]:
        self.model.eval()
        w0, b0 = self.model.interaction.classifier_weights(arch)
        weight = w0.detach().clone().requires_grad_(True)
        bias = (
            b0.detach().clone() if b0 is not None else torch.zeros(1, device=w0.device)
        ).requires_grad_(True)
        if self.cfg.steps:
            opt = torch.optim.Adagrad([weight, bias], lr=self.cfg.lr, eps=1e-2)
            order = finetune_order(
                self.seed, arch.canonical_hash(), self.cfg.steps, len(self.train)
            )
            for k in order:
                batch = self._to(self.train[k])
                with torch.no_grad():
                    feats = self.model.head_features(batch, arch)
                logits = F.linear(feats, weight, bias).squeeze(-1)
                loss = F.binary_cross_entropy_with_logits(logits, batch.labels.float())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if self.reduce_gradients is not None:
                    grads = [p.grad for p in (weight, bias) if p.grad is not None]
                    self.reduce_gradients(grads)
                opt.step()
        metrics = BinaryMetrics(self.device)
        with torch.no_grad():
            for batch in islice(self.val, self.cfg.eval_batches):
                batch = self._to(batch)
                logits = F.linear(self.model.head_features(batch, arch), weight, bias).squeeze(-1)
                metrics.update(logits, batch.labels)
        return {k: float(v) for k, v in metrics.compute().to_dict().items()}
