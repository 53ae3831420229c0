"""The ``cache`` source: a directory written by :func:`torchrec_nas.data.preprocess`."""

from __future__ import annotations

from pathlib import Path

from torchrec_nas.data.arrays import SplitArrays
from torchrec_nas.data.cache import load_cache
from torchrec_nas.data.config import DataConfig
from torchrec_nas.data.readers.base import SplitReader, register_reader


@register_reader("cache")
class CacheReader(SplitReader):
    """Reads the memory-mapped splits of a cache directory.

    Args:
        cache_dir: the directory (``path``, or ``cache_dir`` when ``path`` is unset).

    Example::

        arrays = CacheReader("cache/criteo").read_splits()
    """

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = cache_dir

    @classmethod
    def from_config(cls, cfg: DataConfig) -> CacheReader:
        cache_dir = cfg.path or cfg.cache_dir
        assert cache_dir is not None  # DataConfig.validate
        return cls(cache_dir)

    def read_splits(self) -> SplitArrays:
        cached = load_cache(self.cache_dir)
        summary = cached.info.get("summary", {})
        info = {
            "source": "cache",
            "cache_dir": str(self.cache_dir),
            "skipped_bad_rows": summary.get("skipped_bad_rows", 0),
            "positives": cached.info.get("positives"),
            "dense": summary.get("dense"),
        }
        return SplitArrays(cached.spec, cached.parts, info)
