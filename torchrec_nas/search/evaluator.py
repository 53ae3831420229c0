"""Scoring a candidate by inheriting supernet weights: refit the classifier on the frozen body,
measure on the validation split."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice

import torch
import torch.nn.functional as F
from torchrec.datasets.utils import Batch

from torchrec_nas.models import NASRecModel
from torchrec_nas.search.batches import IndexedBatches, finetune_order
from torchrec_nas.search.config import FinetuneConfig
from torchrec_nas.search.probe import fit_logistic
from torchrec_nas.space import Architecture
from torchrec_nas.train.metrics import BinaryMetrics

# A batch with its embedding lookups done: (dense features, sparse tokens, labels).
Embedded = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class SupernetEvaluator:
    """Scores architectures with the supernet's weights.

    The body of the subnet is frozen (its weights are the supernet's); only a copy of the
    classifier's active weights is refitted, so the supernet itself never changes. A
    candidate's score is a function of (supernet, architecture, seed) alone, so scoring
    candidates in another order, or after a restart, gives the same scores.

    With ``cfg.method`` ``newton`` or ``lbfgs``, the classifier is fitted exactly
    (:func:`~torchrec_nas.search.probe.fit_logistic`) on the head features of
    ``cfg.fit_batches`` training batches, a fixed set drawn from ``seed`` (the same for every
    candidate). The embedding lookups and dense features of those batches and of the
    validation batches change with no candidate, so they are computed once, on first use,
    and kept: ``rows * (features * embedding_dim + dense + 1) * 4`` bytes (about 1.7 kB a row
    on the Criteo layout). With ``sgd``, it runs ``cfg.steps`` Adagrad steps on batches drawn
    per candidate (:func:`~torchrec_nas.search.batches.finetune_order` of its hash), running
    the body on each.

    Args:
        model: the trained supernet.
        train: training batches (wrapped in
            :class:`~torchrec_nas.search.batches.IndexedBatches` unless they already are).
        val: validation batches, re-iterable in a fixed order; ``cfg.eval_batches`` of them
            are read (all where ``None``).
        cfg: scoring settings.
        device: where to run.
        reduce_gradients: averages a list of tensors across ranks in place (a distributed
            search, each rank holding its shard of every batch): the exact fit reduces its
            objective, gradient and Hessian through it, ``sgd`` the gradients before each
            step, so every rank keeps the same classifier.
        seed: the search's seed; it picks the fitting batches.

    Example::

        evaluator = SupernetEvaluator(model, data.train, data.val, FinetuneConfig())
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
        self._fit_cache: list[Embedded] | None = None
        self._val_cache: list[Embedded] | None = None

    def _to(self, batch: Batch) -> Batch:
        return batch.to(self.device) if self.device is not None else batch

    def fit_indices(self) -> list[int]:
        """The training batches the exact fit reads: a function of the seed alone."""
        count = min(self.cfg.fit_batches, len(self.train))
        return sorted(finetune_order(self.seed, "probe", count, len(self.train)))

    @torch.no_grad()
    def _embed(self, batches: Iterable[Batch]) -> list[Embedded]:
        out = []
        for batch in batches:
            batch = self._to(batch)
            tokens = self.model.sparse_arch(batch.sparse_features)
            out.append((batch.dense_features, tokens, batch.labels))
        return out

    def cache_bytes(self) -> int:
        """Bytes held by the cached embedded batches."""
        caches = (self._fit_cache or []) + (self._val_cache or [])
        return sum(t.numel() * t.element_size() for batch in caches for t in batch)

    def __call__(self, arch: Architecture) -> dict[str, float]:
        self.model.eval()
        if self._val_cache is None:
            self._val_cache = self._embed(islice(self.val, self.cfg.eval_batches))
        if self.cfg.method == "sgd":
            return self._validate(arch, *self._sgd(arch), self._val_cache)
        if self._fit_cache is None:
            self._fit_cache = self._embed(self.train[k] for k in self.fit_indices())
        with torch.no_grad():
            feats = torch.cat([self._features(arch, b) for b in self._fit_cache])
        labels = torch.cat([b[2] for b in self._fit_cache])
        w0, b0 = self.model.interaction.classifier_weights(arch)
        weight, bias = fit_logistic(
            feats,
            labels,
            w0,
            b0,
            l2=self.cfg.l2,
            max_iter=self.cfg.max_iter,
            method=self.cfg.method,
            reduce=self.reduce_gradients,
        )
        return self._validate(arch, weight, bias, self._val_cache)

    def _features(self, arch: Architecture, batch: Embedded) -> torch.Tensor:
        # The cached tokens are full width; a candidate's embedding widths (the joint search)
        # keep a prefix of each, zero-padded (NASRecModel.narrow).
        tokens = self.model.narrow(batch[1], arch)
        return self.model.interaction.head_features(batch[0], tokens, arch)

    @torch.no_grad()
    def _validate(
        self,
        arch: Architecture,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        batches: Iterable[Embedded],
    ) -> dict[str, float]:
        metrics = BinaryMetrics(self.device)
        for batch in batches:
            metrics.update(
                F.linear(self._features(arch, batch), weight, bias).squeeze(-1), batch[2]
            )
        return {k: float(v) for k, v in metrics.compute().to_dict().items()}

    def _sgd(self, arch: Architecture) -> tuple[torch.Tensor, torch.Tensor]:
        w0, b0 = self.model.interaction.classifier_weights(arch)
        weight = w0.detach().clone().requires_grad_(True)
        bias = (
            b0.detach().clone() if b0 is not None else torch.zeros(1, device=w0.device)
        ).requires_grad_(True)
        if not self.cfg.steps:
            return weight, bias
        opt = torch.optim.Adagrad([weight, bias], lr=self.cfg.lr, eps=1e-2)
        order = finetune_order(self.seed, arch.canonical_hash(), self.cfg.steps, len(self.train))
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
        return weight, bias
