"""Embedding-size search: the parts, on small tensors (prefix sharing, adaptive sampling,
REINFORCE, the budget, per-table configs and their errors, a mixed-width training step)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import random_batch, tiny_tables
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.data.spec import DataSpec
from torchrec_nas.embedding_search import (
    AdaptiveWidthSampler,
    ElasticSparseArch,
    EmbeddingDimsError,
    WidthPolicy,
    embedding_bag_configs,
    embedding_params,
    use_embedding_dims,
)
from torchrec_nas.embedding_search.dims import agreement, resolve_budget
from torchrec_nas.embedding_search.policy import evolve_widths, fit_to_budget
from torchrec_nas.models import build_baseline
from torchrec_nas.search.evolution import EvolutionConfig
from torchrec_nas.train.config import OptimizerConfig
from torchrec_nas.train.optim import ModelOptimizer

NAMES = [f"c{i}" for i in range(5)]


def test_a_width_d_lookup_is_the_first_d_columns_of_the_largest_table() -> None:
    torch.manual_seed(0)
    arch = ElasticSparseArch(EmbeddingBagCollection(tables=tiny_tables(dim=32)), token_width=16)
    batch = random_batch()
    full = arch.pooled(batch.sparse_features)  # [B, F, 32]
    ebc = arch.embedding_bag_collection.embedding_bags
    ids = batch.sparse_features["c1"].values()
    assert torch.equal(full[:, 1, :], ebc["t_c1"].weight[ids])  # one id per row
    # Every width is a projection of the prefix that starts as zero padding (or the prefix
    # itself at the token width, 16), and ignores the columns beyond the width.
    widths = {"c0": 16, "c1": 8, "c2": 32, "c3": 4, "c4": 12}
    tokens = arch(batch.sparse_features, widths)
    assert tokens.shape == (8, 5, 16)
    assert torch.equal(tokens[:, 0], full[:, 0, :16])
    assert torch.equal(tokens[:, 1, :8], full[:, 1, :8]) and not tokens[:, 1, 8:].any()
    with torch.no_grad():
        arch.weights[1].add_(torch.randn(16, 32))
        arch.weights[0].add_(torch.randn(16, 32))
    assert not torch.allclose(arch(batch.sparse_features, widths)[:, 0], full[:, 0, :16])
    with torch.no_grad():
        changed = full.clone()
        changed[:, 1, 8:] = 99.0  # columns past the width do not matter
    assert torch.allclose(arch.project(full, widths)[:, 1], arch.project(changed, widths)[:, 1])


def test_adaptive_sampling_draws_a_worse_width_more_often_and_keeps_the_floor() -> None:
    sampler = AdaptiveWidthSampler(["a", "b"], [4, 8, 16], uniform_floor=0.3, seed=1)
    assert torch.allclose(sampler.probabilities(), torch.full((2, 3), 1 / 3, dtype=torch.float64))
    for _ in range(5):  # width 4 of "a" loses more than its other widths
        sampler.update({"a": 4, "b": 8}, 0.9)
        sampler.update({"a": 8, "b": 8}, 0.5)
        sampler.update({"a": 16, "b": 16}, 0.5)
    p = sampler.probabilities()
    assert p[0, 0] > 0.5 and p[0, 0] > p[0, 1] and p[0, 0] > p[0, 2]
    assert float(p.min()) >= 0.3 / 3 - 1e-9
    # Width 4 of "b" has never been drawn: it counts as the worst, so it is explored.
    assert p[1, 0] >= p[1].max() - 1e-9
    draws = [sampler.sample(s)["a"] for s in range(400)]
    assert draws.count(4) > draws.count(8) and draws.count(8) > 0.3 / 3 * 400 * 0.6
    assert sampler.sample(7) == sampler.sample(7)  # a function of (seed, step, state)


def test_reinforce_on_a_toy_reward_converges_to_the_best_width() -> None:
    best = {"a": 8, "b": 24, "c": 4}
    widths = [4, 8, 16, 24, 32]

    def reward(dims: dict[str, int]) -> float:
        return -sum(abs(widths.index(dims[f]) - widths.index(best[f])) for f in best) / 3

    policy = WidthPolicy(list(best), widths, lr=0.1, baseline_decay=0.9, samples=8, seed=3)
    steps = [policy.step(k, reward) for k in range(150)]
    assert policy.pick() == best
    assert float(policy.probabilities().max(dim=1).values.min()) > 0.8
    assert steps[-1].entropy < steps[0].entropy
    again = WidthPolicy(list(best), widths, lr=0.1, baseline_decay=0.9, samples=8, seed=3)
    assert [again.step(k, reward).rewards for k in range(5)] == [s.rewards for s in steps[:5]]


def test_budget_penalty_keeps_the_picks_within_the_budget() -> None:
    rows = {"a": 1000, "b": 1000, "c": 10}
    widths = [4, 8, 16, 32]
    budget = resolve_budget(0.5, rows, widths, 16)  # half of the uniform-16 model
    assert budget == int(0.5 * 16 * 2010)

    def reward(dims: dict[str, int]) -> float:  # wider is always better on its own
        score = sum(dims.values()) / 100
        return score - 1.0 * max(0.0, embedding_params(dims, rows, 16) / budget - 1.0)

    policy = WidthPolicy(list(rows), widths, lr=0.1, samples=8, seed=0)
    for k in range(200):
        policy.step(k, reward)
    pick = policy.pick()
    assert embedding_params(pick, rows, 16) <= budget
    assert pick["c"] == 32  # a tiny table is cheap: it gets the widest
    cfg = EvolutionConfig(population=8, tournament=3, children=4, generations=15)
    history = evolve_widths(list(rows), widths, cfg, reward, seed=0)
    top = max(history, key=lambda c: c.reward)
    assert embedding_params(top.widths, rows, 16) <= budget and len(history) == 8 + 4 * 15

    def cost(dims: dict[str, int]) -> int:
        return embedding_params(dims, rows, 16)

    def repair(dims: dict[str, int], rng: random.Random) -> dict[str, int]:
        return fit_to_budget(dims, widths, cost, budget, rng)

    repaired = evolve_widths(list(rows), widths, cfg, reward, seed=0, repair=repair)
    assert all(cost(c.widths) <= budget for c in repaired[:8])
    with pytest.raises(ValueError, match=r"embedding_search.budget: 100 .* below the smallest"):
        resolve_budget(100, rows, widths, 16)


def test_embedding_bag_configs_builds_per_table_widths_and_names_bad_input(
    tmp_path: Path,
) -> None:
    spec = DataSpec(["d0"], NAMES, [50] * 5)
    dims = {"c0": 4, "c1": 8, "c2": 16, "c3": 32, "c4": 64}
    path = tmp_path / "embedding_dims.json"
    path.write_text(json.dumps(dims))
    tables = embedding_bag_configs(str(path), tiny_tables())
    assert [t.embedding_dim for t in tables] == [4, 8, 16, 32, 64]
    assert [t.name for t in tables] == [f"t_c{i}" for i in range(5)]
    from_spec = embedding_bag_configs(dims, spec)
    assert [(t.name, t.embedding_dim, t.num_embeddings) for t in from_spec] == [
        (t.name, t.embedding_dim, t.num_embeddings) for t in tables
    ]
    with pytest.raises(EmbeddingDimsError, match="feature 'c2': width 6 is not a positive"):
        embedding_bag_configs({**dims, "c2": 6}, spec)
    with pytest.raises(EmbeddingDimsError, match="feature 'c4' of the data has no width"):
        embedding_bag_configs({k: v for k, v in dims.items() if k != "c4"}, spec)
    with pytest.raises(EmbeddingDimsError, match="feature 'zz' is not in the data"):
        embedding_bag_configs({**dims, "zz": 8}, spec)
    with pytest.raises(EmbeddingDimsError, match="not found"):
        embedding_bag_configs(str(tmp_path / "none.json"), spec)


def test_config_rejects_bad_widths_and_fields() -> None:
    cfg = Config.from_dict({"embedding_search": {"budget": 120000, "widths": [8, 16]}})
    assert cfg.embedding_search.budget == 120000 and isinstance(cfg.embedding_search.budget, int)
    assert Config.from_dict({}).embedding_search.widths == [4, 8, 12, 16, 24, 32, 48, 64]
    with pytest.raises(ConfigError, match="f.yaml: embedding_search: widths: width 6 is not"):
        Config.from_dict({"embedding_search": {"widths": [4, 6]}}, "f.yaml")
    with pytest.raises(ConfigError, match="embedding_search.nope: unknown field"):
        Config.from_dict({"embedding_search": {"nope": 1}}, "f.yaml")


def test_agreement_counts_identical_and_one_step_apart() -> None:
    a = agreement([{"x": 8, "y": 4}, {"x": 8, "y": 16}, {"x": 12, "y": 4}], [4, 8, 12, 16])
    assert a["identical_share"] == 0.0 and a["within_one_step_share"] == 0.5
    assert a["features"]["x"]["within_one_step"] and not a["features"]["y"]["within_one_step"]
    w = agreement([{"x": 8, "y": 4}, {"x": 12, "y": 16}], [4, 8, 12, 16], {"x": 90, "y": 10})
    assert w["within_one_step_weighted_share"] == 0.9 and w["identical_weighted_share"] == 0.0


def test_a_mixed_width_dlrm_trains_one_step_in_one_process() -> None:
    torch.manual_seed(0)
    dims = {"c0": 4, "c1": 8, "c2": 16, "c3": 32, "c4": 12}
    model = build_baseline("dlrm", tiny_tables(), 4, dense_arch_layer_sizes=[16])
    model = use_embedding_dims(model, embedding_bag_configs(dims, tiny_tables()), 16)
    ebc = model.model.sparse_arch.embedding_bag_collection
    assert [c.embedding_dim for c in ebc.embedding_bag_configs()] == [4, 8, 16, 32, 12]
    assert sorted(model.model.sparse_arch.projections) == ["c0", "c1", "c3", "c4"]
    opt = ModelOptimizer(model, OptimizerConfig(lr=0.1), total_steps=1)
    before = ebc.embedding_bags["t_c3"].weight.detach().clone()
    batch = random_batch()
    loss = F.binary_cross_entropy_with_logits(model(batch), batch.labels)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, ebc.embedding_bags["t_c3"].weight)


def test_a_nasrec_architecture_can_be_the_fixed_interaction(tmp_path: Path) -> None:
    from torchrec_nas.embedding_search.stage1 import build_embedding_supernet

    space = {"preset": "nasrec-small", "num_blocks": 3, "dense_dims": [16, 32]}
    cfg = Config.from_dict({"space": {**space, "sparse_tokens": [16]}})
    spec = DataSpec([f"d{i}" for i in range(4)], NAMES, [50] * 5)
    for seed in range(20):  # an architecture whose logit reads the embeddings
        arch = cfg.space.sample(random.Random(seed))
        path = tmp_path / "arch.json"
        path.write_text(arch.to_json())
        cfg.embedding_search.interaction = str(path)
        try:
            supernet = build_embedding_supernet(cfg, spec)
        except ValueError:
            continue
        break
    batch = random_batch()
    logits = supernet(batch, dict(zip(NAMES, [4, 8, 16, 32, 64])))
    assert logits.shape == (8,) and torch.isfinite(logits).all()
    assert max(t.embedding_dim for t in supernet.sparse_arch.embedding_bag_collection
               .embedding_bag_configs()) == 64  # fmt: skip
