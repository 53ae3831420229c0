"""What ``prune`` is asked to do (plain data; importing it imports no torch)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

Method = Literal["magnitude", "mask"]
METHODS: tuple[str, ...] = ("magnitude", "mask")


def parse_targets(text: str | float | list[float]) -> list[float]:
    """FLOPs targets as fractions of the model's FLOPs, largest first: ``"0.5"`` or
    ``"0.75,0.5,0.25"``.

    Raises:
        ValueError: a target is not a number strictly between 0 and 1 (the message names it).

    Example::

        parse_targets("0.25,0.75")   # [0.75, 0.25]
    """
    items = text if isinstance(text, list) else str(text).split(",")
    targets = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--target-flops {item!r}: not a number") from None
        if not 0.0 < value < 1.0:
            raise ValueError(
                f"--target-flops {value:g}: a fraction of the model's FLOPs, strictly between "
                "0 and 1"
            )
        targets.append(value)
    if not targets:
        raise ValueError("--target-flops: no target given")
    return sorted(set(targets), reverse=True)


@dataclass
class PruneOptions:
    """How ``prune`` runs.

    Args:
        targets: FLOPs targets, fractions of the model's FLOPs in ``(0, 1)``.
        methods: ``magnitude`` and/or ``mask``; each prunes the model to every target.
        steps: pruning steps per target, each followed by fine-tuning.
        finetune_steps: optimizer steps of each fine-tuning (default: the config's final
            training length divided by ``steps``).
        finetune_lr: dense learning rate of fine-tuning and gate training (default: a
            quarter of the final training's: each fine-tuning starts a fresh optimizer, whose
            first steps at the full rate undo part of the training).
        mask_steps: steps of gate training before each ``mask`` pruning step.
        mask_l1: weight of the L1 penalty on the gates.
        compare_searched: train the best searched architecture at or below each target's
            FLOPs (final recipe, each of ``seeds``) to compare with; where the search has
            none, sample architectures of the space under the target (see
            :mod:`torchrec_nas.prune.rivals`).
        seeds: seeds of the fine-tunings and of the rivals' trainings (default: the config's
            seed only). Each seed fine-tunes on the training split from its own starting
            batch; a rival's seed initializes its weights.
        rival_steps: training steps of each rival: a number, ``"equal"`` (the model's final
            training steps plus the fine-tuning steps the pruned model had at that target)
            or ``None`` (the config's final training length).
        rival_samples: architectures drawn per target when the search has no candidate.
        sampled_rivals: with ``compare_searched``, every target also gets a sampled rival
            beside the searched one (the search's best may be far below the target).
        history: the search history (default: ``history.jsonl`` of the model's run).
        hardware: PIM preset of the cost estimate.
        quantize: also evaluate each model with ``int8``/``int4`` embedding tables
            (TorchRec's inference quantization) and record the tables' bytes.
    """

    targets: list[float]
    methods: list[str] = dataclasses.field(default_factory=lambda: ["magnitude"])
    steps: int = 3
    finetune_steps: int | None = None
    finetune_lr: float | None = None
    mask_steps: int = 200
    mask_l1: float = 3e-3
    compare_searched: bool = False
    seeds: list[int] | None = None
    rival_steps: int | str | None = None
    rival_samples: int = 2000
    sampled_rivals: bool = False
    history: str | None = None
    hardware: str = "isaac"
    quantize: str | None = None

    def validate(self) -> None:
        self.targets = parse_targets(self.targets)
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"--method {','.join(bad) or '(none)'}: choose from {METHODS}")
        for name in ("steps", "mask_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.mask_l1 >= 0:
            raise ValueError(f"--mask-l1 {self.mask_l1}: must be >= 0")
        if self.finetune_steps is not None and self.finetune_steps < 0:
            raise ValueError("--finetune-steps must be >= 0")
        if self.finetune_lr is not None and not self.finetune_lr > 0:
            raise ValueError("--finetune-lr must be positive")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError(f"--seeds {self.seeds}: give distinct seeds")
        if self.rival_steps is not None and self.rival_steps != "equal":
            if not isinstance(self.rival_steps, int) or self.rival_steps < 1:
                raise ValueError(f"--rival-steps {self.rival_steps}: a positive number or 'equal'")
        if self.rival_samples < 1:
            raise ValueError("--rival-samples must be at least 1")
        if self.quantize not in (None, "int8", "int4"):
            raise ValueError(f"--quantize {self.quantize}: choose int8 or int4")


def parse_seeds(text: str | None) -> list[int] | None:
    """``--seeds 1,2,3`` as a list (``None`` stays ``None``: the config's seed).

    Raises:
        ValueError: an item is not an integer.

    Example::

        parse_seeds("1,2,3")   # [1, 2, 3]
    """
    if text is None:
        return None
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: integers separated by commas") from None


def parse_rival_steps(text: str | None) -> int | str | None:
    """``--rival-steps``: a number of steps, ``equal`` or ``None``.

    Example::

        parse_rival_steps("equal")   # "equal"
    """
    if text is None or text == "equal":
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--rival-steps {text!r}: a number or 'equal'") from None
