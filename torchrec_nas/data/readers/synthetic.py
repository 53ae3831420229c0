"""A synthetic, Criteo-shaped CTR data set with planted feature interactions.

The embedded default of ``torchrec-nas demo``: 13 dense and 26 one-hot sparse features, seeded
and deterministic. Sparse ids follow a Zipf-like law (a few ids are frequent, most are rare).
Dense features look like Criteo's after ``log(1 + x)``: non-negative, skewed.

The label is ``Bernoulli(sigmoid(logit))`` where the logit is the sum of these planted terms
(``z_k`` is dense feature ``k`` standardized, ``s_f`` the id of sparse feature ``f``):

1. first order: a random weight per id of every sparse feature (importance falls with the
   feature index), plus a random linear function of the dense features;
2. pairwise crosses, random tables of the pair: ``T(s_3, s_4)`` and ``T(s_0, s_5)``
   (low-cardinality features, so each pair value is seen often enough to be learnt);
3. pairwise crosses, low rank: ``<U(s_6), V(s_7)>``, ``<U(s_8), V(s_9)>``, ``<U(s_10), V(s_11)>``
   (rank 4, the kind of interaction a dot product / factorization machine captures);
4. 3-way crosses, which no pairwise model (DLRM's dot products) can express: a random table
   of ``(s_0, s_1, s_2)`` and a rank-4 product ``sum_k A(s_2)_k B(s_3)_k C(s_5)_k`` (the
   kind that multiplicative operators, cross layers or gating, learn);
5. a dense nonlinearity: ``sin(2 z_0) z_1 + 0.5 z_2 z_3 + relu(z_4 - 0.5)``;
6. a dense x sparse interaction: ``z_5 * g(s_12)`` with a random gain per id of feature 12;
7. a bias set so that the positive rate is ``positive_rate`` (default 25%).

By default the first six features have small tables (4, 8, 12, 16, 24, 32 rows, like Criteo's
small columns) and the other 20 grow geometrically from ``cardinalities / 10`` to
``cardinalities``. Interactions carry most of the signal (first-order effects are deliberately
weak), so a model that can form 3-way crosses beats one that only has pairwise dot products.
"""

from __future__ import annotations

import numpy as np

from torchrec_nas.data.arrays import FeatureArrays, SplitArrays
from torchrec_nas.data.config import DataConfig, SyntheticConfig
from torchrec_nas.data.ids import mix64
from torchrec_nas.data.readers.base import SplitReader, register_reader
from torchrec_nas.data.spec import DataSpec
from torchrec_nas.data.split import split_indices

SMALL_CARDINALITIES = (4, 8, 12, 16, 24, 32)


def synthetic_cardinalities(cfg: SyntheticConfig) -> list[int]:
    """Table rows of every sparse feature (see the module docstring)."""
    if isinstance(cfg.cardinalities, list):
        return list(cfg.cardinalities)
    c = cfg.cardinalities
    small = [min(s, c) for s in SMALL_CARDINALITIES][: cfg.num_sparse]
    rest = cfg.num_sparse - len(small)
    grown = np.geomspace(max(2, c / 10), c, num=rest) if rest else np.zeros(0)
    return small + [int(round(x)) for x in grown]


def _zipf_ids(rng: np.random.Generator, card: int, n: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, card + 1) ** 1.1
    cdf = np.cumsum(weights)
    ids = np.searchsorted(cdf, rng.random(n) * cdf[-1]).clip(0, card - 1)
    return rng.permutation(card)[ids]  # which ids are frequent is random


def _standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


def _table_cross(rng: np.random.Generator, ids: list[np.ndarray], size: int = 4096) -> np.ndarray:
    key = np.zeros_like(ids[0], dtype=np.int64)
    for i in ids:
        key = mix64(key * 1_000_003 + i)
    return rng.normal(size=size)[key % size]


def generate_synthetic(cfg: SyntheticConfig) -> tuple[FeatureArrays, list[int]]:
    """All rows of the synthetic data set and the table size of each sparse feature.

    Args:
        cfg: size, cardinalities, positive rate and seed.

    Returns:
        ``(arrays, cardinalities)``; ids of feature ``f`` are in ``[0, cardinalities[f])``.

    Example::

        arrays, cards = generate_synthetic(SyntheticConfig(rows=10_000))
    """
    rng = np.random.default_rng(cfg.seed)
    n = cfg.rows
    cards = synthetic_cardinalities(cfg)
    sparse = np.stack([_zipf_ids(rng, c, n) for c in cards], axis=1).astype(np.int32)
    raw_dense = np.exp(rng.normal(1.0, 1.2, size=(n, cfg.num_dense)))
    raw_dense *= rng.random((n, cfg.num_dense)) > 0.1  # Criteo-like zero counts
    dense = np.log1p(np.floor(raw_dense)).astype(np.float32)
    z = np.stack([_standardize(dense[:, k]) for k in range(cfg.num_dense)], axis=1)
    s = [sparse[:, f].astype(np.int64) for f in range(cfg.num_sparse)]
    zk = [z[:, k % cfg.num_dense] for k in range(6)]

    terms: dict[str, np.ndarray] = {}
    first = np.zeros(n)
    for f, c in enumerate(cards):
        first += rng.normal(0, 0.3 / (1 + f / 4), size=c)[s[f]]
    first += z @ rng.normal(0, 0.075, size=cfg.num_dense)
    terms["first_order"] = first
    terms["pair_tables"] = 0.5 * _table_cross(rng, [s[3], s[4]]) + 0.5 * _table_cross(
        rng, [s[0], s[5 % cfg.num_sparse]]
    )
    low_rank = np.zeros(n)
    for a, b in ((6, 7), (8, 9), (10, 11)):
        a, b = a % cfg.num_sparse, b % cfg.num_sparse
        u = rng.normal(0, 0.5, size=(cards[a], 4))
        v = rng.normal(0, 0.5, size=(cards[b], 4))
        low_rank += np.einsum("nd,nd->n", u[s[a]], v[s[b]])
    terms["pair_low_rank"] = low_rank
    terms["triple"] = 0.9 * _table_cross(rng, [s[0], s[1], s[2]])
    a, b, c = 2, 3, 5 % cfg.num_sparse
    factors = [rng.normal(0, 0.8, size=(cards[f], 4)) for f in (a, b, c)]
    terms["triple_low_rank"] = 1.5 * np.einsum(
        "nd,nd,nd->n", factors[0][s[a]], factors[1][s[b]], factors[2][s[c]]
    )
    terms["dense_nonlinear"] = (
        np.sin(2 * zk[0]) * zk[1] + 0.5 * zk[2] * zk[3] + np.maximum(zk[4] - 0.5, 0.0)
    )
    gain = rng.normal(0, 0.7, size=cards[12 % cfg.num_sparse])
    terms["dense_x_sparse"] = zk[5] * gain[s[12 % cfg.num_sparse]]
    logit = sum(terms.values())
    assert isinstance(logit, np.ndarray)
    logit = logit - logit.mean()

    # Bias by bisection so that the expected positive rate is the target.
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(logit + mid)))).mean() < cfg.positive_rate:
            lo = mid
        else:
            hi = mid
    prob = 1 / (1 + np.exp(-(logit + lo)))
    labels = (rng.random(n) < prob).astype(np.float32)
    return FeatureArrays(dense=dense, sparse=sparse, labels=labels), cards


def fold_ids(arrays: FeatureArrays, cards: list[int], cap: int | None) -> list[int]:
    """Applies the table-size cap to ids that are already table rows (in place)."""
    if cap is None:
        return cards
    out = []
    for f, c in enumerate(cards):
        if c > cap:
            arrays.sparse[:, f] %= cap
        out.append(min(c, cap))
    return out


@register_reader("synthetic")
class SyntheticReader(SplitReader):
    """The synthetic data set, generated in memory and split as the config says.

    Args:
        cfg: the ``data:`` config (``synthetic``, ``max_rows_per_table`` and the split fields).

    Example::

        arrays = SyntheticReader(DataConfig()).read_splits()
    """

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg

    @classmethod
    def from_config(cls, cfg: DataConfig) -> SyntheticReader:
        return cls(cfg)

    def read_splits(self) -> SplitArrays:
        cfg = self.cfg
        arrays, cards = generate_synthetic(cfg.synthetic)
        cards = fold_ids(arrays, cards, cfg.max_rows_per_table)
        spec = DataSpec(
            dense_names=[f"int_{i}" for i in range(cfg.synthetic.num_dense)],
            sparse_names=[f"cat_{i}" for i in range(cfg.synthetic.num_sparse)],
            num_embeddings=cards,
        )
        index = split_indices(arrays.labels, cfg.split_fractions, cfg.split, cfg.split_seed)
        parts = [arrays.take(np.sort(i) if cfg.split == "time" else i) for i in index]
        return SplitArrays(spec, parts, {"source": "synthetic"})
