"""The preprocessed binary cache: ``.npy`` arrays per split, memory-mapped, and a manifest.

Layout of a cache directory::

    manifest.json                      spec, rows, positives, split, source fingerprint, summary
    {split}_dense.npy                  float32 [n, num_dense]
    {split}_sparse.npy                 int32   [n, num_one_hot]   table rows (column-major)
    {split}_labels.npy                 float32 [n]
    {split}_mh{k}_values.npy           int32   multi-hot feature k's ids
    {split}_mh{k}_offsets.npy          int64   [n + 1]

with ``split`` in ``train``, ``val``, ``test``. The manifest is written last, so a cache whose
writing was interrupted is never reused. A cache is reused when its manifest's fingerprint
(input files' paths, sizes, modification times and a hash of their first MiB, plus every config
field that changes the content) equals the new one. Writing a cache is composed in
:func:`torchrec_nas.data.build.preprocess`; this module knows the layout only.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from torchrec_nas import storage
from torchrec_nas.config_utils import to_mapping
from torchrec_nas.data.arrays import SPLIT_NAMES, FeatureArrays, SplitArrays
from torchrec_nas.data.config import DataConfig
from torchrec_nas.data.errors import DataError
from torchrec_nas.data.spec import DataSpec

CACHE_VERSION = 1
_CONTENT_FIELDS = (
    "source",
    "split",
    "split_fractions",
    "split_seed",
    "on_bad_row",
    "hash_buckets",
    "min_frequency",
    "max_rows_per_table",
    "kdd12_profile_path",
    "schema",
    "npy_days",
)


def file_fingerprint(path: Path | str) -> dict[str, Any]:
    """Path, size, modification time and SHA-256 of the first MiB of a file (local or a URL)."""
    if not isinstance(path, Path):
        fs, inner = storage.filesystem(path)
        info = fs.info(inner)
        with storage.open_file(path, "rb") as f:
            remote_head = hashlib.sha256(f.read(1 << 20)).hexdigest()
        modified = next((info[k] for k in ("mtime", "LastModified", "created") if k in info), None)
        return {
            "path": path,
            "size": int(info.get("size") or 0),
            "mtime": str(modified),
            "head_sha256": remote_head,
        }
    st = path.stat()
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()
    return {
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "head_sha256": head,
    }


def fingerprint(cfg: DataConfig, files: list[Path | str]) -> dict[str, Any]:
    """What a cache's content depends on."""
    config = {name: to_mapping(getattr(cfg, name)) for name in _CONTENT_FIELDS}
    if cfg.bucketize_dense is not None:  # only when set: caches written before it stay valid
        config["bucketize_dense"] = to_mapping(cfg.bucketize_dense)
    return {
        "version": CACHE_VERSION,
        "config": config,
        "files": [file_fingerprint(p) for p in files],
    }


def read_manifest(cache_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of a complete cache, or ``None``."""
    path = Path(cache_dir) / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest


def write_manifest(
    cache_dir: str | Path,
    spec: DataSpec,
    parts: list[FeatureArrays],
    fingerprint_: dict[str, Any],
    summary: dict[str, Any],
) -> dict[str, Any]:
    """Writes ``manifest.json`` (atomically) once the split arrays are in place."""
    root = Path(cache_dir)
    manifest = {
        "version": CACHE_VERSION,
        "spec": spec.to_dict(),
        "rows": {s: len(p) for s, p in zip(SPLIT_NAMES, parts)},
        "positives": {s: int(np.asarray(p.labels).sum()) for s, p in zip(SPLIT_NAMES, parts)},
        "fingerprint": fingerprint_,
        "summary": summary,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    storage.write_text_atomic(root / "manifest.json", json.dumps(manifest, indent=2))
    return manifest


def load_cache(cache_dir: str | Path) -> SplitArrays:
    """The spec and the memory-mapped splits of a cache directory; ``info`` is its manifest.

    Example::

        cached = load_cache("/data/criteo_cache")
        train, val, test = cached.parts
    """
    root = Path(cache_dir)
    manifest = read_manifest(root)
    if manifest is None:
        raise DataError(f"{root}: not a complete torchrec_nas data cache (no manifest.json)")
    spec = DataSpec.from_dict(manifest["spec"])
    parts = []
    for split in SPLIT_NAMES:

        def load(name: str, split: str = split) -> np.ndarray:
            return np.load(root / f"{split}_{name}.npy", mmap_mode="r")

        multi = [
            (load(f"mh{k}_values"), load(f"mh{k}_offsets")) for k in range(len(spec.multi_hot))
        ]
        parts.append(FeatureArrays(load("dense"), load("sparse"), load("labels"), multi))
    return SplitArrays(spec, parts, manifest)


def reuse_summary(manifest: dict[str, Any], cache_dir: str | Path) -> dict[str, Any]:
    """What :func:`~torchrec_nas.data.build.preprocess` reports when it reuses a cache."""
    return {
        "reused": True,
        "cache_dir": str(cache_dir),
        "rows": manifest["rows"],
        "positives": manifest["positives"],
        "skipped_bad_rows": manifest["summary"].get("skipped_bad_rows", 0),
        "dense": manifest["summary"].get("dense"),
    }


def clear_cache(cache_dir: str | Path) -> Path:
    """Creates ``cache_dir`` or removes the manifest and arrays of the cache in it."""
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").unlink(missing_ok=True)
    for stale in root.glob("*.npy"):
        stale.unlink()
    return root
