"""The ``search.finetune`` config section: how a candidate is scored. Imports no torch, so
loading a config stays cheap."""

from __future__ import annotations

from dataclasses import dataclass

FINETUNE_METHODS = ("newton", "lbfgs", "sgd")


@dataclass
class FinetuneConfig:
    """How a candidate is scored: its classifier is refitted on frozen head features of the
    supernet, then measured on the validation split.

    Args:
        method: ``newton`` (default) or ``lbfgs``: the exact ridge logistic-regression fit of
            the classifier on ``fit_batches`` fixed training batches (the same for every
            candidate; see :mod:`torchrec_nas.search.probe`); ``sgd``: ``steps`` Adagrad
            steps on batches drawn per candidate (the NASRec reference).
        steps: ``sgd``: fine-tuning steps of the classifier.
        lr: ``sgd``: its learning rate (Adagrad).
        fit_batches: ``newton``/``lbfgs``: training batches the fit reads (at most the
            split's).
        l2: ``newton``/``lbfgs``: ridge strength, centred on the supernet's classifier weights.
        max_iter: ``newton``/``lbfgs``: most Newton steps.
        eval_batches: validation batches per candidate (``null``: the whole split).

    Example::

        FinetuneConfig(method="newton", fit_batches=32, eval_batches=None)
    """

    method: str = "newton"
    steps: int = 500
    lr: float = 0.04
    fit_batches: int = 32
    l2: float = 1e-5
    max_iter: int = 30
    eval_batches: int | None = None

    def validate(self) -> None:
        if self.method not in FINETUNE_METHODS:
            raise ValueError(f"method must be one of {', '.join(FINETUNE_METHODS)}")
        if self.steps < 0:
            raise ValueError("steps must be >= 0")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.fit_batches < 1:
            raise ValueError("fit_batches must be >= 1")
        if self.l2 < 0:
            raise ValueError("l2 must be >= 0")
        if self.max_iter < 1:
            raise ValueError("max_iter must be >= 1")
        if self.eval_batches is not None and self.eval_batches < 1:
            raise ValueError("eval_batches must be >= 1 or null (the whole split)")
