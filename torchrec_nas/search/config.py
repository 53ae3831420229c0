"""The ``search.finetune`` config section: how a candidate is scored. Imports no torch, so
loading a config stays cheap."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FinetuneConfig:
    """How a candidate is scored (defaults: the NASRec reference).

    Args:
        steps: fine-tuning steps of the final linear layer on training batches.
        lr: its learning rate (Adagrad).
        eval_batches: validation batches per candidate (``null``: the whole split).
    """

    steps: int = 500
    lr: float = 0.04
    eval_batches: int | None = None

    def validate(self) -> None:
        if self.steps < 0 or self.lr <= 0:
            raise ValueError("steps must be >= 0 and lr > 0")
