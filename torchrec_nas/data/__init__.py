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

Example::

    from torchrec_nas.data import DataConfig, build_data, preprocess_main

    cfg = DataConfig(source="criteo_tsv", path="train.txt", cache_dir="cache/criteo")
    data = build_data(cfg, seed=2018, rank=0, world_size=1)  # parses once, then reuses
    model = NASRecModel(tables=data.spec.tables(16), dense_in_features=13, space=space)
    for batch in data.train:
        ...
"""

from torchrec_nas.data.batching import BatchStream, FeatureArrays
from torchrec_nas.data.build import DataSplits, build_data
from torchrec_nas.data.cache import load_cache, preprocess, preprocess_main
from torchrec_nas.data.config import (
    ColumnConfig,
    DataConfig,
    LabelRule,
    SyntheticConfig,
    TableSchema,
)
from torchrec_nas.data.spec import DataSpec
from torchrec_nas.data.text import BadRowError, DataError

__all__ = [
    "BadRowError",
    "DataError",
    "load_cache",
    "preprocess",
    "preprocess_main",
    "BatchStream",
    "ColumnConfig",
    "DataConfig",
    "DataSpec",
    "DataSplits",
    "FeatureArrays",
    "LabelRule",
    "SyntheticConfig",
    "TableSchema",
    "build_data",
]
