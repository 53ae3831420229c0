"""What produced a search history: the settings that change scores, the seed, the supernet.

A :class:`~torchrec_nas.search.history.SearchHistory` keeps this record beside its file and
refuses to resume a history that another search wrote.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchrec_nas import storage

if TYPE_CHECKING:
    from torchrec_nas.config import Config
    from torchrec_nas.data import DataSpec

# Data settings that change neither rows nor their order (where a cache lives, read sizes).
_DATA_FIELDS_WITHOUT_EFFECT = ("cache_dir", "chunk_rows")


def fingerprint(value: Any) -> str:
    """SHA-256 of ``value``'s canonical JSON (sorted keys)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_checksum(path: str | Path) -> str:
    """SHA-256 of a file's content; of a directory, of every file's relative path and content.

    Args:
        path: a file or directory, a local path or URL (for instance a supernet checkpoint).

    Example::

        file_checksum("runs/x/supernet.pt")   # 'sha256:5f1c...'
    """
    root = str(path).rstrip("/")
    digest = hashlib.sha256()
    is_dir = storage.isdir(root)
    # Ordered by path components, as pathlib orders them.
    files = (
        sorted(storage.walk_files(root), key=lambda f: f[len(root) :].strip("/").split("/"))
        if is_dir
        else [root]
    )
    for f in files:
        if is_dir:
            digest.update(f[len(root) :].lstrip("/").encode() + b"\0")
        with storage.open_file(f, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def search_provenance(cfg: Config, spec: DataSpec, supernet: str | Path) -> dict[str, str]:
    """The record a search's history is tied to: ``config``, ``seed`` and ``supernet``.

    ``config`` fingerprints every setting that changes a candidate's score or the candidates
    proposed: the search space (with widths, ``embedding_search.cap_at_rows`` too), the search
    settings (strategy, fine-tuning, objective; not the progress bar, nor ``rerank``, which
    trains after the history is complete and caches its own results by recipe), the data
    settings and the data's features and tables.

    Args:
        cfg: the run's config.
        spec: the data's features and tables.
        supernet: the supernet checkpoint the candidates are scored with (file or directory).

    Example::

        history = SearchHistory(out / "history.jsonl",
                                search_provenance(cfg, data.spec, out / "supernet.pt"))
    """
    search = asdict(cfg.search)
    search.pop("progress", None)
    search.pop("rerank", None)
    data = asdict(cfg.data)
    for name in _DATA_FIELDS_WITHOUT_EFFECT:
        data.pop(name, None)
    config: dict[str, Any] = {
        "space": asdict(cfg.space),
        "search": search,
        "data": data,
        "spec": spec.to_dict(),
    }
    if cfg.space.embedding_widths:  # the joint search's widths stop at the rows, or not
        config["cap_at_rows"] = cfg.embedding_search.cap_at_rows
    return {
        "config": fingerprint(config),
        "seed": str(cfg.seed),
        "supernet": file_checksum(supernet),
    }
