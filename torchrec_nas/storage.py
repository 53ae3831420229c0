"""Every file the project reads or writes goes through here, so every path may be a URL.

A path is either a local path (``runs/demo``, ``/data/x.tsv``) or an fsspec URL
(``file:///tmp/run``, ``memory://run``, ``s3://bucket/run`` with ``s3fs`` installed).
Joining uses ``/`` and keeps the scheme, so ``join("s3://b/run", "supernet.pt")`` stays in the
bucket (``pathlib.Path`` would turn it into a local folder ``s3:/b/run``).

Writes of results and checkpoints are atomic: a local file is written beside its target and
renamed over it with the permissions the user's umask gives; on an object store a file appears
whole when it is closed. A reader therefore never sees half a checkpoint.

Example::

    from torchrec_nas import storage

    out = "memory://runs/demo"
    storage.write_text_atomic(storage.join(out, "best_arch.json"), "{}")
    assert storage.isfile(storage.join(out, "best_arch.json"))
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

PathLike = str | Path


def is_url(path: PathLike) -> bool:
    """Whether ``path`` names a scheme (``memory://``, ``s3://``; ``file://`` counts too)."""
    return "://" in str(path)


def local_path(path: PathLike) -> Path | None:
    """The local path ``path`` names (also for ``file://`` URLs), or ``None`` for a remote one."""
    text = str(path)
    if not is_url(text):
        return Path(text)
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    return None


def join(base: PathLike, *parts: str) -> str:
    """``base/part/...`` keeping a URL's scheme (``join("s3://b/x", "y") == "s3://b/x/y"``)."""
    text = str(base)
    if not is_url(text):
        return str(Path(text, *parts))
    for part in parts:
        text = text.rstrip("/") + "/" + part.strip("/")
    return text


def parent(path: PathLike) -> str:
    """The folder holding ``path``."""
    text = str(path)
    if not is_url(text):
        return str(Path(text).parent)
    scheme, rest = text.split("://", 1)
    head = rest.rstrip("/").rsplit("/", 1)[0] if "/" in rest.rstrip("/") else ""
    return f"{scheme}://{head}"


def name(path: PathLike) -> str:
    """The last component of ``path``."""
    return str(path).rstrip("/").rsplit("/", 1)[-1]


class StorageBackendError(ValueError):
    """A URL whose scheme no installed fsspec backend handles (``s3://`` without ``s3fs``)."""


def filesystem(path: PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``path`` and the path inside it.

    Raises:
        StorageBackendError: no installed fsspec backend handles ``path``'s scheme; the
            message names the scheme and the package to install.
    """
    try:
        fs, inner = url_to_fs(str(path))
    except (ImportError, ValueError) as e:
        scheme = str(path).split("://", 1)[0]
        raise StorageBackendError(
            f"{path}: no fsspec backend for {scheme}:// is installed ({e})"
        ) from e
    return fs, inner


def local_input(path: str, field: str) -> str:
    """The local path of an input that must be on this machine's disk (memory-mapped or read
    by pyarrow): a local path as is, a ``file://`` URL as its path.

    Args:
        path: a local path or URL.
        field: the setting it comes from, to name in the error (``data.path``).

    Raises:
        ValueError: ``path`` is a remote URL.

    Example::

        local_input("file:///data/day_0.gz", "data.path")   # '/data/day_0.gz'
    """
    local = local_path(path)
    if local is None:
        raise ValueError(
            f"{field}: {path}: must be on a local disk (it is memory-mapped); use a local path"
        )
    return str(local)


def exists(path: PathLike) -> bool:
    fs, inner = filesystem(path)
    return bool(fs.exists(inner))


def isfile(path: PathLike) -> bool:
    fs, inner = filesystem(path)
    return bool(fs.isfile(inner))


def isdir(path: PathLike) -> bool:
    fs, inner = filesystem(path)
    return bool(fs.isdir(inner))


def makedirs(path: PathLike) -> None:
    """Creates the folder ``path`` and its parents (nothing to do on object stores)."""
    fs, inner = filesystem(path)
    fs.makedirs(inner, exist_ok=True)


def remove(path: PathLike) -> None:
    """Removes the file ``path`` if it exists."""
    fs, inner = filesystem(path)
    if fs.exists(inner):
        fs.rm(inner)


def listdir(path: PathLike) -> list[str]:
    """Names (not paths) of the entries of folder ``path``; empty if it does not exist."""
    fs, inner = filesystem(path)
    if not fs.isdir(inner):
        return []
    return sorted(name(p) for p in fs.ls(inner, detail=False))


def open_file(path: PathLike, mode: str = "r", **kwargs: Any) -> IO[Any]:
    """Opens ``path`` (text or binary by ``mode``); creates parent folders when writing."""
    if any(m in mode for m in "wa"):
        makedirs(parent(path))
    return fsspec.open(str(path), mode, **kwargs).open()  # type: ignore[no-any-return]


def read_text(path: PathLike) -> str:
    with open_file(path, "r", encoding="utf-8") as f:
        return str(f.read())


def read_json(path: PathLike, what: str, error: type[Exception] = ValueError) -> Any:
    """The JSON value of ``path`` (a local path or URL); a missing file or text that is not
    JSON raises ``error`` with one line naming the path and ``what`` it should have been.

    Example::

        data = read_json("runs/demo/best_arch.json", "architecture", ArchitectureError)
    """
    if not isfile(path):
        raise error(f"{path}: {what} file not found")
    try:
        return json.loads(read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON: {e}") from e


def read_jsonl(path: PathLike) -> list[tuple[str, Any]]:
    """The lines of a JSON-lines file that parse, each with its value, in order; none when the
    file does not exist. A line that does not parse (the last one, cut by a kill mid-append)
    is skipped, so an append-only cache or log resumes from what was whole.

    Example::

        entries = {v["key"]: v for _, v in read_jsonl("runs/demo/rerank_cache.jsonl")}
    """
    if not isfile(path):
        return []
    out = []
    for line in read_text(path).splitlines():
        try:
            out.append((line, json.loads(line)))
        except json.JSONDecodeError:
            continue
    return out


def read_bytes(path: PathLike) -> bytes:
    with open_file(path, "rb") as f:
        return bytes(f.read())


def append_lines(path: PathLike, lines: list[str], sync: bool = False) -> None:
    """Appends whole lines to a text file (a local file: one write, fsynced if ``sync``;
    remote: read and rewritten whole, since object stores cannot append)."""
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    local = local_path(path)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        with open(local, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        return
    old = read_text(path) if isfile(path) else ""
    write_bytes_atomic(path, (old + text).encode())


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Calls ``write(file)`` so that a reader of ``path`` sees the old file or the new one,
    never a part.

    Locally: into a temporary file beside the target (created with the umask's permissions,
    and removed if the write fails), then ``os.replace``; temporaries of the same target that
    a killed process left behind are removed first. On an object store the object appears
    whole when its upload completes.
    """
    local = local_path(path)
    if local is None:
        buffer = io.BytesIO()  # some writers (torch.save) seek; uploads need not
        write(buffer)
        with open_file(path, "wb") as f:
            f.write(buffer.getvalue())
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    for stale in local.parent.glob(f".{local.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, local)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Writes ``data`` atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda f: f.write(data))


def write_text_atomic(path: PathLike, text: str) -> None:
    """Writes a text file atomically (JSON results, reports)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def save_torch_atomic(obj: Any, path: PathLike) -> None:
    """``torch.save`` of ``obj`` to ``path``, atomically."""
    import torch

    write_atomic(path, lambda f: torch.save(obj, f))


def load_torch(path: PathLike) -> Any:
    """``torch.load`` of ``path`` onto the CPU (raises ``FileNotFoundError`` naming it)."""
    import torch

    if not isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    local = local_path(path)
    source: Any = local if local is not None else io.BytesIO(read_bytes(path))
    return torch.load(source, map_location="cpu", weights_only=False)


@contextmanager
def local_file_for_writing(path: PathLike) -> Iterator[Path]:
    """A local file to write ``path`` through, for writers that need a file name.

    Locally, ``path`` itself (its folder created); for a URL, a temporary file that is
    uploaded to ``path`` when the block ends without an error.

    Example::

        with storage.local_file_for_writing("s3://b/run/pareto.png") as png:
            figure.savefig(png)
    """
    local = local_path(path)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        yield local
        return
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder, name(path))
        yield tmp
        write_bytes_atomic(path, tmp.read_bytes())


def walk_files(path: PathLike) -> Iterator[str]:
    """Every file under folder ``path``, as paths in the same form as ``path``."""
    fs, inner = filesystem(path)
    if not fs.isdir(inner):
        return
    prefix = str(path).rstrip("/")
    root = inner.rstrip("/")
    for found in sorted(fs.find(inner)):
        yield prefix + found[len(root) :]


def is_local(path: PathLike) -> bool:
    fs, _ = filesystem(path)
    return isinstance(fs, LocalFileSystem)
