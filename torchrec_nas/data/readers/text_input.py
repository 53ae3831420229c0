"""Opening input files: missing-file messages that name the config field, compression by content.

A text file's compression is known by its first bytes, whatever its name (gzip, bzip2, xz,
zstd); a zip archive or a Parquet file given as text is a one-line error. Error messages never
print bytes that are not text.

An input is a local path (opened by the OS, a :class:`~pathlib.Path`) or an fsspec URL
(``memory://``, ``s3://`` with ``s3fs``; kept as a ``str`` and opened through
:mod:`torchrec_nas.storage`). ``file://`` URLs are local paths.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

import pyarrow as pa

from torchrec_nas import storage
from torchrec_nas.data.errors import DataError

InputPath = Path | str
"""A local input file (a ``Path``) or a remote one (its fsspec URL as a ``str``)."""

COMPRESSIONS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
"""The first bytes of the compressed text files that are read as they are decompressed."""
PARQUET_MAGIC = b"PAR1"
_OTHER_FORMATS = (
    (b"PK\x03\x04", "zip"),
    (PARQUET_MAGIC, "Parquet"),
)


def input_path(path: str | Path) -> InputPath:
    """``path`` as an input: a local ``Path`` (also for ``file://``), or a remote URL as is.

    Example::

        input_path("file:///d/day_0.gz")  # Path("/d/day_0.gz")
        input_path("memory://d/day_0.gz")  # "memory://d/day_0.gz"
    """
    local = storage.local_path(path)
    return local if local is not None else str(path)


def input_name(path: InputPath) -> PurePosixPath:
    """The file name of an input, for its suffixes (``day_0.tsv.gz``)."""
    return PurePosixPath(path.name if isinstance(path, Path) else storage.name(path))


def open_binary(path: InputPath) -> IO[bytes]:
    """Opens an input file for reading bytes: by the OS if local, through fsspec if a URL."""
    if isinstance(path, Path):
        return open(path, "rb")  # noqa: SIM115
    return cast(IO[bytes], storage.open_file(path, "rb"))


def _check_remote(url: str, config_field: str) -> str:
    try:
        fs, inner = storage.filesystem(url)
        if not fs.exists(inner):
            raise DataError(f"{url}: file not found ({config_field})")
        if not fs.isfile(inner):
            raise DataError(f"{url}: not a regular file ({config_field})")
        with fs.open(inner, "rb") as f:
            f.read(1)
    except storage.StorageBackendError as e:
        raise DataError(f"{e} ({config_field})") from None
    except OSError as e:
        raise DataError(f"{url}: cannot be read ({config_field}): {first_line(str(e))}") from e
    return url


def check_readable(path: str | Path, config_field: str = "data.path") -> InputPath:
    """The input (see :func:`input_path`), or a :class:`DataError` saying why it cannot be read.

    Args:
        path: the file: a local path or an fsspec URL.
        config_field: the config field that named it, for the message.

    Example::

        check_readable("missing.csv")
        # DataError: missing.csv: file not found (data.path; a relative path, resolved from
        # the working directory /home/me as /home/me/missing.csv)
    """
    source = input_path(path)
    if isinstance(source, str):
        return _check_remote(source, config_field)
    p = source
    if not p.exists():
        where = config_field
        if not p.is_absolute():
            where += (
                f"; a relative path, resolved from the working directory {Path.cwd()} "
                f"as {p.absolute()}"
            )
        raise DataError(f"{p}: file not found ({where})")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as e:
        raise DataError(f"{p}: cannot be read: {e}") from e
    return p


def read_head(path: InputPath, size: int = 8) -> bytes:
    """The first ``size`` bytes of a file."""
    with open_binary(path) as f:
        return bytes(f.read(size))


def sniff_compression(path: InputPath) -> str | None:
    """The compression of a file by its first bytes (``gzip``, ``bzip2``, ``xz``, ``zstd``).

    Example::

        sniff_compression(Path("day_0.gz"))  # "gzip"; None for a plain text file
    """
    head = read_head(path)
    return next((kind for magic, kind in COMPRESSIONS if head.startswith(magic)), None)


class _ArrowRawInput(io.RawIOBase):
    """A pyarrow input stream as a Python raw stream (for ``io.BufferedReader``'s readline)."""

    def __init__(self, stream: pa.NativeFile) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


def open_text_input(path: str | Path) -> io.BufferedIOBase:
    """Opens a delimited text file for reading bytes; compressed files are decompressed.

    The compression is known by the file's first bytes, whatever its name: gzip, bzip2 and
    xz by Python's modules, zstd by pyarrow's ``CompressedInputStream``.

    Raises:
        DataError: the file is missing or unreadable, or a zip archive or Parquet file (named).

    Example::

        with open_text_input("day_0.gz") as f:
            first_line = f.readline()
    """
    p = check_readable(path)
    head = read_head(p)
    kind = next((kind for magic, kind in COMPRESSIONS if head.startswith(magic)), None)
    if kind == "zstd" and not pa.Codec.is_available("zstd"):
        raise DataError(f"{p}: a zstd-compressed file; this pyarrow cannot read zstd")
    for magic, name in _OTHER_FORMATS:
        if head.startswith(magic):
            raise DataError(
                f"{p}: a {name} file, not delimited text (text files may be gzip, bzip2, "
                "xz or zstd-compressed)"
            )
    if isinstance(p, Path):
        source: Any = p
        if kind == "zstd":
            source = pa.OSFile(str(p))
    else:
        source = open_binary(p)
        if kind == "zstd":
            source = pa.PythonFile(source, mode="r")
    if kind == "gzip":
        return gzip.open(source, "rb")
    if kind == "bzip2":
        return bz2.open(source, "rb")
    if kind == "xz":
        return lzma.open(source, "rb")
    if kind == "zstd":
        stream = pa.CompressedInputStream(source, "zstd")
        return io.BufferedReader(_ArrowRawInput(stream), buffer_size=1 << 20)
    if isinstance(source, Path):
        return open(source, "rb")  # noqa: SIM115
    return cast(io.BufferedIOBase, source)


def _glob(pattern: str) -> list[InputPath]:
    source = input_path(pattern)
    if isinstance(source, Path):
        return [Path(m) for m in sorted(glob.glob(str(source)))]
    try:
        fs, inner = storage.filesystem(source)
    except storage.StorageBackendError as e:
        raise DataError(f"{e} (data.path)") from None
    return [fs.unstrip_protocol(m) for m in sorted(fs.glob(inner))]


def expand_paths(spec: str) -> list[InputPath]:
    """Files named by ``spec``: comma-separated paths or URLs, each may be a glob (sorted
    matches; a URL's through its fsspec filesystem's ``glob``).

    Example::

        expand_paths("/data/criteo/day_*")  # [day_0, day_1, ..., day_23] (sorted by name)
        expand_paths("s3://bucket/criteo/day_*")  # ["s3://bucket/criteo/day_0", ...]
    """
    out: list[InputPath] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if any(c in part for c in "*?["):
            matches = _glob(part)
            if not matches:
                raise DataError(f"{part}: no file matches this pattern (data.path)")
            out.extend(matches)
        else:
            out.append(input_path(part))
    if not out:
        raise DataError(f"data.path: {spec!r} names no file")
    return out


def read_header(path: InputPath, delimiter: str) -> list[str]:
    """The column names in the first line of a file.

    Raises:
        DataError: the first line is empty, or not UTF-8 text (a binary file); the message
            does not print its bytes.
    """
    with open_text_input(path) as f:
        first = read_or_fail(path, lambda: f.readline(1 << 20))
    try:
        text = first.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise DataError(
            f"{path}:1: the header line is not UTF-8 text: not a delimited text file "
            "(a table source knows Parquet by its first bytes with format: auto)"
        ) from None
    if not text:
        raise DataError(f"{path}:1: expected a header line, found an empty line")
    return [c.strip().strip('"') for c in text.split(delimiter)]


def printable_names(names: list[str], limit: int = 20) -> str:
    """Column names for an error message: control characters escaped, at most ``limit``.

    Example::

        printable_names(["age", "ci\\x1bty"])  # "age, 'ci\\\\x1bty'"
    """
    shown = [n if n.isprintable() and len(n) <= 60 else repr(n[:60]) for n in names[:limit]]
    more = f", ... ({len(names)} columns)" if len(names) > limit else ""
    return ", ".join(shown) + more


def read_or_fail(path: InputPath, read: Callable[[], bytes]) -> bytes:
    """``read()``, or a :class:`DataError` naming the file when its compressed stream is broken."""
    try:
        return read()
    except (OSError, EOFError, zlib.error, lzma.LZMAError, pa.ArrowException) as e:
        # A corrupt or truncated compressed stream.
        kind = sniff_compression(path) or "text"
        raise DataError(f"{path}: cannot be read as {kind}: {first_line(str(e))}") from None


def first_line(message: str, limit: int = 200) -> str:
    """The first line of ``message``, cut at ``limit`` characters."""
    first = message.strip().splitlines()[0] if message.strip() else message
    return first if len(first) <= limit else first[:limit] + "..."
