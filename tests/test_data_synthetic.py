"""Synthetic data: shapes, determinism, positive rate, splits and batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchrec.datasets.utils import Batch

from torchrec_nas.config_utils import ConfigError, from_mapping
from torchrec_nas.data import DataConfig, SyntheticConfig, build_data
from torchrec_nas.data.readers.synthetic import generate_synthetic


def _small(**kw: object) -> DataConfig:
    return DataConfig(synthetic=SyntheticConfig(rows=20_000, **kw), batch_size=256)  # type: ignore[arg-type]


def test_shapes_and_batches() -> None:
    data = build_data(_small())
    assert data.spec.num_dense == 13 and len(data.spec.sparse_names) == 26
    assert data.info["rows"] == {"train": 16_000, "val": 2_000, "test": 2_000}
    batches = list(data.train)
    assert len(batches) == 16_000 // 256  # partial train batch dropped
    b = batches[0]
    assert isinstance(b, Batch)
    assert b.dense_features.shape == (256, 13) and b.dense_features.dtype == torch.float32
    assert b.labels.shape == (256,) and b.labels.dtype == torch.float32
    kjt = b.sparse_features
    assert kjt.keys() == data.spec.sparse_names
    assert torch.all(kjt.lengths() == 1)
    for name, rows in zip(data.spec.sparse_names, data.spec.num_embeddings):
        v = kjt[name].values()
        assert v.numel() == 256 and int(v.min()) >= 0 and int(v.max()) < rows
    # val/test keep the last partial batch
    assert sum(x.labels.numel() for x in data.val) == 2_000
    # re-iterable: a second epoch gives the same batches
    again = next(iter(data.train))
    assert torch.equal(again.labels, b.labels)


def test_deterministic_and_seeded() -> None:
    a, _ = generate_synthetic(SyntheticConfig(rows=5_000))
    b, _ = generate_synthetic(SyntheticConfig(rows=5_000))
    c, _ = generate_synthetic(SyntheticConfig(rows=5_000, seed=7))
    assert np.array_equal(a.sparse, b.sparse) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)


def test_positive_rate_and_stratified_split() -> None:
    data = build_data(_small())
    rates = [
        float(torch.cat([x.labels for x in s]).mean()) for s in (data.train, data.val, data.test)
    ]
    assert all(0.2 <= r <= 0.3 for r in rates), rates
    assert max(rates) - min(rates) < 0.01  # stratified


def test_table_cap_and_sharding() -> None:
    cfg = _small(cardinalities=5_000)
    cfg.max_rows_per_table = 1_000
    data = build_data(cfg)
    assert max(data.spec.num_embeddings) == 1_000
    assert [t.name for t in data.spec.tables(8)][:2] == ["t_cat_0", "t_cat_1"]
    shards = [build_data(cfg, rank=r, world_size=3).train for r in range(3)]
    sizes = {len(s) for s in shards}  # type: ignore[arg-type]
    assert sizes == {(16_000 // 256) // 3}
    firsts = [next(iter(s)).labels for s in shards]
    assert not torch.equal(firsts[0], firsts[1])


def test_planted_signal_is_learnable() -> None:
    """The planted logit carries signal: a per-id click rate of one feature already ranks."""
    arrays, _ = generate_synthetic(SyntheticConfig(rows=50_000))
    ids, y = arrays.sparse[:, 0], arrays.labels
    rate = np.bincount(ids, weights=y) / np.maximum(np.bincount(ids), 1)
    assert rate.max() - rate.min() > 0.05


def test_rank_shards_are_disjoint_and_cover_train() -> None:
    cfg = _small()
    whole = torch.cat([b.dense_features for b in build_data(cfg).train])
    shards = [
        torch.cat([b.dense_features for b in build_data(cfg, rank=r, world_size=2).train])
        for r in range(2)
    ]
    assert shards[0].shape == shards[1].shape
    rows = {tuple(x.tolist()) for s in shards for x in s}
    assert len(rows) == 2 * len(shards[0])  # disjoint
    assert rows <= {tuple(x.tolist()) for x in whole}


def test_shuffle_train_changes_batch_order_per_epoch() -> None:
    cfg = _small()
    cfg.shuffle_train = True
    train = build_data(cfg).train
    first = [b.labels.sum().item() for b in train]
    second = [b.labels.sum().item() for b in train]
    assert sorted(first) == sorted(second) and first != second


def test_too_few_sparse_features_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="num_sparse >= 5"):
        from_mapping(DataConfig, {"synthetic": {"num_sparse": 4}})
    five = {"rows": 500, "num_dense": 2, "num_sparse": 5, "cardinalities": 20}
    assert len(build_data(from_mapping(DataConfig, {"synthetic": five})).spec.sparse_names) == 5
