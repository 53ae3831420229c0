"""One run per output directory (a local path or URL): a lock file that names its holder."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from torchrec_nas import storage

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

    On a local folder (a path or ``file://`` URL) the lock file is created atomically
    (``O_CREAT | O_EXCL``) and holds the holder's pid, host and start time. A second run on
    the same directory raises :class:`RunLockError` naming the holder. A lock left by a dead
    process of this host (a killed run) is taken over; a lock held from another host is never
    taken over, since its pid cannot be checked from here.

    On an object store (``s3://``, ``memory://``, ...) there is no exclusive create: the lock
    object is written and read back, best effort. It refuses a run that finds another live
    holder's lock, but two runs starting within the same moment may both proceed.

    Args:
        out: the output directory, a local path or URL (created if missing).
        name: the lock file's name.

    Example::

        with RunLock("runs/x"):
            run_search(cfg, "runs/x")
    """

    def __init__(self, out: str | Path, name: str = LOCK_NAME) -> None:
        self.out = str(out)
        self.path = storage.join(out, name)
        self.me = {"pid": os.getpid(), "host": socket.gethostname()}
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """The lock file's content, ``{}`` when unreadable, ``None`` when there is none."""
        try:
            text = storage.read_text(self.path)
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def _record(self) -> str:
        return json.dumps({**self.me, "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    def _create(self) -> bool:
        local = storage.local_path(self.path)
        if local is None:  # an object store: write, then check that our record stayed
            if storage.exists(self.path):
                return False
            storage.write_text_atomic(self.path, self._record())
            holder = self.holder() or {}
            return all(holder.get(k) == v for k, v in self.me.items())
        try:
            fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(self._record())
        return True

    def _stale(self, holder: dict[str, Any]) -> bool:
        pid = holder.get("pid")
        if holder.get("host") != self.me["host"] or not isinstance(pid, int):
            return False
        return not process_alive(pid)

    def _remove_stale(self, holder: dict[str, Any]) -> None:
        """Removes a dead holder's lock file, and only that one.

        Locally the file is first moved aside under a name of this process: if another run
        took the stale lock over and created its own between our read and the move, what was
        moved is that live lock, and it is put back. On an object store it is removed.
        """
        local = storage.local_path(self.path)
        if local is None:
            storage.remove(self.path)
            return
        aside = local.with_name(f"{local.name}.stale.{os.getpid()}")
        try:
            os.replace(local, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text())
        except (OSError, json.JSONDecodeError):
            moved = {}
        if moved != holder:
            try:
                os.link(aside, local)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def acquire(self) -> None:
        """Takes the lock, or raises :class:`RunLockError` naming the live holder.

        Raises:
            RunLockError: another live run holds the lock, or ``out`` is a file.
            ValueError: no fsspec backend handles ``out``'s URL scheme.
        """
        if storage.isfile(self.out):
            raise RunLockError(f"--out {self.out}: is a file, not a directory")
        storage.makedirs(self.out)
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
                    f"{self.out}: another run is using this output directory ({who}); "
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
                storage.remove(self.path)
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
