"""Refused reruns and options: a prune rerun into an ``out`` that holds another schedule
(naming what differs), a negative L1 weight."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchrec_nas.prune.options import PruneOptions
from torchrec_nas.prune.resume import check_resume, schedule


def test_rerun_with_another_schedule_is_refused(tmp_path: Path) -> None:
    schedule = {"model": "m.pt", "targets": [0.7, 0.4], "steps": 1, "finetune_lr": 0.0125}
    check_resume(str(tmp_path), schedule)
    check_resume(str(tmp_path), dict(schedule))  # the same: resumes
    with pytest.raises(ValueError, match=r"other steps, targets \(.*prune_schedule.json\)"):
        check_resume(str(tmp_path), {**schedule, "targets": [0.4], "steps": 2})


def test_negative_or_nan_mask_l1_is_refused() -> None:
    for bad in (-1e-3, float("nan")):
        with pytest.raises(ValueError, match="--mask-l1"):
            PruneOptions(targets=[0.5], mask_l1=bad).validate()
    PruneOptions(targets=[0.5], mask_l1=0.0).validate()


def test_the_same_model_spelt_two_ways_has_one_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    options = PruneOptions(targets=[0.5])
    relative = schedule("run/train/model_nasrec.pt", options, 2, 0.01)
    assert relative == schedule(tmp_path / "run/train/model_nasrec.pt", options, 2, 0.01)
    assert relative != schedule("run/train/other.pt", options, 2, 0.01)
