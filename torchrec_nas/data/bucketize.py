"""Numeric columns as categorical features: quantile bins fitted on the train split.

A bucketized column becomes a one-hot sparse feature named ``{column}_bucket`` whose table has
one row per bin plus row 0 for a missing value (``NaN``), as row 0 of every categorical table
is the missing one. The bin edges are quantiles of the train split's non-missing values;
equal quantiles (a column with few distinct values) merge, so a table may have fewer rows
than ``bins + 1``. The edges are stored in :attr:`torchrec_nas.data.DataSpec.bucket_edges`.

File sources are bucketized while they are materialized (:mod:`.materialize`); sources whose
splits are already in memory (``synthetic``) by :func:`add_bucketized`.
"""

from __future__ import annotations

import numpy as np

from torchrec_nas.data.arrays import FeatureArrays, SplitArrays
from torchrec_nas.data.config import BucketizeConfig
from torchrec_nas.data.errors import DataError
from torchrec_nas.data.spec import DataSpec

BUCKET_SUFFIX = "_bucket"
"""The suffix of a bucketized column's sparse feature name."""


def bucket_feature_name(column: str) -> str:
    """The sparse feature name of bucketized column ``column`` (``age`` -> ``age_bucket``)."""
    return f"{column}{BUCKET_SUFFIX}"


def fit_quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of ``bins`` quantile bins of the finite values (fewer where quantiles tie).

    Args:
        values: the train split's values of one column; ``NaN`` is missing and ignored.
        bins: the number of bins wanted (at least 2).

    Returns:
        Sorted, distinct float64 edges, at most ``bins - 1`` of them (empty when no value is
        finite or all values are equal).

    Example::

        fit_quantile_edges(np.array([1.0, 2.0, 3.0, 4.0]), bins=2)  # array([2.5])
    """
    finite = values[np.isfinite(values)].astype(np.float64)
    if finite.size == 0:
        return np.zeros(0, dtype=np.float64)
    inner = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(inner)
    # An edge at the minimum would leave its lower bin empty.
    return edges[edges > finite.min()]


def bucket_rows(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Table rows of ``values`` for bins with ``edges``: 0 for ``NaN``, else 1 + its bin.

    A value equal to an edge falls into the upper bin.

    Example::

        bucket_rows(np.array([1.0, 3.0, np.nan]), np.array([2.5]))  # array([1, 2, 0])
    """
    rows = np.searchsorted(edges, values, side="right").astype(np.int32) + 1
    rows[np.isnan(values)] = 0
    return rows


def bucket_table_rows(edges: np.ndarray | list[float]) -> int:
    """Rows of a bucketized feature's table: one per bin and row 0 for missing."""
    return len(edges) + 2


def planned_bins(
    dense_names: list[str], plan: BucketizeConfig | None, source: str
) -> dict[str, int]:
    """The dense features that ``data.bucketize_dense`` names, with their number of bins.

    Raises:
        DataError: ``plan.columns`` names a column that is not a dense feature.

    Example::

        planned_bins(["I1", "I2"], BucketizeConfig(bins=32, columns=["I2"]), "criteo_tsv")
        # {"I2": 32}
    """
    if plan is None:
        return {}
    wanted = dense_names if plan.columns is None else plan.columns
    unknown = [c for c in wanted if c not in dense_names]
    if unknown:
        raise DataError(
            f"data.bucketize_dense.columns: {unknown[0]!r} is not a dense feature of source "
            f"{source!r} (dense features: {', '.join(dense_names)})"
        )
    return {name: plan.bins for name in dense_names if name in wanted}


def add_bucketized(arrays: SplitArrays, plan: BucketizeConfig, source: str) -> SplitArrays:
    """In-memory splits with the dense features ``plan`` names also bucketized.

    The bucketized features follow the one-hot features (before any multi-hot one), as in a
    materialized file source; edges are fitted on the train split (val when it is empty).

    Args:
        arrays: the splits, train first.
        plan: the bins and the dense features to bucketize.
        source: the source's name, for messages.

    Example::

        arrays = add_bucketized(SyntheticReader(cfg).read_splits(), BucketizeConfig(16), "synthetic")
    """
    spec, parts = arrays.spec, arrays.parts
    bins = planned_bins(spec.dense_names, plan, source)
    fit = parts[0] if len(parts[0]) else parts[1]
    edges: dict[str, list[float]] = {}
    columns: list[list[np.ndarray]] = [[] for _ in parts]
    for j, name in enumerate(spec.dense_names):
        if name not in bins:
            continue
        column_edges = fit_quantile_edges(np.asarray(fit.dense[:, j], np.float64), bins[name])
        edges[bucket_feature_name(name)] = [float(e) for e in column_edges]
        for out, part in zip(columns, parts):
            out.append(bucket_rows(np.asarray(part.dense[:, j], np.float64), column_edges))
    one_hot = parts[0].sparse.shape[1]
    new_parts = [
        FeatureArrays(
            part.dense,
            np.asfortranarray(np.column_stack([part.sparse, *extra]).astype(np.int32)),
            part.labels,
            part.multi_hot,
        )
        for part, extra in zip(parts, columns)
    ]
    new_spec = DataSpec(
        dense_names=list(spec.dense_names),
        sparse_names=[*spec.sparse_names[:one_hot], *edges, *spec.sparse_names[one_hot:]],
        num_embeddings=[
            *spec.num_embeddings[:one_hot],
            *(bucket_table_rows(e) for e in edges.values()),
            *spec.num_embeddings[one_hot:],
        ],
        multi_hot=list(spec.multi_hot),
        bucket_edges={**spec.bucket_edges, **edges},
    )
    return SplitArrays(new_spec, new_parts, dict(arrays.info))
