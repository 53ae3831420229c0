"""Streaming delimited text files in blocks of whole lines, with bad rows named by file and line.

Files are read in blocks of whole lines (never whole; compressed files are decompressed as they
are read, see :mod:`.text_input`); blocks are parsed by pyarrow's CSV reader into typed columns
and converted by the caller in a small thread pool, in parallel, and handed back in file order. Line numbers are tracked per
block, so a row with the wrong number of fields is reported as ``FILE:LINE: field row: ...``
and a bad value (see :mod:`.columns`) as ``FILE:LINE: field NAME: ...``. The ``on_bad_row``
policy (:class:`~torchrec_nas.data.errors.BadRows`) decides whether that raises or the row is
skipped and counted. Bytes that are not UTF-8 text (binary files, zip archives, Parquet) are bad
rows or a one-line :class:`~torchrec_nas.data.errors.DataError`, never a crash, and an error
message never prints them as they are.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from torchrec_nas.data.errors import BadRows, DataError
from torchrec_nas.data.readers.text_input import (
    InputPath,
    check_readable,
    first_line,
    open_text_input,
    read_or_fail,
)

T = TypeVar("T")


@dataclass
class TextBlock:
    """One parsed block of a text file.

    Args:
        table: the block's rows with the wanted column types (wrong-width rows removed).
        path: the file.
        lines: the 1-based file line of every row of ``table``.

    Example::

        block = TextBlock(table, Path("train.txt"), np.arange(1, table.num_rows + 1))
    """

    table: pa.Table
    path: InputPath
    lines: np.ndarray


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


def _line_blocks(p: InputPath, header: bool, block_bytes: int) -> Iterator[tuple[bytes, int, int]]:
    """``(data, first_line, num_lines)`` for blocks of whole lines of a file."""
    line0 = 1
    with open_text_input(p) as f:
        if header:
            read_or_fail(p, lambda: f.readline())
            line0 = 2
        rest = b""
        while True:
            chunk = read_or_fail(p, lambda: f.read(block_bytes))
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


_LINE_END = re.compile(rb"\r\n|\n|\r")


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _count_fields(line: bytes, delimiter: str, quote: bool) -> int:
    if not quote:
        return line.count(delimiter.encode()) + 1
    # latin-1 maps every byte to one character, so any bytes can be split by the csv module.
    return len(next(csv.reader([line.decode("latin-1")], delimiter=delimiter), [""]))


def _drop_unreadable_rows(
    data: bytes, width: int, delimiter: str, quote: bool
) -> tuple[bytes, np.ndarray, list[tuple[int, str]]]:
    """Removes the lines that are not UTF-8 text and have the wrong number of fields.

    pyarrow hands such rows to no handler (it cannot decode them), so they are found here.

    Returns:
        ``(kept data, 1-based local line of every kept line, [(local line, reason)])``.
    """
    kept: list[bytes] = []
    kept_lines: list[int] = []
    problems: list[tuple[int, str]] = []
    start = 0
    ends = [(m.start(), m.end()) for m in _LINE_END.finditer(data)]
    if not ends or ends[-1][1] < len(data):
        ends.append((len(data), len(data)))
    for local, (end, after) in enumerate(ends, start=1):
        line = data[start:end]
        if not _is_utf8(line) and (found := _count_fields(line, delimiter, quote)) != width:
            problems.append((local, f"expected {width} fields, found {found} (not UTF-8 text)"))
        else:
            kept.append(data[start:after])
            kept_lines.append(local)
        start = after
    return b"".join(kept), np.array(kept_lines, dtype=np.int64), problems


def _block(
    p: InputPath,
    data: bytes,
    line0: int,
    num_lines: int,
    names: list[str],
    types: dict[str, pa.DataType],
    bad: BadRows,
    delimiter: str,
    quote: bool,
) -> TextBlock:
    local_lines = np.arange(1, num_lines + 1)
    problems: list[tuple[int, str]] = []
    if not _is_utf8(data):
        data, local_lines, problems = _drop_unreadable_rows(data, len(names), delimiter, quote)
    text_types = {n: pa.string() for n in names}
    invalid: list[tuple[int | None, int, str]] = []
    if not data:
        table = pa.table({n: pa.array([], type=pa.string()) for n in names})
    else:
        try:
            table, invalid = _parse(data, names, types, delimiter, quote, threads=False)
        except pa.ArrowInvalid as e:
            if "conversion error" not in str(e).lower():
                raise DataError(f"{p}:{line0}: cannot parse block: {first_line(str(e))}") from None
            # A value that does not fit its column type: re-read as text and let the caller's
            # converters name the row.
            table, invalid = _parse(data, names, text_types, delimiter, quote, threads=False)
    if invalid and any(num is None for num, _, _ in invalid):
        # Threaded parsing does not number rows; a single-threaded parse does.
        _, invalid = _parse(data, names, text_types, delimiter, quote, threads=False)
    numbered = sorted((int(num), actual) for num, actual, _ in invalid if num is not None)
    for kept_index, actual in numbered:
        problems.append(
            (int(local_lines[kept_index - 1]), f"expected {len(names)} fields, found {actual}")
        )
    for local, reason in sorted(problems):
        bad.report(p, line0 + local - 1, "row", reason)
    if numbered:
        local_lines = np.delete(local_lines, [kept_index - 1 for kept_index, _ in numbered])
    lines = line0 - 1 + local_lines[: table.num_rows]
    return TextBlock(table=table, path=p, lines=lines)
