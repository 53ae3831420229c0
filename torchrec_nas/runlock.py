"""One run per output directory: a lock file that names its holder."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

LOCK_NAME = "run.lock"


class RunLockError(RuntimeError):
    """The output directory is held by another live run."""


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Holds ``out/run.lock`` for the duration of a ``with`` block.

    The lock file is created atomically (``O_CREAT | O_EXCL``) and holds the holder's pid,
    host and start time. A second run on the same directory raises :class:`RunLockError`
    naming the holder. A lock left by a dead process of this host (a killed run) is taken
    over; a lock held from another host is never taken over, since its pid cannot be checked
    from here.

    Args:
        out: the output directory (created if missing).
        name: the lock file's name.

    Example::

        with RunLock("runs/x"):
            run_search(cfg, "runs/x")
    """

    def __init__(self, out: str | Path, name: str = LOCK_NAME) -> None:
        self.path = Path(out) / name
        self.me = {"pid": os.getpid(), "host": socket.gethostname()}
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """The lock file's content, ``{}`` when unreadable, ``None`` when there is none."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        record = {**self.me, "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        return True

    def _stale(self, holder: dict[str, Any]) -> bool:
        pid = holder.get("pid")
        if holder.get("host") != self.me["host"] or not isinstance(pid, int):
            return False
        return not process_alive(pid)

    def _remove_stale(self, holder: dict[str, Any]) -> None:
        """Removes a dead holder's lock file, and only that one.

        The file is first moved aside under a name of this process: if another run took the
        stale lock over and created its own between our read and the move, what was moved is
        that live lock, and it is put back.
        """
        aside = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text())
        except (OSError, json.JSONDecodeError):
            moved = {}
        if moved != holder:
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def acquire(self) -> None:
        """Takes the lock, or raises :class:`RunLockError` naming the live holder."""
        folder = self.path.parent
        if folder.exists() and not folder.is_dir():
            raise RunLockError(f"--out {folder}: is a file, not a directory")
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self.held = True
                return
            holder = self.holder()
            if holder is None:  # released between our two looks: try again
                continue
            if not self._stale(holder):
                who = (
                    f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                    if holder
                    else "a run whose lock file is being written or is damaged"
                )
                raise RunLockError(
                    f"{self.path.parent}: another run is using this output directory ({who}); "
                    f"wait for it to finish or use another --out (if that run is gone, delete "
                    f"{self.path})"
                )
            self._remove_stale(holder)
        raise RunLockError(f"{self.path}: could not take the lock; try again")

    def release(self) -> None:
        """Removes the lock file if this process still holds it."""
        if self.held:
            holder = self.holder()
            if holder and all(holder.get(k) == v for k, v in self.me.items()):
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
