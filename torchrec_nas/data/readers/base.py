"""The two kinds of readers and the registry that maps a config's ``source`` to one.

- A :class:`RowReader` streams a file source's rows as :class:`~torchrec_nas.data.arrays.RawChunk`
  s (raw ids, not yet split); :func:`~torchrec_nas.data.build.build_data` materializes them
  (compacts ids, splits) and caches the result.
- A :class:`SplitReader` gives rows that are already table rows and split (the synthetic data
  set, a cache directory).

A reader class registers the ``source`` name it reads with :func:`register_reader`;
:func:`make_reader` builds the reader a config names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from torchrec_nas.data.arrays import RawChunk, SplitArrays
from torchrec_nas.data.config import DataConfig
from torchrec_nas.data.errors import BadRows, DataError
from torchrec_nas.data.readers.text_input import InputPath


class Reader(ABC):
    """What every reader has: a constructor from the ``data:`` config."""

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: DataConfig) -> Reader:
        """The reader of ``cfg.source`` with the settings of ``cfg``."""


@dataclass
class RowReader(Reader):
    """Base of the file readers: feature names, per-feature settings and the chunk stream.

    Args:
        dense_names: the numeric columns of ``RawChunk.dense`` (``NaN`` where missing).
        sparse_names: one-hot feature names.
        multi_hot_names: multi-hot feature names (after the one-hot ones in the KJT).
        files: the input files (fingerprinted by the cache).
        bad: the bad-row policy and its count.
        min_frequency: per sparse feature (one-hot then multi-hot).
        standardize: per numeric column, whether to standardize with train statistics.
        clip: per numeric column, clip standardized values at this many deviations (``None``:
            no clip); empty for no clip anywhere.
        bins: per numeric column, bucketize into this many quantile bins (``None``: do not);
            empty for none.
        dense_kept: per numeric column, whether it is a dense feature (a column may be
            bucketized only); empty when all are.

    Example::

        reader = make_reader(DataConfig(source="criteo_tsv", path="train.txt"))
        rows = sum(len(chunk) for chunk in reader.chunks())
    """

    dense_names: list[str]
    sparse_names: list[str]
    multi_hot_names: list[str]
    files: list[InputPath]
    bad: BadRows
    min_frequency: list[int]
    standardize: list[bool]
    clip: list[float | None] = field(default_factory=list)
    bins: list[int | None] = field(default_factory=list)
    dense_kept: list[bool] = field(default_factory=list)

    @abstractmethod
    def chunks(self) -> Iterator[RawChunk]:
        """Yields the rows in file order."""


class SplitReader(Reader):
    """A source whose rows are already table rows and split into train/val/test.

    Example::

        arrays = make_reader(DataConfig(source="cache", path="cache/")).read_splits()
    """

    @abstractmethod
    def read_splits(self) -> SplitArrays:
        """The spec, the three splits and how they were made."""


_READERS: dict[str, type[Reader]] = {}
R = TypeVar("R", bound=type[Reader])


def register_reader(source: str) -> Callable[[R], R]:
    """A class decorator: the class reads ``source: NAME`` configs.

    Example::

        @register_reader("criteo_tsv")
        class CriteoTsvReader(RowReader):
            ...
    """

    def register(cls: R) -> R:
        if source in _READERS and _READERS[source] is not cls:
            raise ValueError(f"source {source!r} already has a reader: {_READERS[source]}")
        _READERS[source] = cls
        return cls

    return register


def registered_sources() -> list[str]:
    """The ``source`` names that have a reader."""
    return sorted(_READERS)


def make_reader(cfg: DataConfig) -> RowReader | SplitReader:
    """The reader of ``cfg.source``.

    Raises:
        DataError: no reader is registered for the source.
    """
    cls = _READERS.get(cfg.source)
    if cls is None:
        raise DataError(f"source {cfg.source!r} has no reader; registered: {registered_sources()}")
    reader = cls.from_config(cfg)
    assert isinstance(reader, (RowReader, SplitReader))
    return reader
