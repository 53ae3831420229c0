"""Readers of every ``source``, registered by name (see :mod:`.base`).

Importing this package registers the built-in readers: ``synthetic``, ``criteo_tsv``,
``criteo_npy``, ``avazu``, ``kdd12``, ``tabular`` and ``cache``.
"""

from torchrec_nas.data.readers.avazu import AvazuReader
from torchrec_nas.data.readers.base import (
    Reader,
    RowReader,
    SplitReader,
    make_reader,
    register_reader,
    registered_sources,
)
from torchrec_nas.data.readers.cache import CacheReader
from torchrec_nas.data.readers.criteo import CriteoTsvReader
from torchrec_nas.data.readers.criteo_npy import CriteoNpyReader
from torchrec_nas.data.readers.kdd12 import Kdd12Reader
from torchrec_nas.data.readers.synthetic import SyntheticReader
from torchrec_nas.data.readers.tabular import TableReader

__all__ = [
    "AvazuReader",
    "CacheReader",
    "CriteoNpyReader",
    "CriteoTsvReader",
    "Kdd12Reader",
    "Reader",
    "RowReader",
    "SplitReader",
    "SyntheticReader",
    "TableReader",
    "make_reader",
    "register_reader",
    "registered_sources",
]
