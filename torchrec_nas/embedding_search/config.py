"""Settings of the embedding-size search (AdaS&S), torch-free: the ``embedding_search:``
section of a config."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from torchrec_nas.search.evolution import EvolutionConfig
from torchrec_nas.space_widths import check_widths
from torchrec_nas.train.config import LoopConfig

DEFAULT_WIDTHS = [4, 8, 12, 16, 24, 32, 48, 64]


def width_evolution_default() -> EvolutionConfig:
    """Regularized evolution sized for a width search (cheap candidates)."""
    return EvolutionConfig(
        population=16, tournament=4, children=4, generations=20, mutations_start=3
    )


@dataclass
class ShrinkConfig:
    """The standard-error rule after each seed's policy pick (the one-standard-error rule of
    Breiman et al., CART, 1984, at ``k = 1``): each feature, largest tables first, steps down
    its widths while the pick's score exceeds the shrunk choice's by at most ``k`` standard
    errors of that paired difference (see
    :func:`~torchrec_nas.embedding_search.shrink.one_se_shrink`). The default ``k = 0.5``:
    the drop is measured against the pick over all the features' steps together, so ``k``
    bounds the total loss of validation score, not each step's.

    Args:
        enabled: apply the rule (``false``: the policy's pick as it is).
        k: standard errors of score drop allowed, against the policy's pick (0: only choices
            whose validation score is no worse).
        val_batches: fixed validation batches the rule's paired comparisons use (``null``:
            those of stage 2's scorer, ``embedding_search.val_batches``). More rows give a
            smaller standard error, so the rule steps down less far; it scores only a few
            candidates a seed, so it can afford them where the policy cannot.
    """

    enabled: bool = True
    k: float = 0.5
    val_batches: int | None = None

    def validate(self) -> None:
        if not (math.isfinite(self.k) and self.k >= 0):
            raise ValueError(f"k must be a finite number >= 0, got {self.k}")
        if self.val_batches is not None and self.val_batches < 1:
            raise ValueError(f"val_batches must be >= 1 or null, got {self.val_batches}")


@dataclass
class EmbeddingSearchConfig(LoopConfig):
    """The embedding-size search: stage 1 (the embedding supernet) and stage 2 (the policy).

    Stage 1's length: ``steps`` when set; else ``epochs`` passes when set; else (``epochs:
    null``, the default) as many passes as the final model's ``train.epochs``
    (``match_train_epochs``, default on) or one pass, at least ``min_steps`` either way. Its
    loop settings (``optimizer``, ``eval_batches``, ``checkpoint_every``,
    ...) are those of :class:`~torchrec_nas.train.config.LoopConfig`.

    Args:
        match_train_epochs: with ``epochs: null`` and no ``steps``, stage 1 trains
            ``train.epochs`` passes, as long as the final models (``false``: one pass). A
            supernet trained one pass scores every width near the others, so both the policy
            and the shrink rule drift to the narrowest widths.
        widths: candidate widths of every feature's table, each a multiple of 4.
        cap_at_rows: each feature's widths stop at the smallest candidate at least its
            table's rows (all candidates where none is): a table of ``r`` rows represents
            ``r`` vectors, which any width ``>= r`` represents exactly, so a wider table only
            adds parameters. Applies to stage 1's draws, stage 2 (policy, evolution, the
            smallest-model check) and the joint search's ``space.embedding_widths``.
            ``false``: every feature searches every width. A wider width in a given
            ``embedding_dims.json`` is still accepted.
        interaction: ``dlrm`` (TorchRec's DLRM, with ``train.baselines``' layer sizes) or the
            path of an architecture JSON of the config's space.
        min_steps: the fewest stage-1 steps of a budget that follows the data.
        uniform_floor: share of the width draws that are uniform, so no width is starved.
        sandwich: what each stage-1 step trains besides the drawn widths (the sandwich rule
            of Yu et al., BigNAS, 2020, without its smallest width): ``none``; ``widest``:
            also every feature at its widest allowed width, on the labels (two forwards a
            step); ``distill``: that, and the drawn widths learn the widest's predictions
            (in-place distillation) instead of the labels. The adaptive sampler still sees
            the drawn widths' loss on the labels.
        loss_decay: decay of the running loss per (feature, width).
        temperature: softmax temperature over the running losses, standardized per feature
            (lower: sharper).
        budget: a float is a fraction of the uniform model's embedding parameters (the
            token width of ``space.embedding_dim`` for every feature); an integer is a
            parameter count.
        score: the validation score of a candidate: ``auc`` or ``logloss`` (negated).
        val_batches: fixed validation batches a candidate is scored on.
        policy_steps: REINFORCE steps of stage 2.
        policy_samples: candidates drawn per REINFORCE step.
        policy_lr: the policy's learning rate (Adam on its logits).
        baseline_decay: decay of REINFORCE's moving-average baseline.
        penalty: reward penalty per unit of relative excess over the budget.
        size_weight: reward cost per unit of ``P / budget`` at any size, so that of choices
            the score cannot tell apart the cheaper wins (0: none; the budget alone).
        shrink: the one-standard-error rule on each seed's policy pick (:class:`ShrinkConfig`).
        evolution: regularized evolution over widths on the same reward.
        seeds: stage-2 seeds (stability across runs).
    """

    epochs: float | None = None  # type: ignore[assignment]
    epochs_may_be_null: ClassVar[bool] = True
    match_train_epochs: bool = True
    widths: list[int] = field(default_factory=lambda: list(DEFAULT_WIDTHS))
    cap_at_rows: bool = True
    interaction: str = "dlrm"
    min_steps: int = 300
    uniform_floor: float = 0.2
    sandwich: Literal["none", "widest", "distill"] = "none"
    loss_decay: float = 0.9
    temperature: float = 1.0
    budget: int | float = 0.8
    score: Literal["auc", "logloss"] = "auc"
    val_batches: int = 8
    policy_steps: int = 150
    policy_samples: int = 8
    policy_lr: float = 0.1
    baseline_decay: float = 0.9
    penalty: float = 1.0
    size_weight: float = 0.0
    shrink: ShrinkConfig = field(default_factory=ShrinkConfig)
    evolution: EvolutionConfig = field(default_factory=width_evolution_default)
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])

    def validate(self) -> None:
        super().validate()
        check_widths(self.widths, "widths")
        if not 0.0 <= self.uniform_floor <= 1.0:
            raise ValueError(f"uniform_floor must be in [0, 1], got {self.uniform_floor}")
        if not 0.0 <= self.loss_decay < 1.0 or not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError("loss_decay and baseline_decay must be in [0, 1)")
        if not (self.temperature > 0 and self.policy_lr > 0 and self.penalty >= 0):
            raise ValueError("temperature and policy_lr must be positive, penalty >= 0")
        if not self.size_weight >= 0:
            raise ValueError(f"size_weight must be >= 0, got {self.size_weight}")
        if isinstance(self.budget, float) and not 0.0 < self.budget:
            raise ValueError(f"budget: a fraction must be positive, got {self.budget}")
        if isinstance(self.budget, int) and self.budget < 1:
            raise ValueError(f"budget: a parameter count must be positive, got {self.budget}")
        if min(self.min_steps, self.val_batches, self.policy_steps, self.policy_samples) < 1:
            raise ValueError("min_steps, val_batches, policy_steps, policy_samples must be >= 1")
        if not self.seeds:
            raise ValueError("seeds must not be empty")

    def total_steps(self, batches_per_epoch: int | None) -> int:
        """Stage 1's length: ``steps``, ``epochs`` passes, or ``max(min_steps, one pass)``
        (see :meth:`for_train` for ``match_train_epochs``)."""
        if self.steps is not None:
            return self.steps
        if not batches_per_epoch:
            raise ValueError("the training split's length is unknown: set `embedding_search.steps`")
        if self.epochs is not None and math.isfinite(self.epochs):
            return max(1, int(self.epochs * batches_per_epoch))
        return max(self.min_steps, batches_per_epoch)

    def for_train(
        self, train_epochs: float, batches_per_epoch: int | None
    ) -> EmbeddingSearchConfig:
        """These settings with stage 1's length resolved against the final training's
        ``train.epochs`` (``match_train_epochs`` with neither ``steps`` nor ``epochs`` set):
        ``steps`` of ``train_epochs`` passes, at least ``min_steps``; otherwise unchanged.

        Example::

            loop = cfg.embedding_search.for_train(cfg.train.epochs, 312)
            loop.steps   # 1248 with train.epochs 4
        """
        if not self.match_train_epochs or self.steps is not None or self.epochs is not None:
            return self
        if not batches_per_epoch:
            raise ValueError("the training split's length is unknown: set `embedding_search.steps`")
        steps = max(self.min_steps, int(train_epochs * batches_per_epoch))
        return dataclasses.replace(self, steps=steps)
