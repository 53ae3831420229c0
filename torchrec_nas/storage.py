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
import os
import tempfile
from collections.abc import Iterator
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


def filesystem(path: PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``path`` and the path inside it."""
    fs, inner = url_to_fs(str(path))
    return fs, inner


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


def read_bytes(path: PathLike) -> bytes:
    with open_file(path, "rb") as f:
        return bytes(f.read())


def append_lines(path: PathLike, lines: list[str]) -> None:
    """Appends whole lines to a text file (a local file: one write; remote: read and rewrite,
    since object stores cannot append)."""
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    if local_path(path) is not None:
        with open_file(path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
        return
    old = read_text(path) if isfile(path) else ""
    write_bytes_atomic(path, (old + text).encode())


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Writes ``data`` so that a reader sees the old file or the new one, never a part.

    Locally: a temporary file beside the target (created with the umask's permissions, and
    removed if the write fails), then ``os.replace``.
    """
    local = local_path(path)
    if local is None:
        with open_file(path, "wb") as f:
            f.write(data)
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, local)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: PathLike, text: str) -> None:
    """Writes a text file atomically (JSON results, reports)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def save_torch_atomic(obj: Any, path: PathLike) -> None:
    """``torch.save`` of ``obj`` to ``path``, atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_torch(path: PathLike) -> Any:
    """``torch.load`` of ``path`` onto the CPU (raises ``FileNotFoundError`` naming it)."""
    import torch

    if not isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    return torch.load(io.BytesIO(read_bytes(path)), map_location="cpu", weights_only=False)


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
