"""The ``search.finetune`` config section: how a candidate is scored. Imports no torch, so
loading a config stays cheap."""

from __future__ import annotations

from dataclasses import dataclass, field

FINETUNE_METHODS = ("newton", "lbfgs", "sgd")
RERANK_BASELINES = ("dlrm", "dcn")


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
    """The search's last stage: candidates trained stand-alone, the best by validation picked.

    The supernet's inherited scores rank subnets only loosely (see the README's ranking
    benchmark), and it cannot judge an architecture without LayerNorms at all (its weights were
    trained with them). So the final pick is checked the way a person would, by training:
    the ``top_k`` distinct candidates with the best supernet scores (within the budgets), and
    the space's own ``baselines`` (DLRM, DCN-v2 at ``train.baselines``' sizes, without
    LayerNorms, where they fit the space and the budgets), each under every value of
    ``layer_norm``, are trained from scratch with the final-training recipe for at most
    ``epochs`` epochs with early stopping. Then ``local_rounds`` rounds of hill climbing
    train ``local_children`` mutations (one or two genes, within the budgets, none trained
    before) of the best so far. The lowest validation logloss of all becomes
    ``best_arch.json``; with ``confirm_seeds``, the ``confirm_top`` best and each baseline's
    best are trained with that many more seeds and the lowest mean decides, a searched model
    replacing the baseline only by more than the standard error of the difference (two seeds
    of one model differ by about as much as good candidates do, so a single-seed pick is
    partly luck). Results are cached per candidate (``rerank_cache.jsonl``), so a killed
    search resumes without retraining, to the same pick. In the spirit of the two-stage
    searches that verify proxy rankings by short training (EcoNAS, Zhou et al., CVPR 2020)
    and of seeding a search with known-good models.

    Args:
        top_k: the supernet's best candidates to train; 0 with no ``baselines`` turns the
            stage off.
        epochs: most epochs each trains (early stopping may end it sooner).
        eval_every: steps between validations.
        patience: validations without a lower logloss before stopping.
        min_fraction: early stopping may end a training only after this share of its steps
            (a loss that rises while the learning rate warms up does not end it).
        seed: the seed each candidate is initialized and shuffled with (``null``: the run's).
        baselines: baselines of the space to train beside them (``dlrm``, ``dcn``).
        layer_norm: values of the architectures' ``layer_norm`` gene each is trained with.
        local_rounds: rounds of hill climbing from the best so far (0: none).
        local_children: mutations trained per round.
        confirm_top: the best candidates trained again with ``confirm_seeds`` more seeds
            (and each baseline's best, whatever its rank).
        confirm_seeds: extra seeds (``seed + 1``, ...) for them; 0: the single-seed best.

    Example::

        RerankConfig(top_k=4, epochs=0.5, baselines=["dcn"], layer_norm=[True, False])
    """

    top_k: int = 0
    epochs: float = 0.5
    eval_every: int = 20
    patience: int = 3
    min_fraction: float = 0.5
    seed: int | None = None
    baselines: list[str] = field(default_factory=list)
    layer_norm: list[bool] = field(default_factory=lambda: [True])
    local_rounds: int = 0
    local_children: int = 4
    confirm_top: int = 3
    confirm_seeds: int = 0

    @property
    def enabled(self) -> bool:
        return self.top_k > 0 or bool(self.baselines)

    def validate(self) -> None:
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0 (0: no re-ranking)")
        if not self.epochs > 0:
            raise ValueError("epochs must be > 0")
        if self.eval_every < 1:
            raise ValueError("eval_every must be >= 1")
        if self.patience < 1:
            raise ValueError("patience must be >= 1")
        if not 0.0 <= self.min_fraction < 1.0:
            raise ValueError(f"min_fraction must be in [0, 1), got {self.min_fraction}")
        for name in self.baselines:
            if name not in RERANK_BASELINES:
                raise ValueError(f"baselines: {name!r} is not one of {', '.join(RERANK_BASELINES)}")
        if not self.layer_norm or len(set(self.layer_norm)) != len(self.layer_norm):
            raise ValueError(f"layer_norm must list true, false or both once: {self.layer_norm}")
        if any(not isinstance(v, bool) for v in self.layer_norm):
            raise ValueError(f"layer_norm must list true or false: {self.layer_norm}")
        if self.local_rounds < 0:
            raise ValueError("local_rounds must be >= 0")
        if self.local_children < 1:
            raise ValueError("local_children must be >= 1")
        if self.confirm_top < 1:
            raise ValueError("confirm_top must be >= 1")
        if self.confirm_seeds < 0:
            raise ValueError("confirm_seeds must be >= 0")
