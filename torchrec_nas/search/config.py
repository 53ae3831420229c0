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


@dataclass
class RerankConfig:
    """Re-ranking the search's best candidates by training each stand-alone for a short while.

    The supernet's inherited scores rank subnets only loosely (see the README's ranking
    benchmark), so the final pick can be checked the way a person would: the ``top_k``
    distinct candidates with the best supernet scores (within the budgets) are trained from
    scratch with the final-training recipe for at most ``epochs`` epochs with early stopping,
    and the one with the lowest validation logloss becomes ``best_arch.json``. Results are
    cached per candidate (``rerank_cache.jsonl``), so a killed search resumes without
    retraining. In the spirit of the two-stage searches that verify proxy rankings by short
    training (for example, EcoNAS, Zhou et al., CVPR 2020).

    Args:
        top_k: candidates to train; 0 turns re-ranking off.
        epochs: most epochs each trains (early stopping may end it sooner).
        eval_every: steps between validations.
        patience: validations without a lower logloss before stopping.
        seed: the seed each candidate is initialized and shuffled with (``null``: the run's).

    Example::

        RerankConfig(top_k=4, epochs=0.5)
    """

    top_k: int = 0
    epochs: float = 0.5
    eval_every: int = 20
    patience: int = 3
    seed: int | None = None

    def validate(self) -> None:
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0 (0: no re-ranking)")
        if not self.epochs > 0:
            raise ValueError("epochs must be > 0")
        if self.eval_every < 1:
            raise ValueError("eval_every must be >= 1")
        if self.patience < 1:
            raise ValueError("patience must be >= 1")
