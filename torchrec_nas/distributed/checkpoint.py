"""Checkpoints of a sharded model and its optimizers with ``torch.distributed.checkpoint``.

Every rank writes its own shards; rank 0 writes the ``.metadata`` file last, so a step
directory without it is an interrupted save and is ignored. Local paths use DCP's
``FileSystemWriter``; URLs (``s3://``, ``gs://``, ``file://``, ...) its fsspec writer.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.storage import StorageReader, StorageWriter

from torchrec_nas import storage
from torchrec_nas.distributed.sharding import sharded_tensor_warnings_off
from torchrec_nas.train.checkpoint import CheckpointError
from torchrec_nas.train.resume import ResumePoint

logger = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step_(\d{9})$")


class DistributedCheckpointer:
    """Saves and restores ``{model, optimizer, step, rows, loss}`` of a sharded training run
    under ``root/step_NNNNNNNNN/``, keeping the latest ``keep``.

    It is a :class:`~torchrec_nas.train.resume.Checkpointer`.

    Args:
        root: a directory path or fsspec URL shared by all ranks (a string, as
            :func:`torchrec_nas.storage.join` makes it).
        keep: how many complete checkpoints to keep.

    Example::

        ckpt = DistributedCheckpointer("s3://bucket/run/supernet/dcp")
        point = ckpt.load("supernet", dmp, optimizer)   # a ResumePoint or None
    """

    def __init__(self, root: str | Path, keep: int = 2) -> None:
        self.root = str(root).rstrip("/")
        self.keep = keep
        self.fs, self.fs_root = storage.filesystem(self.root)

    def _writer(self, path: str) -> StorageWriter:
        local = storage.local_path(path)
        if local is None:
            from torch.distributed.checkpoint._fsspec_filesystem import FsspecWriter

            return FsspecWriter(path)
        return FileSystemWriter(str(local))

    def _reader(self, path: str) -> StorageReader:
        local = storage.local_path(path)
        if local is None:
            from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader

            return FsspecReader(path)
        return FileSystemReader(str(local))

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints, oldest first."""
        if not self.fs.exists(self.fs_root):
            return []
        found = []
        for entry in self.fs.ls(self.fs_root, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            m = STEP_DIR.match(name)
            if m and self.fs.exists(f"{entry.rstrip('/')}/.metadata"):
                found.append(int(m.group(1)))
        return sorted(found)

    def path(self, step: int) -> str:
        return f"{self.root}/step_{step:09d}"

    def _state(self, desc: str, model: nn.Module, optimizer: Any) -> dict[str, Any]:
        state: dict[str, Any] = {"model": model.state_dict(), "desc": desc}
        # DCP loads only the keys it is given: every field of the resume point.
        state.update(ResumePoint(step=0, rows=0, loss=0.0, loss_ema=0.0).to_dict())
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        return state

    def save(self, desc: str, model: nn.Module, optimizer: Any, point: ResumePoint) -> None:
        """Writes checkpoint ``point.step`` (every rank must call it), then drops old ones."""
        state = self._state(desc, model, optimizer)
        state.update(point.to_dict())
        with sharded_tensor_warnings_off():
            dcp.save(state, storage_writer=self._writer(self.path(point.step)))
        dist.barrier()
        if dist.get_rank() == 0:
            for old in self.steps()[: -self.keep]:
                self.fs.rm(f"{self.fs_root}/step_{old:09d}", recursive=True)
            self.remove_incomplete()

    def remove_incomplete(self) -> None:
        """Removes step directories without ``.metadata``: saves a kill cut short."""
        for entry in self.fs.ls(self.fs_root, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if STEP_DIR.match(name) and not self.fs.exists(f"{entry.rstrip('/')}/.metadata"):
                self.fs.rm(entry, recursive=True)

    def load(self, desc: str, model: nn.Module, optimizer: Any) -> ResumePoint | None:
        """Restores the latest complete checkpoint into ``model`` and ``optimizer`` in place;
        ``None`` if there is none."""
        steps = self.steps()
        if not steps:
            return None
        if optimizer is not None:
            optimizer.init_state()
        state = self._state(desc, model, optimizer)
        path = self.path(steps[-1])
        try:
            saved = self._reader(path).read_metadata()  # a clear error before DCP's own
            for key in ResumePoint(step=0, rows=0, loss=0.0, loss_ema=0.0).to_dict():
                if key not in saved.state_dict_metadata:
                    del state[key]  # a field newer than the checkpoint: its default
            with sharded_tensor_warnings_off():
                dcp.load(state, storage_reader=self._reader(path))
        except Exception as e:
            raise CheckpointError(
                f"{path}: checkpoint could not be read ({type(e).__name__}); delete it to "
                "resume from the one before, or the whole directory to start afresh"
            ) from e
        if state["desc"] != desc:
            raise CheckpointError(f"{path}: checkpoint is of {state['desc']!r}, not {desc!r}")
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        logger.info("resumed %s from %s", desc, path)
        return ResumePoint.from_dict(state)

    def load_model(self, model: nn.Module, step: int | None = None) -> int:
        """Loads only the model of checkpoint ``step`` (default: the latest); returns the step."""
        steps = self.steps()
        if not steps:
            raise FileNotFoundError(f"{self.root}: no complete checkpoint")
        step = steps[-1] if step is None else step
        state = {"model": model.state_dict()}
        with sharded_tensor_warnings_off():
            dcp.load(state, storage_reader=self._reader(self.path(step)))
        model.load_state_dict(state["model"])
        return step
