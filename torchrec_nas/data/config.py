"""The ``data:`` section of a torchrec_nas YAML config.

Every field has a default that works: an empty ``data:`` section trains on the embedded synthetic
Criteo-shaped data set. Fields are checked by :meth:`DataConfig.validate`, which
:func:`torchrec_nas.config_utils.from_mapping` calls, so a bad value fails with a message that
names the field. Loading it imports neither torch nor numpy.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from torchrec_nas import storage
from torchrec_nas.data.errors import BadRowPolicy, DataError
from torchrec_nas.data.label_rule import parse_label_rule

Source = Literal["synthetic", "criteo_tsv", "criteo_npy", "avazu", "kdd12", "tabular", "cache"]
SplitMethod = Literal["stratified", "time"]
DenseTransform = Literal["none", "log", "standardize"]
TableFormat = Literal["auto", "csv", "tsv", "parquet"]

SOURCES: tuple[str, ...] = typing.get_args(Source)


def _check_choice(name: str, value: str, choices: object) -> None:
    allowed = list(typing.get_args(choices))
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {allowed}")


@dataclass
class SyntheticConfig:
    """Size and seed of the synthetic Criteo-shaped data set (see :mod:`.readers.synthetic`).

    Args:
        rows: total rows, split 8:1:1 into train/val/test.
        num_dense: number of dense features.
        num_sparse: number of one-hot sparse features.
        cardinalities: rows of each sparse feature's table; one number for all features or one
            per feature. Feature ``i`` of a single number ``c`` gets ``c`` rows scaled between
            ``c / 10`` and ``c`` so that tables differ in size as Criteo's do.
        positive_rate: the target fraction of positive labels.
        seed: seed of the planted model and of the rows.

    Example::

        DataConfig(synthetic=SyntheticConfig(rows=20_000, cardinalities=1_000))
    """

    rows: int = 250_000
    num_dense: int = 13
    num_sparse: int = 26
    cardinalities: int | list[int] = 5_000
    positive_rate: float = 0.25
    seed: int = 2018

    def validate(self) -> None:
        if self.rows < 10:
            raise ValueError(f"synthetic.rows: must be at least 10, got {self.rows}")
        if self.num_dense < 1 or self.num_sparse < 5:
            # The planted interactions read features 0 to 4.
            raise ValueError("synthetic: needs num_dense >= 1 and num_sparse >= 5")
        cards = self.cardinalities if isinstance(self.cardinalities, list) else [self.cardinalities]
        if isinstance(self.cardinalities, list) and len(cards) != self.num_sparse:
            raise ValueError(
                f"synthetic.cardinalities: {len(cards)} values for {self.num_sparse} features"
            )
        if min(cards) < 2:
            raise ValueError("synthetic.cardinalities: every table needs at least 2 rows")
        if not 0.01 <= self.positive_rate <= 0.99:
            raise ValueError(f"synthetic.positive_rate: {self.positive_rate} not in [0.01, 0.99]")


@dataclass
class LabelRule:
    """How a table's label column becomes 0/1.

    Args:
        column: the label column.
        rule: a comparison against a number, ``">= 4"``, ``"> 0"``, ``"== 1"``, ``"!= 0"``,
            ``"< 3"`` or ``"<= 3"``. The default ``"> 0"`` suits 0/1 and click-count labels.
        positive: the label values (as text, compared after trimming spaces) that mean 1; every
            other value means 0. When set, ``rule`` is not used, and the label column may hold
            text.

    Example::

        LabelRule(column="rating", rule=">= 4")  # ratings of 4 and 5 are positives
        LabelRule(column="income", positive=[">50K", ">50K."])  # text labels
    """

    column: str = "label"
    rule: str = "> 0"
    positive: list[str] | None = None

    def validate(self) -> None:
        parse_label_rule(self.rule)
        if self.positive is not None and not self.positive:
            raise ValueError("positive: list at least one value that means 1")


@dataclass
class ColumnConfig:
    """One input column of a table read by schema.

    Args:
        column: the column's name in the file's header (or Parquet schema).
        transform: dense columns only: ``none``, ``log`` (``log(1 + max(x, 0))``),
            ``standardize`` (zero mean, unit variance with the train split's statistics), or a
            list of steps applied in order (``[log, standardize]``).
        clip: with ``standardize``: clip standardized values to ``[-clip, clip]`` deviations.
        buckets: categorical columns: hash the value into this many buckets; ``None`` keeps a
            vocabulary of the values seen at least ``min_frequency`` times.
        min_frequency: values seen fewer times share the reserved id 0 with missing values.
        separator: multi-valued columns only: the separator between values (``"|"``).
        bins: bucketized columns only: the number of quantile bins (fitted on the train split;
            a missing value gets a row of its own).

    Example::

        ColumnConfig("price", transform=["log", "standardize"], clip=5.0)
        ColumnConfig("genres", separator="|", min_frequency=5)
        ColumnConfig("age", bins=16)  # in TableSchema.bucketize
    """

    column: str = ""
    transform: DenseTransform | list[DenseTransform] = "none"
    clip: float | None = None
    buckets: int | None = None
    min_frequency: int = 1
    separator: str = "|"
    bins: int = 32

    def transforms(self) -> list[str]:
        """``transform`` as a list, without ``none``."""
        steps = self.transform if isinstance(self.transform, list) else [self.transform]
        return [t for t in steps if t != "none"]

    def validate(self) -> None:
        if not self.column:
            raise ValueError("column: must name a column")
        steps = self.transform if isinstance(self.transform, list) else [self.transform]
        for step in steps:
            _check_choice("transform", step, DenseTransform)
        kept = self.transforms()
        if len(set(kept)) != len(kept) or kept != sorted(kept, key=["log", "standardize"].index):
            raise ValueError(
                f"transform: {self.transform!r}: each step once, log before standardize"
            )
        if self.clip is not None and (self.clip <= 0 or "standardize" not in kept):
            raise ValueError(
                f"clip: {self.clip} needs a positive number and the standardize transform"
            )
        if self.bins < 2:
            raise ValueError(f"bins: must be at least 2, got {self.bins}")
        if self.buckets is not None and self.buckets < 1:
            raise ValueError(f"buckets: must be positive, got {self.buckets}")
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency: must be at least 1, got {self.min_frequency}")
        if not self.separator:
            raise ValueError("separator: must not be empty")


@dataclass
class TableSchema:
    """Which columns of a CSV/TSV/Parquet table are the label, dense and sparse features.

    Args:
        format: ``csv``, ``tsv``, ``parquet``, or ``auto`` (from the file's extension).
        delimiter: field delimiter of csv files (tsv always uses a tab).
        label: the label column and its 0/1 rule.
        dense: dense columns with their transform.
        categorical: one-hot categorical columns.
        multi_hot: multi-valued columns (values joined by ``separator``): multi-hot features.
        bucketize: numeric columns that become one-hot features ``{column}_bucket`` by
            quantile bins fitted on the train split (``bins``); a column may also be listed
            in ``dense``.
        time_column: column that orders rows in time, for ``split: time`` (file order if unset).

    A schema needs at least one sparse feature (``categorical``, ``multi_hot`` or
    ``bucketize``, or ``DataConfig.bucketize_dense``): the models need an embedding table.

    Example::

        TableSchema(label=LabelRule("rating", ">= 4"),
                    categorical=[ColumnConfig("userId"), ColumnConfig("movieId")],
                    multi_hot=[ColumnConfig("genres")], time_column="timestamp")
        TableSchema(label=LabelRule("income", positive=[">50K"]),
                    dense=[ColumnConfig("age")], bucketize=[ColumnConfig("age", bins=16)])
    """

    format: TableFormat = "auto"
    delimiter: str = ","
    label: LabelRule = field(default_factory=LabelRule)
    dense: list[ColumnConfig] = field(default_factory=list)
    categorical: list[ColumnConfig] = field(default_factory=list)
    multi_hot: list[ColumnConfig] = field(default_factory=list)
    bucketize: list[ColumnConfig] = field(default_factory=list)
    time_column: str | None = None

    def validate(self) -> None:
        _check_choice("format", self.format, TableFormat)
        # A column may be dense and bucketized; any other column is one feature.
        for group in (
            [*self.dense, *self.categorical, *self.multi_hot],
            [*self.categorical, *self.multi_hot, *self.bucketize],
        ):
            names = [c.column for c in group]
            dups = sorted({n for n in names if names.count(n) > 1})
            if dups:
                raise ValueError(f"column {dups[0]!r} is listed twice")

    def has_sparse(self) -> bool:
        """Whether the schema alone makes a sparse feature."""
        return bool(self.categorical or self.multi_hot or self.bucketize)


@dataclass
class BucketizeConfig:
    """Bucketizing a source's dense features into extra one-hot features.

    Every dense feature named in ``columns`` (all when ``None``) stays dense and also becomes
    a one-hot feature ``{name}_bucket`` with ``bins`` quantile bins fitted on the train split
    (see :mod:`torchrec_nas.data.bucketize`); works for every source but ``cache`` (which
    keeps the buckets it was written with): ``criteo_tsv``'s ``I1..I13``, a table's dense
    columns, the synthetic data set's ``int_*``.

    Args:
        bins: the number of quantile bins per feature (a missing value gets a row of its own).
        columns: the dense features to bucketize; ``None`` for all of them.

    Example::

        DataConfig(source="criteo_tsv", path="train.txt", bucketize_dense=BucketizeConfig(32))
    """

    bins: int = 32
    columns: list[str] | None = None

    def validate(self) -> None:
        if self.bins < 2:
            raise ValueError(f"bins: must be at least 2, got {self.bins}")


@dataclass
class DataConfig:
    """The ``data:`` section: where rows come from and how they become ``Batch``es.

    Args:
        source: ``synthetic`` (default, embedded), ``criteo_tsv`` (Kaggle/Terabyte text),
            ``criteo_npy`` (TorchRec's preprocessed day files), ``avazu``, ``kdd12``,
            ``tabular`` (any CSV/TSV/Parquet with ``schema``) or ``cache`` (a directory written
            by :func:`torchrec_nas.data.preprocess`).
        path: the input file (or directory for ``criteo_npy`` / ``cache``); text files may be
            compressed (gzip, bzip2, xz, zstd: known by their first bytes). A relative path is
            resolved from the working directory.
        batch_size: rows per batch.
        drop_last_train: drop the last partial train batch (val/test always keep it).
        shuffle_train: reshuffle the order of train batches every epoch (rows are already in
            random order after a stratified split).
        split: ``stratified`` (NASRec: 8:1:1 by label with ``split_seed``) or ``time``
            (file order: first 80% train, next 10% val, last 10% test).
        split_fractions: train/val/test fractions, summing to 1.
        split_seed: seed of the stratified split (NASRec uses 2018).
        on_bad_row: ``error`` (raise, naming file, line and field) or ``skip`` (count and go on).
        hash_buckets: hash categorical values into this many buckets before counting them; one
            number for all columns or one per column; ``None`` keeps every distinct value.
        min_frequency: categorical values seen fewer times map to the reserved id 0.
        max_rows_per_table: cap on any table's rows (NASRec caps at 500k during search); ids
            beyond it are folded by modulo. ``None`` for no cap.
        cache_dir: preprocess into this directory once and read from it afterwards.
        chunk_rows: rows parsed per chunk when streaming text files.
        kdd12_profile_path: KDD Cup 2012 ``userid_profile.txt`` (default: beside ``path``).
        synthetic: the synthetic generator's settings.
        schema: the table schema for ``source: tabular``.
        npy_days: ``criteo_npy``: number of day files (Kaggle preprocessed: 1; Terabyte: 24).
        bucketize_dense: also make the source's dense features one-hot features by quantile
            bins (every source but ``cache``); ``None`` keeps them dense only.

    Example::

        DataConfig(source="criteo_tsv", path="day_*.gz", cache_dir="cache/criteo", min_frequency=2)
    """

    source: Source = "synthetic"
    path: str | None = None
    batch_size: int = 512
    drop_last_train: bool = True
    shuffle_train: bool = False
    split: SplitMethod = "stratified"
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_seed: int = 2018
    on_bad_row: BadRowPolicy = "error"
    hash_buckets: int | list[int] | None = None
    min_frequency: int = 1
    max_rows_per_table: int | None = 500_000
    cache_dir: str | None = None
    chunk_rows: int = 32_768
    kdd12_profile_path: str | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    schema: TableSchema | None = None
    npy_days: int = 1
    bucketize_dense: BucketizeConfig | None = None

    def validate(self) -> None:
        _check_choice("source", self.source, Source)
        if self.source not in ("synthetic",) and not self.path:
            if not (self.source == "cache" and self.cache_dir):
                raise ValueError(f"path: source {self.source!r} needs a path")
        if self.source == "tabular" and self.schema is None:
            raise ValueError("schema: source 'tabular' needs a schema")
        if self.source == "tabular" and self.schema is not None and not self.schema.has_sparse():
            if self.bucketize_dense is None:
                raise ValueError(
                    "schema: no sparse feature, and the models need at least one embedding "
                    "table: bucketize a numeric column (schema.bucketize: [{column: NAME, "
                    "bins: 32}]) or list a categorical one"
                )
        if self.bucketize_dense is not None and self.source == "cache":
            raise ValueError(
                "bucketize_dense: not available for source 'cache': a cache keeps the "
                "buckets it was written with (set it when preprocessing)"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be positive, got {self.batch_size}")
        _check_choice("split", self.split, SplitMethod)
        if len(self.split_fractions) != 3 or min(self.split_fractions) < 0:
            raise ValueError("split_fractions: needs three non-negative numbers")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions: {self.split_fractions} does not sum to 1")
        _check_choice("on_bad_row", self.on_bad_row, BadRowPolicy)
        buckets = self.hash_buckets if isinstance(self.hash_buckets, list) else [self.hash_buckets]
        if any(b is not None and b < 1 for b in buckets):
            raise ValueError(f"hash_buckets: must be positive, got {self.hash_buckets}")
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency: must be at least 1, got {self.min_frequency}")
        if self.max_rows_per_table is not None and self.max_rows_per_table < 2:
            raise ValueError("max_rows_per_table: must be at least 2")
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows: must be positive, got {self.chunk_rows}")

    def buckets_for(self, num_columns: int) -> list[int | None]:
        """``hash_buckets`` expanded to one entry per categorical column."""
        if isinstance(self.hash_buckets, list):
            if len(self.hash_buckets) != num_columns:
                raise ValueError(
                    f"hash_buckets: {len(self.hash_buckets)} values for {num_columns} columns"
                )
            return list(self.hash_buckets)
        return [self.hash_buckets] * num_columns


#: Sources whose ``path`` is memory-mapped, so it must be on a local disk.
LOCAL_ONLY_SOURCES = ("criteo_npy", "cache")


def check_local_inputs(cfg: DataConfig) -> None:
    """Checks that the inputs that are memory-mapped are on this machine's disk.

    Text and Parquet inputs may be any fsspec URL (``memory://``, ``s3://``); the
    ``criteo_npy`` and ``cache`` sources' ``path`` and ``cache_dir`` are memory-mapped and
    must be local paths (or ``file://`` URLs).

    Raises:
        DataError: a memory-mapped input is a remote URL; the message names the field.

    Example::

        check_local_inputs(DataConfig(source="criteo_npy", path="s3://b/npy"))
        # DataError: data.path: s3://b/npy: source criteo_npy is memory-mapped and must be
        # on a local disk; copy it to a local disk
    """
    fields = {"cache_dir": "data.cache_dir"}
    if cfg.source in LOCAL_ONLY_SOURCES:
        fields["path"] = f"source {cfg.source}"
    for name, what in fields.items():
        value = getattr(cfg, name)
        if value is not None and storage.local_path(value) is None:
            raise DataError(
                f"data.{name}: {value}: {what} is memory-mapped and must be on a local disk; "
                "copy it to a local disk"
            )
