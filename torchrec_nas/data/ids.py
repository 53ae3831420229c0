"""Categorical ids: hashing raw values and compacting them into table rows.

Every reader produces *raw ids*: non-negative int64 values (a parsed hex category, a 63-bit
hash of a string), with :data:`MISSING` for an empty field. :func:`compact_ids` then turns a
column of raw ids into table rows:

- row 0 is reserved for missing values and for values seen fewer than ``min_frequency`` times;
- the other values get rows 1, 2, ... in order of falling frequency (ties by raw id), so a cap
  on the table's rows keeps the most frequent values apart and folds only the rare ones.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MISSING = -1
"""Raw id of an empty (missing) categorical field."""

_MASK63 = np.uint64((1 << 63) - 1)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a fast, well-spread 64-bit hash of int64 values, as non-negative int64."""
    z = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z & _MASK63).astype(np.int64)


def bucketize(raw: np.ndarray, buckets: int | None) -> np.ndarray:
    """Hashes raw ids into ``buckets`` buckets (``None``: unchanged); :data:`MISSING` stays."""
    if buckets is None:
        return raw
    out = mix64(raw) % buckets
    out[raw == MISSING] = MISSING
    return out


def string_hash(value: str | bytes) -> int:
    """A stable 63-bit hash of a string's UTF-8 bytes (Python's ``hash`` differs by process)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    digest = hashlib.blake2b(raw, digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def hash_string_array(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Raw ids of a pyarrow string column: a stable hash per value, nulls and ``""`` missing.

    Only the distinct values of the chunk are hashed in Python; rows map through the
    dictionary indices, so the cost per row is vectorized.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    encoded = pc.dictionary_encode(arr)
    # As bytes: a text file's fields need not be valid UTF-8.
    uniques = pc.cast(encoded.dictionary, pa.binary()).to_pylist()
    table = np.array(
        [MISSING if not u else string_hash(u) for u in uniques] + [MISSING], dtype=np.int64
    )
    indices = encoded.indices.fill_null(len(uniques))
    return table[indices.to_numpy(zero_copy_only=False)]


def compact_ids(
    raw: np.ndarray, min_frequency: int = 1, max_rows: int | None = None
) -> tuple[np.ndarray, int]:
    """Maps a column of raw ids to table rows (see the module docstring).

    Args:
        raw: int64 raw ids, :data:`MISSING` for missing.
        min_frequency: values seen fewer times map to row 0.
        max_rows: cap on the table's rows; rows beyond it fold by modulo into ``[1, max_rows)``.

    Returns:
        ``(rows, num_embeddings)``: int32 rows and the table's size.

    Example::

        rows, n = compact_ids(np.array([7, 7, 9, -1]))  # rows [1, 1, 2, 0], n == 3
    """
    # Arrow's hash-based dictionary encoding: linear time, unlike np.unique's sort.
    encoded = pc.dictionary_encode(pa.array(np.ascontiguousarray(raw, dtype=np.int64)))
    inverse = encoded.indices.to_numpy(zero_copy_only=False)
    uniq = encoded.dictionary.to_numpy(zero_copy_only=False)
    counts = np.bincount(inverse, minlength=len(uniq))
    keep = (counts >= min_frequency) & (uniq != MISSING)
    # Rank kept values by falling count, ties by raw id (uniq is sorted, lexsort is stable).
    order = np.lexsort((uniq, -counts))  # deterministic: does not depend on first appearance
    order = order[keep[order]]
    row_of_unique = np.zeros(len(uniq), dtype=np.int64)
    row_of_unique[order] = np.arange(1, len(order) + 1)
    num_embeddings = len(order) + 1
    if max_rows is not None and num_embeddings > max_rows:
        folded = row_of_unique > 0
        row_of_unique[folded] = 1 + (row_of_unique[folded] - 1) % (max_rows - 1)
        num_embeddings = max_rows
    return row_of_unique[inverse.reshape(-1)].astype(np.int32), num_embeddings
