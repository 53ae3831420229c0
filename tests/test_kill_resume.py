"""The kill-and-resume check: kills at random points, compares results without timings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from torchrec_nas.bench.kill_resume import differences, kill_and_compare, stable

# A job that resumes from a checkpoint of its step and sum (written atomically each step); with
# BROKEN it restarts its sum from zero but keeps the step, as a resume bug would.
JOB = """
import json, os, sys, time
out, broken = sys.argv[1], len(sys.argv) > 2
os.makedirs(out, exist_ok=True)
ckpt = os.path.join(out, "ckpt.json")
step, total = json.load(open(ckpt)) if os.path.exists(ckpt) else (0, 0)
if broken:
    total = 0
t0 = time.time()
while step < 60:
    step, total = step + 1, total + step * step
    json.dump([step, total], open(ckpt + ".tmp", "w"))
    os.replace(ckpt + ".tmp", ckpt)
    time.sleep(0.01)
json.dump({"total": total, "steps": step, "seconds": time.time() - t0},
          open(os.path.join(out, "result.json"), "w"))
"""


def test_volatile_fields_are_ignored_and_real_differences_named() -> None:
    a = {"auc": 0.8, "seconds": 3.0, "trials": [{"rows_per_second": 9.0, "steps": 4}]}
    b = {"auc": 0.8, "seconds": 5.0, "trials": [{"rows_per_second": 7.0, "steps": 5}]}
    assert differences(stable(a), stable(b), "r.json") == ["r.json/trials[0]/steps: 4 vs 5"]
    assert differences(stable(a), stable(a)) == []


def test_a_resuming_job_survives_kills_and_a_broken_one_is_caught(tmp_path: Path) -> None:
    job = tmp_path / "job.py"
    job.write_text(JOB)
    good = kill_and_compare(
        [sys.executable, str(job), "{out}"], tmp_path / "good", ["result.json"], 0.6, 1, 0.2
    )
    assert good.delays and good.identical
    bad = kill_and_compare(
        [sys.executable, str(job), "{out}", "broken"],
        tmp_path / "bad",
        ["result.json"],
        0.6,
        1,
        0.2,
    )
    assert bad.delays and bad.differences[0].startswith("result.json/total:")


def test_a_result_file_the_run_never_writes_is_named(tmp_path: Path) -> None:
    job = tmp_path / "job.py"
    job.write_text(JOB)
    with pytest.raises(RuntimeError, match="results.json: the run wrote no such result"):
        kill_and_compare([sys.executable, str(job), "{out}"], tmp_path / "r", ["results.json"], 5)
