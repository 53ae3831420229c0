"""The per-rank entry point's process hygiene."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchrec_nas.runlock import process_alive

ROOT = Path(__file__).resolve().parents[1]

# A launcher (like torchrun's agent) that starts one rank and waits; the rank prints its pid.
LAUNCHER = """
import subprocess, sys
rank = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
rank.wait()
"""
RANK = """
import os, time
from torchrec_nas.launch.main import die_with_launcher
assert die_with_launcher()
print(os.getpid(), flush=True)
open(os.environ["PID_FILE"], "w").write(str(os.getpid()))
time.sleep(60)
"""


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie lasts until init reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return process_alive(pid)
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_rank_ends_when_its_launcher_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "rank.pid"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PID_FILE=str(pid_file))
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, RANK], env=env)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the rank never started"
        time.sleep(0.05)
    rank = int(pid_file.read_text())
    assert running(rank)
    launcher.kill()  # SIGKILL: the launcher cannot pass anything on
    launcher.wait()
    deadline = time.monotonic() + 10
    while running(rank) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(rank), "the rank outlived its launcher"
