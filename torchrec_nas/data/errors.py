"""Errors of input data and the ``on_bad_row`` policy (a leaf: imports nothing of the package)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

BadRowPolicy = Literal["error", "skip"]

_LOCK = threading.Lock()


class DataError(ValueError):
    """Input data that cannot be read: a missing or unreadable file, or a bad row."""


class BadRowError(DataError):
    """A bad row under ``on_bad_row: error``.

    Args:
        path: the file.
        line: 1-based line number in the file.
        field: the field's name (``"row"`` for a wrong number of fields).
        reason: what is wrong.

    Example::

        str(BadRowError("train.txt", 7, "I3", "'x' is not an integer"))
        # 'train.txt:7: field I3: 'x' is not an integer'
    """

    def __init__(self, path: str | Path, line: int, field: str, reason: str) -> None:
        self.path, self.line, self.field, self.reason = str(path), line, field, reason
        super().__init__(f"{path}:{line}: field {field}: {reason}")


@dataclass
class BadRows:
    """The ``on_bad_row`` policy and what it skipped.

    Args:
        policy: ``error`` (raise :class:`BadRowError`) or ``skip`` (count and go on).
        skipped: rows skipped so far.
        examples: the first few skipped rows' messages.

    Example::

        bad = BadRows("skip")
        bad.report("train.txt", 7, "label", "'2' is not 0 or 1")
        bad.skipped  # 1
    """

    policy: BadRowPolicy = "error"
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def report(self, path: str | Path, line: int, field: str, reason: str) -> None:
        """Raises under ``error``; counts (and keeps up to 10 examples) under ``skip``."""
        if self.policy == "error":
            raise BadRowError(path, line, field, reason)
        with _LOCK:  # blocks are converted in worker threads
            self.skipped += 1
            if len(self.examples) < 10:
                self.examples.append(str(BadRowError(path, line, field, reason)))
