"""Files written atomically with the user's umask, JSON without ``NaN``, checkpoints read
with one clear error.

A file is written to a temporary name beside its destination and renamed over it, so a job
killed at any moment leaves either the old file or the new one; temporaries that a kill left
behind are removed by the next write of the same file.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint or model file that cannot be used, with what to do about it."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    for stale in p.parent.glob(f".{p.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = p.parent / f".{p.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it."""
    _write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes a text file atomically (JSON results, reports)."""
    _write_atomic(path, lambda tmp: tmp.write_text(text))


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
    """The checkpoint at ``path`` (a dict), or ``None`` if there is none.

    Raises:
        CheckpointError: the file exists but is not a readable ``torch.save`` dict.
    """
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory, not a {what} file")
    if not p.is_file():
        return None
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{p}: not a readable {what} ({reason}); delete it and rerun the stage that writes it"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: not a {what} written by torchrec_nas")
    return state
