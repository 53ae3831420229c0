"""Streaming delimited text files in blocks, with bad-row handling that names file and line.

Files are read in blocks of whole lines (never whole); blocks are parsed by pyarrow's CSV reader
into typed columns and converted by the caller in a small thread pool, in parallel, and handed
back in file order. Line numbers are tracked per block, so a bad value is
reported as ``FILE:LINE: field NAME: what is wrong``. The ``on_bad_row`` policy decides whether
that raises (:class:`BadRowError`) or the row is skipped and counted (:class:`BadRows`).
"""

from __future__ import annotations

import glob
import io
import logging
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from torchrec_nas.data.ids import MISSING

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
    """

    def __init__(self, path: str | Path, line: int, field: str, reason: str) -> None:
        self.path, self.line, self.field, self.reason = str(path), line, field, reason
        super().__init__(f"{path}:{line}: field {field}: {reason}")


@dataclass
class BadRows:
    """The ``on_bad_row`` policy and what it skipped.

    Args:
        policy: ``error`` or ``skip``.
        skipped: rows skipped so far.
        examples: the first few skipped rows' messages.
    """

    policy: str = "error"
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


@dataclass
class TextBlock:
    """One parsed block of a text file.

    Args:
        table: the block's rows with the wanted column types (wrong-width rows removed).
        path: the file.
        lines: the 1-based file line of every row of ``table``.
    """

    table: pa.Table
    path: Path
    lines: np.ndarray


def check_readable(path: str | Path) -> Path:
    """The path, or a :class:`DataError` saying why it cannot be read."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as e:
        raise DataError(f"{p}: cannot be read: {e}") from e
    return p


def expand_paths(spec: str) -> list[Path]:
    """Files named by ``spec``: comma-separated paths, each may be a glob (sorted matches).

    Example::

        expand_paths("/data/criteo/day_*")  # [day_0, day_1, ..., day_23] (sorted by name)
    """
    out: list[Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if any(c in part for c in "*?["):
            matches = sorted(glob.glob(part))
            if not matches:
                raise DataError(f"{part}: no file matches this pattern")
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(part))
    if not out:
        raise DataError(f"path: {spec!r} names no file")
    return out


def read_header(path: Path, delimiter: str) -> list[str]:
    """The column names in the first line of a file."""
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    if not first:
        raise DataError(f"{path}:1: expected a header line, found an empty line")
    return [c.strip().strip('"') for c in first.split(delimiter)]


def _parse(
    data: bytes,
    names: list[str],
    types: dict[str, pa.DataType],
    delimiter: str,
    quote: bool,
    threads: bool,
) -> tuple[pa.Table, list[tuple[int | None, int, str]]]:
    invalid: list[tuple[int | None, int, str]] = []

    def handler(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number, row.actual_columns, row.text))
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(data),
        # One block of the file is one Arrow chunk per column: no combine_chunks copies later.
        read_options=pacsv.ReadOptions(
            column_names=names, use_threads=threads, block_size=max(1 << 20, len(data) + 1)
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char='"' if quote else False,
            double_quote=quote,
            escape_char=False,
            ignore_empty_lines=False,
            invalid_row_handler=handler,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=[""],
            check_utf8=False,  # bytes that are not UTF-8 are bad values, named by line
            true_values=[],
            false_values=[],
        ),
    )
    return table, invalid


def iter_blocks(
    path: str | Path,
    names: list[str],
    types: dict[str, pa.DataType],
    bad: BadRows,
    convert: Callable[[TextBlock], T],
    delimiter: str = "\t",
    header: bool = False,
    quote: bool = False,
    block_bytes: int = 8 << 20,
    workers: int | None = None,
) -> Iterator[T]:
    """Reads a delimited text file in blocks of whole lines and converts each block.

    Blocks are parsed (pyarrow, one thread each) and converted in a pool of ``workers``
    threads, and yielded in file order; pyarrow and numpy release the GIL, so blocks are
    processed in parallel.

    Args:
        path: the file.
        names: the column names, in file order.
        types: the pyarrow type of each column (``pa.string()`` keeps the text; typed columns
            that fail to convert fall back to text so that the bad value can be located).
        bad: the bad-row policy; rows with the wrong number of fields are reported to it.
        convert: turns a parsed :class:`TextBlock` into the caller's chunk (runs in a worker).
        delimiter: the field delimiter.
        header: skip the first line.
        quote: honour ``"`` quoting (quoted fields must not contain newlines).
        block_bytes: bytes per block.
        workers: threads (default: the number of CPUs, at most 4).

    Yields:
        ``convert``'s result for every block, in file order.
    """
    p = check_readable(path)
    workers = workers or min(4, os.cpu_count() or 1)

    def work(data: bytes, line0: int, num_lines: int) -> T:
        return convert(_block(p, data, line0, num_lines, names, types, bad, delimiter, quote))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[T]] = deque()
        for data, line0, num_lines in _line_blocks(p, header, block_bytes):
            pending.append(pool.submit(work, data, line0, num_lines))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _line_blocks(p: Path, header: bool, block_bytes: int) -> Iterator[tuple[bytes, int, int]]:
    """``(data, first_line, num_lines)`` for blocks of whole lines of a file."""
    line0 = 1
    try:
        f = open(p, "rb")  # noqa: SIM115
    except OSError as e:
        raise DataError(f"{p}: cannot be read: {e}") from e
    with f:
        if header:
            f.readline()
            line0 = 2
        rest = b""
        while True:
            chunk = f.read(block_bytes)
            data = rest + chunk if rest else chunk
            if not chunk:
                rest = b""
            else:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # one line longer than a block: keep reading
                    rest = data
                    continue
                data, rest = data[:cut], data[cut:]
            if not data:
                break
            # pyarrow ends a line at \n, \r\n or a lone \r; count lines the same way.
            num_lines = data.count(b"\n")
            if b"\r" in data:
                num_lines += data.count(b"\r") - data.count(b"\r\n")
            num_lines += 0 if data.endswith((b"\n", b"\r")) else 1
            yield data, line0, num_lines
            line0 += num_lines
            if not chunk:
                break


_ROW_RE = re.compile(r"Row #(\d+)")
_LINE_END = re.compile(rb"\r\n|\n|\r")


def _empty_table(names: list[str]) -> pa.Table:
    return pa.table({n: pa.array([], type=pa.string()) for n in names})


def _cut_line(data: bytes, k: int) -> tuple[bytes, bytes]:
    """``data`` before and after its ``k``-th line (1-based; line ends as pyarrow sees them)."""
    start = 0
    for i, m in enumerate(_LINE_END.finditer(data), start=1):
        if i == k - 1:
            start = m.end()
        if i == k:
            return data[:start], data[m.end() :]
    return data[:start], b""


def _block(
    p: Path,
    data: bytes,
    line0: int,
    num_lines: int,
    names: list[str],
    types: dict[str, pa.DataType],
    bad: BadRows,
    delimiter: str,
    quote: bool,
) -> TextBlock:
    text_types = {n: pa.string() for n in names}
    try:
        table, invalid = _parse(data, names, types, delimiter, quote, threads=False)
    except pa.ArrowInvalid as e:
        msg = str(e)
        row = _ROW_RE.search(msg)
        if "CSV parse error" in msg and row:
            # A row with the wrong number of fields that pyarrow cannot pass to the invalid-row
            # handler (its bytes are not UTF-8): report it, then parse the lines around it.
            k = int(row.group(1))
            bad.report(p, line0 + k - 1, "row", "wrong number of fields (and not UTF-8 text)")
            before, after = _cut_line(data, k)
            parts = []
            if before:
                parts.append(
                    _block(p, before, line0, k - 1, names, text_types, bad, delimiter, quote)
                )
            if after:
                parts.append(
                    _block(
                        p, after, line0 + k, num_lines - k, names, text_types, bad, delimiter, quote
                    )
                )
            tables = [t.table for t in parts] or [_empty_table(names)]
            line_parts = [t.lines for t in parts] or [np.zeros(0, dtype=np.int64)]
            return TextBlock(pa.concat_tables(tables), p, np.concatenate(line_parts))
        if "conversion error" not in msg.lower():
            raise DataError(f"{p}:{line0}: cannot parse block: {e}") from e
        # A value that does not fit its column type: re-read as text and let the caller's
        # converters name the row.
        table, invalid = _parse(data, names, text_types, delimiter, quote, threads=False)
    if invalid and any(num is None for num, _, _ in invalid):
        # Threaded parsing does not number rows; a single-threaded parse does.
        _, invalid = _parse(data, names, text_types, delimiter, quote, threads=False)
    numbered = sorted((int(num), actual) for num, actual, _ in invalid if num is not None)
    for local, actual in numbered:
        bad.report(p, line0 + local - 1, "row", f"expected {len(names)} fields, found {actual}")
    skipped_local = [local for local, _ in numbered]
    local_lines = np.arange(1, num_lines + 1)
    if skipped_local:
        local_lines = np.setdiff1d(local_lines, np.array(skipped_local))
    lines = line0 - 1 + local_lines[: table.num_rows]
    return TextBlock(table=table, path=p, lines=lines)


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
