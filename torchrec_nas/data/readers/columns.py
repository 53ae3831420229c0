"""Typed columns of a parsed block: numbers and hex categories, with the bad rows they hold.

Converters return the values and a mask of the cells that are valid; a :class:`RowChecker`
collects those masks for one block and applies the ``on_bad_row`` policy once, in line order,
so that a bad value is reported as ``FILE:LINE: field NAME: what is wrong``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from torchrec_nas.data.errors import BadRows
from torchrec_nas.data.ids import MISSING
from torchrec_nas.data.readers.text_blocks import TextBlock


def show(value: pa.Scalar) -> str:
    """``repr`` of a cell for an error message, also for bytes that are not UTF-8."""
    if not value.is_valid:
        return "''"
    if pa.types.is_string(value.type) or pa.types.is_binary(value.type):
        raw = value.as_buffer().to_pybytes()
        try:
            return repr(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return repr(raw)
    return repr(value.as_py())


_INT_RE = r"^\s*[-+]?[0-9]+\s*$"
_FLOAT_RE = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


class RowChecker:
    """Collects per-row problems of one block and applies the policy once, in line order.

    Example::

        check = RowChecker(block, bad)
        ints, ok = to_int(block.table["I1"]); check.flag(~ok, "I1", "is not an integer")
        keep = check.resolve()  # raises on the first bad row, or the rows to keep
    """

    def __init__(self, block: TextBlock, bad: BadRows) -> None:
        self.block, self.bad = block, bad
        self.problem: np.ndarray = np.zeros(block.table.num_rows, dtype=bool)
        self._first: dict[int, tuple[str, str]] = {}

    def flag(
        self, mask: np.ndarray, field: str, reason_for: str, column: str | None = None
    ) -> None:
        """Marks rows in ``mask`` as bad in ``field``; ``reason_for`` may use ``{value}``."""
        if not mask.any():
            return
        values = self.block.table[column or field]
        rows = np.flatnonzero(mask & ~self.problem)
        if self.bad.policy == "error":
            rows = rows[:1]
        elif len(self.bad.examples) >= 10:
            rows = rows[:0]
        for r in rows.tolist():
            self._first[r] = (field, reason_for.format(value=show(values[r])))
        self.problem |= mask

    def resolve(self) -> np.ndarray:
        """Raises (``error``) or counts (``skip``) the bad rows; returns the rows to keep."""
        bad_rows = np.flatnonzero(self.problem)
        for r in bad_rows.tolist():
            field, reason = self._first.get(r, ("row", "bad value"))
            self.bad.report(self.block.path, int(self.block.lines[r]), field, reason)
        return ~self.problem


def to_int(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, ok, missing)``: int64 values (0 where missing or bad) and masks."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    missing = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_integer(arr.type):
        values = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        return values, np.ones(len(arr), dtype=bool), missing
    ok = pc.match_substring_regex(arr, _INT_RE).fill_null(True).to_numpy(zero_copy_only=False)
    clean = pc.if_else(pa.array(ok), arr, pa.scalar(None, pa.string()))
    values = pc.cast(pc.utf8_trim_whitespace(clean), pa.int64()).fill_null(0)
    return values.to_numpy(zero_copy_only=False), ok | missing, missing


def to_float(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, ok, missing)``: float64 values (0 where missing or bad) and masks."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    missing = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        values = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
        finite = np.isfinite(values)
        return np.where(finite, values, 0.0), finite | missing, missing
    ok = pc.match_substring_regex(arr, _FLOAT_RE).fill_null(True).to_numpy(zero_copy_only=False)
    clean = pc.if_else(pa.array(ok), arr, pa.scalar(None, pa.string()))
    values = pc.cast(pc.utf8_trim_whitespace(clean), pa.float64()).fill_null(0)
    return values.to_numpy(zero_copy_only=False), ok | missing, missing


def hex8(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(raw_ids, ok)`` of a column of 8-hex-digit categories; empty fields are :data:`MISSING`.

    Decodes straight from the Arrow string buffers, 8 characters as one 64-bit word.
    When every field is empty or 8 characters long (always, in valid Criteo data) the
    characters are contiguous and decode as one ``[m, 8]`` array.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    lengths = offsets[1:] - offsets[:-1]
    if arr.null_count:  # Arrow allows null slots with bytes behind them; ignore those bytes
        lengths = np.where(arr.is_valid().to_numpy(zero_copy_only=False), lengths, 0)
    eight = lengths == 8
    n8 = int(np.count_nonzero(eight))
    if int(offsets[-1] - offsets[0]) == 8 * n8:
        # Every field is empty or 8 characters (valid Criteo), nulls hold no bytes: the
        # characters of the 8-character fields are contiguous.
        ok = np.ones(n, dtype=bool)
        chars = data[offsets[0] : offsets[-1]]
    else:
        ok = eight | (lengths == 0)
        chars = data[offsets[:-1][eight][:, None] + np.arange(8)].reshape(-1)
    values, good = _decode_hex_words(np.frombuffer(chars.tobytes(), dtype="<u8"))
    if not good.all():
        values[~good] = MISSING
        ok[np.flatnonzero(eight)[~good]] = False
    if n8 == n:
        return values, ok
    out = np.full(n, MISSING, dtype=np.int64)
    out[eight] = values
    return out, ok


_L = np.uint64(0x0101010101010101)


def _decode_hex_words(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decodes 8 ASCII hex digits packed in each uint64 (SWAR: all bytes at once).

    Returns ``(values, valid)``. A byte is a valid digit iff its decoded nibble is below 16 and
    re-encoding the nibble gives the byte back (case-folding letters only).
    """
    u = np.uint64
    with np.errstate(over="ignore"):
        nib = (w & (u(0x0F) * _L)) + u(9) * ((w >> u(6)) & _L)
        letter = ((nib + u(0x06) * _L) & (u(0x10) * _L)) >> u(4)
        expected = nib + u(0x30) * _L + u(0x27) * letter
        valid = ((nib & (u(0xF0) * _L)) == 0) & ((w | (letter << u(5))) == expected)
        t = ((nib << u(4)) | (nib >> u(8))) & u(0x00FF00FF00FF00FF)
        t = ((t << u(8)) | (t >> u(16))) & u(0x0000FFFF0000FFFF)
        t = ((t << u(16)) | (t >> u(32))) & u(0xFFFFFFFF)
    return t.astype(np.int64), valid
