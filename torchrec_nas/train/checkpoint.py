"""Results and checkpoints through :mod:`torchrec_nas.storage` (so any path may be a URL):
written atomically with the user's umask, JSON without ``NaN``, checkpoints read with one
clear error.

A file is written to a temporary name beside its destination and renamed over it, so a job
killed at any moment leaves either the old file or the new one; temporaries that a kill left
behind are removed by the next write of the same file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torchrec_nas import storage


class CheckpointError(ValueError):
    """A checkpoint or model file that cannot be used, with what to do about it."""


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` of ``obj`` to ``path`` (a local path or URL), atomically."""
    storage.save_torch_atomic(obj, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes a text file atomically (JSON results, reports)."""
    storage.write_text_atomic(path, text)


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON ``null``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj


def json_dumps(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON of ``obj``: ``NaN`` and infinities become ``null``."""
    return json.dumps(finite_json(obj), indent=indent, allow_nan=False, default=str)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Writes ``obj`` as strict JSON (see :func:`json_dumps`), atomically."""
    write_text_atomic(path, json_dumps(obj))


def load_checkpoint(path: str | Path, what: str = "checkpoint") -> dict[str, Any] | None:
    """The checkpoint at ``path`` (a local path or URL; a dict), or ``None`` if there is none.

    Raises:
        CheckpointError: the file exists but is not a readable ``torch.save`` dict.

    Example::

        state = load_checkpoint("memory://run/supernet/checkpoint.pt")   # None on a fresh run
    """
    if storage.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a {what} file")
    if not storage.isfile(path):
        return None
    try:
        state = storage.load_torch(path)
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{path}: not a readable {what} ({reason}); delete it and rerun the stage that "
            "writes it"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a {what} written by torchrec_nas")
    return state


def check_record(
    path: str | Path, record: dict[str, Any], write: bool = True
) -> tuple[dict[str, Any] | None, list[str]]:
    """Ties a directory to what made it: the first run writes ``record`` to ``path`` (when
    ``write``; other ranks pass ``False``), a later one compares.

    Returns:
        ``(recorded, changed)``: what ``path`` held before (``None`` on the first run) and the
        sorted keys whose values differ from ``record`` (empty when it resumes cleanly).

    Example::

        _, changed = check_record("runs/x/prune/prune_schedule.json", {"steps": 3})
    """
    if not storage.exists(path):
        if write:
            write_json_atomic(path, record)
        return None, []
    before = json.loads(storage.read_text(path))
    changed = sorted(k for k in set(before) | set(record) if before.get(k) != record.get(k))
    return before, changed
