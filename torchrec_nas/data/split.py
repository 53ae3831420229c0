"""Train/val/test splits: NASRec's stratified split and a time-ordered one."""

from __future__ import annotations

import numpy as np


def _cuts(n: int, fractions: list[float]) -> tuple[int, int]:
    n_train = int(round(fractions[0] * n))
    n_val = min(n - n_train, int(round(fractions[1] * n)))
    return n_train, n_train + n_val


def split_indices(
    labels: np.ndarray,
    fractions: list[float],
    method: str = "stratified",
    seed: int = 2018,
    order: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Row indices of the train, val and test splits.

    Args:
        labels: ``[n]`` labels in {0, 1}.
        fractions: train/val/test fractions (``[0.8, 0.1, 0.1]`` in NASRec).
        method: ``stratified``: each label's rows are shuffled with ``seed`` and cut by
            ``fractions``, so every split has the data set's positive rate; each split's rows
            are then shuffled. ``time``: rows in ``order`` (a time key; file order if ``None``),
            the first fraction train, then val, then test; no shuffling.
        seed: the stratified split's seed (NASRec: 2018).
        order: a sortable time key per row, for ``time``.

    Returns:
        Three int64 index arrays that partition ``range(n)``.

    Example::

        train, val, test = split_indices(labels, [0.8, 0.1, 0.1], "stratified", seed=2018)
    """
    n = len(labels)
    if method == "time":
        rows = np.arange(n) if order is None else np.argsort(order, kind="stable")
        a, b = _cuts(n, fractions)
        return [rows[:a].astype(np.int64), rows[a:b].astype(np.int64), rows[b:].astype(np.int64)]
    if method != "stratified":
        raise ValueError(f"split: {method!r} is not one of stratified, time")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        rows = rows[rng.permutation(len(rows))]
        a, b = _cuts(len(rows), fractions)
        for part, chunk in zip(parts, (rows[:a], rows[a:b], rows[b:])):
            part.append(chunk)
    out = []
    for part in parts:
        rows = np.concatenate(part) if part else np.zeros(0, dtype=np.int64)
        out.append(rows[rng.permutation(len(rows))].astype(np.int64))
    return out
