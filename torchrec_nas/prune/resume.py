"""A rerun of ``prune`` resumes its fine-tunings by trial name alone: the schedule they were
made with is recorded beside them, and a rerun with another is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.prune.options import PruneOptions
from torchrec_nas.train.checkpoint import check_record


def schedule(
    model_path: str | Path, options: PruneOptions, steps: int, lr: float
) -> dict[str, Any]:
    """What the models under ``out`` depend on (``steps`` and ``lr``: the fine-tunings'
    resolved steps and learning rate): a rerun resumes only with the same.

    Example::

        schedule("runs/demo/train/model_nasrec.pt", PruneOptions(targets=[0.5]), 100, 0.01)
    """
    return {
        "model": str(local.resolve() if (local := storage.local_path(model_path)) else model_path),
        "targets": options.targets,
        "steps": options.steps,
        "finetune_steps": steps,
        "finetune_lr": lr,
        "mask_steps": options.mask_steps,
        "mask_l1": options.mask_l1,
    }


def check_resume(out: str, schedule: dict[str, Any]) -> None:
    """Records ``schedule`` in ``out/prune_schedule.json``, or checks it against the one a
    previous run recorded there (its fine-tunings resume by trial name alone).

    Raises:
        ValueError: ``out`` holds a run with another schedule (the message names the fields).

    Example::

        check_resume("runs/demo/prune", {"targets": [0.5], "steps": 3})
    """
    path = storage.join(out, "prune_schedule.json")
    _, changed = check_record(path, schedule)
    if changed:
        raise ValueError(
            f"{out}: holds a prune run with other {', '.join(changed)} ({path}); give a fresh "
            "--out, or the same options to resume"
        )
