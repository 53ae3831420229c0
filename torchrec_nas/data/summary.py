"""A data set's summary before training: rows and positive rate per split, features, bad rows.

:func:`summarize_data` reads what building the data already recorded (``info``: rows,
positives, skipped bad rows, and per dense feature its range and missing share, see
:func:`torchrec_nas.data.materialize.materialize`) and the spec (table rows per sparse
feature); it never reads the input files again. Where ``info`` lacks a figure and the rows are
in memory (the synthetic source), it is computed from the arrays; otherwise it is ``None``.
Imports no torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from torchrec_nas.data.arrays import SPLIT_NAMES, FeatureArrays
from torchrec_nas.data.spec import DataSpec

FeatureKind = Literal["dense", "sparse", "multi_hot", "bucketized"]


class BuiltData(Protocol):
    """What :func:`summarize_data` reads: ``DataSplits`` (of ``build_data``) or ``SplitArrays``."""

    spec: DataSpec
    info: dict[str, Any]


@dataclass
class FeatureSummary:
    """One feature of a data set.

    Args:
        name: the feature's name.
        kind: ``dense``, ``sparse`` (one-hot), ``multi_hot`` or ``bucketized`` (a numeric
            column's quantile bins).
        table_rows: sparse kinds: rows of its embedding table (values kept, plus row 0 for
            missing or rare values).
        min: dense: the smallest value (after ``log``, before ``standardize``).
        max: dense: the largest value.
        missing: dense: the share of rows where it is missing.

    Example::

        FeatureSummary("age", "dense", min=17.0, max=90.0, missing=0.0)
    """

    name: str
    kind: FeatureKind
    table_rows: int | None = None
    min: float | None = None
    max: float | None = None
    missing: float | None = None


@dataclass
class DataSummary:
    """Rows, positive rate and features of a built data set (see the module docstring).

    Args:
        source: the ``data.source`` it came from.
        rows: rows per split (``train``, ``val``, ``test``).
        positive_rate: share of positive labels per split (``None`` for an empty split).
        skipped_bad_rows: rows skipped under ``on_bad_row: skip``.
        features: dense features, then sparse ones in the order of the spec.

    Example::

        summary = summarize_data(build_data(cfg))
        print(summary.to_text())
        json.dumps(summary.to_dict())
    """

    source: str
    rows: dict[str, int]
    positive_rate: dict[str, float | None]
    skipped_bad_rows: int = 0
    features: list[FeatureSummary] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form: plain types, ``None`` for any unknown or non-finite number."""
        return _finite(asdict(self))  # type: ignore[no-any-return]

    def to_markdown(self) -> str:
        """Two Markdown tables: the splits, then the features."""
        lines = ["| split | rows | positive rate |", "|---|---:|---:|"]
        for split in self.rows:
            lines.append(
                f"| {split} | {self.rows[split]:,} | {_number(self.positive_rate.get(split))} |"
            )
        lines += ["", f"Rows skipped as bad: {self.skipped_bad_rows:,}", ""]
        lines += [
            "| feature | kind | table rows | min | max | missing |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for f in self.features:
            rows = "" if f.table_rows is None else f"{f.table_rows:,}"
            missing = "" if f.missing is None else f"{f.missing:.1%}"
            cells = [_escape(f.name), f.kind, rows, _number(f.min), _number(f.max), missing]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """A few lines for the console."""
        total = sum(self.rows.values())
        splits = " / ".join(f"{s} {n:,}" for s, n in self.rows.items())
        rates = " / ".join(_number(r) for r in self.positive_rate.values())
        out = [
            f"data: {self.source}, {total:,} rows ({splits}); positive rate {rates}; "
            f"{self.skipped_bad_rows:,} bad rows skipped"
        ]
        dense = [f for f in self.features if f.kind == "dense"]
        sparse = [f for f in self.features if f.table_rows is not None]
        if dense:
            gappy = [f"{f.name} {f.missing:.0%}" for f in dense if f.missing]
            out.append(
                f"  {len(dense)} dense features"
                + (f"; missing: {', '.join(gappy[:8])}" if gappy else "; none missing")
                + (" ..." if len(gappy) > 8 else "")
            )
        if sparse:
            sizes = sorted(int(f.table_rows or 0) for f in sparse)
            out.append(
                f"  {len(sparse)} sparse features; table rows {sizes[0]:,} to {sizes[-1]:,} "
                f"(median {sizes[len(sizes) // 2]:,}, total {sum(sizes):,})"
            )
        return "\n".join(out)


def summarize_data(data: BuiltData) -> DataSummary:
    """The summary of what :func:`~torchrec_nas.data.build_data` (or ``load_arrays``) built.

    Args:
        data: a ``DataSplits`` or ``SplitArrays``: its ``spec`` and ``info``, and its rows
            (``train``/``val``/``test`` streams or ``parts``) where ``info`` lacks a figure.

    Example::

        data = build_data(DataConfig(source="criteo_tsv", path="train.txt"))
        summary = summarize_data(data)
        summary.rows  # {"train": ..., "val": ..., "test": ...}
    """
    spec, info = data.spec, data.info
    parts = _parts(data)
    rows = {s: int(n) for s, n in info.get("rows", {}).items()}
    if not rows and parts is not None:
        rows = {s: len(p) for s, p in zip(SPLIT_NAMES, parts)}
    positives = info.get("positives")
    if positives is None and parts is not None:
        positives = {s: float(np.asarray(p.labels).sum()) for s, p in zip(SPLIT_NAMES, parts)}
    rate = {
        s: (float(positives[s]) / n if positives is not None and s in positives and n else None)
        for s, n in rows.items()
    }
    dense_info = info.get("dense") or info.get("summary", {}).get("dense") or {}
    features = [
        _dense(name, j, dense_info.get(name), parts) for j, name in enumerate(spec.dense_names)
    ]
    for name, table_rows in zip(spec.sparse_names, spec.num_embeddings):
        kind: FeatureKind = (
            "multi_hot"
            if name in spec.multi_hot
            else "bucketized"
            if name in spec.bucket_edges
            else "sparse"
        )
        features.append(FeatureSummary(name, kind, table_rows=int(table_rows)))
    return DataSummary(
        source=str(info.get("source", "unknown")),
        rows=rows,
        positive_rate=rate,
        skipped_bad_rows=int(info.get("skipped_bad_rows", 0) or 0),
        features=features,
    )


def _parts(data: BuiltData) -> list[FeatureArrays] | None:
    parts = getattr(data, "parts", None)
    if parts is not None:
        return list(parts)
    streams = [getattr(data, s, None) for s in SPLIT_NAMES]
    arrays = [getattr(s, "arrays", None) for s in streams]
    if all(isinstance(a, FeatureArrays) for a in arrays):
        return arrays  # type: ignore[return-value]
    return None


def _dense(
    name: str, j: int, recorded: dict[str, Any] | None, parts: list[FeatureArrays] | None
) -> FeatureSummary:
    if recorded is not None:
        return FeatureSummary(
            name,
            "dense",
            min=recorded.get("min"),
            max=recorded.get("max"),
            missing=recorded.get("missing"),
        )
    # Only rows already in memory (the synthetic source): a cache is not read again.
    filled = [p for p in parts or [] if len(p)]
    if not filled or any(isinstance(p.dense, np.memmap) for p in filled):
        return FeatureSummary(name, "dense")
    low = min(float(np.min(p.dense[:, j])) for p in filled)
    high = max(float(np.max(p.dense[:, j])) for p in filled)
    return FeatureSummary(name, "dense", min=low, max=high)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
