"""One run per output directory: the lock file, its refusal and the stale takeover."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from torchrec_nas.runlock import RunLock, RunLockError


def test_a_second_lock_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    with RunLock(tmp_path) as first:
        holder = json.loads(Path(first.path).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(RunLockError, match=rf"pid {os.getpid()} on {socket.gethostname()}"):
            RunLock(tmp_path).acquire()
        assert Path(first.path).exists()  # the refused run did not remove the holder's lock
        with RunLock(tmp_path / "other"):  # another directory is independent
            pass
    assert not (tmp_path / "run.lock").exists()
    with RunLock(tmp_path):  # released: the next run takes it
        pass


def test_a_dead_process_lock_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lock = tmp_path / "run.lock"
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with RunLock(tmp_path) as taken:
        assert json.loads(Path(taken.path).read_text())["pid"] == os.getpid()
    assert not lock.exists() and not list(tmp_path.glob("run.lock.stale.*"))


def test_a_live_or_foreign_holder_is_never_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    lock.write_text(json.dumps({"pid": 1, "host": socket.gethostname()}))  # init: alive
    with pytest.raises(RunLockError, match="another run is using this output directory"):
        RunLock(tmp_path).acquire()
    lock.write_text(json.dumps({"pid": 2**22 + 1, "host": "elsewhere"}))
    with pytest.raises(RunLockError, match="on elsewhere"):
        RunLock(tmp_path).acquire()
    assert json.loads(lock.read_text())["host"] == "elsewhere"


def test_the_command_line_refuses_a_held_output_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchrec_nas.cli import main

    with RunLock(tmp_path):
        assert main(["search", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("torchrec-nas search: error: ") and f"pid {os.getpid()}" in err
    assert not (tmp_path / "history.jsonl").exists()
