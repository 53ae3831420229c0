"""Data sources for torchrec_nas: every source yields ``torchrec.datasets.utils.Batch``.

Choose a source in the ``data:`` section of the config (:class:`DataConfig`) and call
:func:`build_data`; it returns a :class:`DataSpec` (feature names, table sizes,
``spec.tables(dim)``) and re-iterable train/val/test ``Batch`` streams.

Sources: ``synthetic`` (default; Criteo-shaped with planted interactions), ``criteo_tsv``
(Kaggle ``train.txt`` / Terabyte ``day_*``), ``criteo_npy`` (TorchRec's preprocessed days),
``avazu``, ``kdd12`` (KDD Cup 2012 track 2), ``tabular`` (any CSV/TSV/Parquet by schema) and
``cache`` (a directory written by :func:`preprocess`). File sources are streamed in blocks;
categorical values become table rows by frequency (row 0: missing or rare), capped at
``max_rows_per_table``; the split is NASRec's stratified 8:1:1 (seed 2018) or time-ordered.
Text files may be gzip, bzip2, xz or zstd-compressed (known by their first bytes). Numeric
columns can also become one-hot features by quantile bins of the train split
(``bucketize_dense``, a table's ``schema.bucketize``).

Modules: :mod:`.config` (the ``data:`` section; imports no torch), :mod:`.errors`,
:mod:`.spec` and :mod:`.arrays` (shared types, leaves); :mod:`.readers` (one reader per source,
registered by its ``source`` name); :mod:`.materialize` (raw rows to compacted ids and splits,
with :mod:`.bucketize`); :mod:`.summary` (rows, positive rates and features of a built data set);
:mod:`.cache` (the cache layout); :mod:`.batching` (``Batch`` streams); :mod:`.build` composes
them. Importing this package imports no torch; ``build_data`` and the other names that need it
load on first use.

Example::

    from torchrec_nas.data import DataConfig, build_data, preprocess_main

    cfg = DataConfig(source="criteo_tsv", path="train.txt", cache_dir="cache/criteo")
    data = build_data(cfg, seed=2018, rank=0, world_size=1)  # parses once, then reuses
    model = NASRecModel(tables=data.spec.tables(16), dense_in_features=13, space=space)
    for batch in data.train:
        ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from torchrec_nas.data.config import (
    BucketizeConfig,
    ColumnConfig,
    DataConfig,
    LabelRule,
    SyntheticConfig,
    TableSchema,
)
from torchrec_nas.data.errors import BadRowError, BadRows, DataError
from torchrec_nas.data.spec import DataSpec

if TYPE_CHECKING:
    from torchrec_nas.data.arrays import FeatureArrays
    from torchrec_nas.data.batching import BatchStream
    from torchrec_nas.data.build import DataSplits, build_data, preprocess, preprocess_main
    from torchrec_nas.data.cache import load_cache
    from torchrec_nas.data.summary import DataSummary, summarize_data

# Names whose modules import torch: loaded on first use, so that reading a config does not.
_LAZY = {
    "FeatureArrays": "torchrec_nas.data.arrays",
    "BatchStream": "torchrec_nas.data.batching",
    "DataSplits": "torchrec_nas.data.build",
    "build_data": "torchrec_nas.data.build",
    "preprocess": "torchrec_nas.data.build",
    "preprocess_main": "torchrec_nas.data.build",
    "load_cache": "torchrec_nas.data.cache",
    "DataSummary": "torchrec_nas.data.summary",
    "summarize_data": "torchrec_nas.data.summary",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BadRowError",
    "BadRows",
    "BatchStream",
    "BucketizeConfig",
    "ColumnConfig",
    "DataConfig",
    "DataError",
    "DataSpec",
    "DataSplits",
    "DataSummary",
    "FeatureArrays",
    "LabelRule",
    "SyntheticConfig",
    "TableSchema",
    "build_data",
    "load_cache",
    "preprocess",
    "preprocess_main",
    "summarize_data",
]
