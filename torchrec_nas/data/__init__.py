"""Data sources for torchrec_nas: every source yields ``torchrec.datasets.utils.Batch``.

Sources: a synthetic Criteo-shaped set with planted interactions (the default), the Criteo
TSV (Kaggle / Terabyte), TorchRec's preprocessed Criteo ``.npy`` days, Avazu, KDD Cup 2012
track 2, and any CSV/TSV/Parquet table described by a schema. Text sources can be
preprocessed once into a memory-mapped cache (:func:`preprocess`).
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
