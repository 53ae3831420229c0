"""Numeric columns as categorical features: quantile bins fitted on the train split.

A bucketized column becomes a one-hot sparse feature named ``{column}_bucket`` whose table has
one row per bin plus row 0 for a missing value (``NaN``), as row 0 of every categorical table
is the missing one. The bin edges are quantiles of the train split's non-missing values;
equal quantiles (a column with few distinct values) merge, so a table may have fewer rows
than ``bins + 1``. The edges are stored in :attr:`torchrec_nas.data.DataSpec.bucket_edges`.
"""

from __future__ import annotations

import numpy as np

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
