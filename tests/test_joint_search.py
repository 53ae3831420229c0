"""The joint search: embedding widths as genes of the architecture, priced and scored."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from torchrec_nas.space import Architecture, ArchitectureError, SearchSpace

FEATURES = ["c0", "c1", "c2"]


def joint_space() -> SearchSpace:
    return dataclasses.replace(
        SearchSpace.preset("nasrec-small"), num_blocks=2, embedding_widths=(4, 8, 16)
    )


def test_json_round_trip_and_hashes_without_widths_unchanged() -> None:
    space = joint_space()
    plain = space.sample(random.Random(0))
    assert plain.embedding_dims is None
    assert "embedding_dims" not in plain.to_dict()
    # The hash of an architecture without widths is the one the format always gave.
    old = Architecture(plain.blocks, plain.head_tokens)
    assert plain.canonical_hash() == old.canonical_hash()
    joint = space.sample(random.Random(0), FEATURES)
    assert joint.blocks == plain.blocks
    assert set(dict(joint.embedding_dims or ())) == set(FEATURES)
    data = json.loads(joint.to_json())
    assert data["embedding_dims"] == dict(joint.embedding_dims or ())
    assert Architecture.from_json(joint.to_json()) == joint
    assert joint.canonical_hash() != plain.canonical_hash()
    narrower = dataclasses.replace(joint, embedding_dims=(("c0", 4), ("c1", 4), ("c2", 4)))
    wider = dataclasses.replace(joint, embedding_dims=(("c0", 16), ("c1", 16), ("c2", 16)))
    assert narrower.canonical_hash() != wider.canonical_hash()
    # The pairs' order does not matter.
    assert dataclasses.replace(joint, embedding_dims=(("c2", 4), ("c0", 4), ("c1", 4))) == narrower


def test_validate_names_the_feature() -> None:
    space = joint_space()
    arch = space.sample(random.Random(1), FEATURES)
    space.validate(arch)
    bad = dataclasses.replace(arch, embedding_dims=(("c0", 4), ("c1", 12), ("c2", 8)))
    with pytest.raises(ArchitectureError, match="feature 'c1': width 12"):
        space.validate(bad)
    with pytest.raises(ArchitectureError, match="does not search embedding widths"):
        dataclasses.replace(space, embedding_widths=()).validate(arch)
    with pytest.raises(ArchitectureError, match="feature 'c0'"):
        Architecture.from_dict({**arch.to_dict(), "embedding_dims": {"c0": "wide"}})


@pytest.mark.parametrize("widths", [(4, 6), (8, 4), (4, 32)])
def test_bad_width_choices_are_refused(widths: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="embedding_widths"):
        dataclasses.replace(SearchSpace.preset("nasrec-small"), embedding_widths=widths)


def test_mutation_moves_one_width_one_step() -> None:
    space = joint_space()
    assert "embedding_width" in space.genes()
    assert "embedding_width" not in SearchSpace.preset("nasrec-small").genes()
    arch = space.sample(random.Random(2), FEATURES)
    order = list(space.embedding_widths)
    moved = 0
    for seed in range(200):
        child = space.mutate(arch, random.Random(seed))
        space.validate(child)
        if child.blocks != arch.blocks or child.head_tokens != arch.head_tokens:
            assert child.embedding_dims == arch.embedding_dims
            continue
        before, after = dict(arch.embedding_dims or ()), dict(child.embedding_dims or ())
        changed = [f for f in FEATURES if before[f] != after[f]]
        assert len(changed) == 1
        f = changed[0]
        assert abs(order.index(before[f]) - order.index(after[f])) == 1
        moved += 1
    assert moved > 0


def test_costs_shrink_with_narrower_widths() -> None:
    from torchrec.modules.embedding_configs import EmbeddingBagConfig

    from torchrec_nas.hardware.flops import architecture_costs

    space = joint_space()
    tables = [
        EmbeddingBagConfig(name=f"t_{f}", embedding_dim=16, num_embeddings=1000, feature_names=[f])
        for f in FEATURES
    ]
    arch = space.largest()  # its embeddings reach the logit
    uniform = architecture_costs(arch, space, 4, tables, "isaac")
    at16 = dataclasses.replace(arch, embedding_dims=tuple((f, 16) for f in FEATURES))
    assert architecture_costs(at16, space, 4, tables, "isaac") == uniform
    assert uniform["embedding_params"] == 3 * 1000 * 16
    narrow = dataclasses.replace(arch, embedding_dims=(("c0", 4), ("c1", 8), ("c2", 16)))
    costs = architecture_costs(narrow, space, 4, tables, "isaac")
    # Tables plus the d -> 16 projections of the two narrow features.
    assert costs["embedding_params"] == 1000 * 28 + 5 * 16 + 9 * 16
    assert costs["memory_bytes"] < uniform["memory_bytes"]
    assert costs["pim_energy"] < uniform["pim_energy"]
    assert costs["flops"] == uniform["flops"]


def tiny_model() -> tuple[object, object, SearchSpace]:
    import torch
    from torchrec.datasets.utils import Batch
    from torchrec.modules.embedding_configs import EmbeddingBagConfig
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    from torchrec_nas.models import NASRecModel

    torch.manual_seed(0)
    space = joint_space()
    tables = [
        EmbeddingBagConfig(name=f"t_{f}", embedding_dim=16, num_embeddings=50, feature_names=[f])
        for f in FEATURES
    ]
    model = NASRecModel(tables, 4, space).eval()
    b = 8
    kjt = KeyedJaggedTensor.from_lengths_sync(
        keys=FEATURES,
        values=torch.randint(0, 50, (3 * b,)),
        lengths=torch.ones(3 * b, dtype=torch.int32),
    )
    batch = Batch(torch.randn(b, 4), kjt, torch.randint(0, 2, (b,)))
    return model, batch, space


def test_supernet_widths_equal_zeroed_columns_and_materialize() -> None:
    import torch

    model, batch, space = tiny_model()
    arch = space.largest()
    narrow = dataclasses.replace(arch, embedding_dims=(("c0", 4), ("c1", 8), ("c2", 16)))
    got = model(batch, narrow)  # type: ignore[operator]
    # The same supernet with the columns beyond each width zeroed in its tables.
    tables = model.sparse_arch.embedding_bag_collection.embedding_bags  # type: ignore[attr-defined]
    with torch.no_grad():
        tables["t_c0"].weight[:, 4:] = 0
        tables["t_c1"].weight[:, 8:] = 0
    want = model(batch, arch)  # type: ignore[operator]
    torch.testing.assert_close(got, want)
    assert not torch.allclose(
        got,
        model(
            batch, dataclasses.replace(narrow, embedding_dims=(("c0", 16), ("c1", 16), ("c2", 4)))
        ),
    )  # type: ignore[operator]
    # A materialized subnet has tables at the widths and computes what the supernet scored.
    subnet = model.materialize(narrow).eval()  # type: ignore[attr-defined]
    dims = [t.embedding_dim for t in subnet.tables]
    assert dims == [4, 8, 16]
    torch.testing.assert_close(subnet(batch), got)


def test_a_subnet_built_from_scratch_has_the_widths() -> None:
    from torchrec.modules.embedding_configs import EmbeddingBagConfig

    from torchrec_nas.models import NASRecSubnet

    space = joint_space()
    tables = [
        EmbeddingBagConfig(name=f"t_{f}", embedding_dim=16, num_embeddings=50, feature_names=[f])
        for f in FEATURES
    ]
    arch = dataclasses.replace(space.largest(), embedding_dims=(("c0", 4), ("c1", 8), ("c2", 16)))
    subnet = NASRecSubnet.build(tables, 4, space, arch)
    ebc = subnet.sparse_arch.embedding_bag_collection  # type: ignore[union-attr]
    assert [t.embedding_dim for t in ebc.embedding_bag_configs()] == [4, 8, 16]
    _, batch, _ = tiny_model()
    assert subnet(batch).shape == (8,)  # type: ignore[attr-defined]


TINY_JOINT = """
seed: 0
data:
  batch_size: 64
  synthetic: {rows: 3000, cardinalities: 100}
space:
  preset: nasrec-full
  dense_dims: [16, 32]
  sparse_tokens: [4, 8]
  embedding_widths: [4, 8, 16]
supernet: {steps: 4, eval_batches: 1, progress: false}
search:
  population: 6
  tournament: 2
  children: 2
  generations: 3
  finetune: {steps: 3, eval_batches: 2}
  progress: false
  allow_chance: true  # 4 supernet steps learn nothing
"""


def test_a_tiny_joint_search_keeps_to_an_embedding_budget(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import math
    import statistics

    from torchrec_nas.config import Config
    from torchrec_nas.data import build_data
    from torchrec_nas.hardware.flops import architecture_costs
    from torchrec_nas.search.evolution import make_strategy
    from torchrec_nas.stages import run_search, run_supernet

    (tmp_path / "tiny.yaml").write_text(TINY_JOINT)
    cfg = Config.load(tmp_path / "tiny.yaml")
    spec = build_data(cfg.data, cfg.seed).spec
    tables = spec.tables(cfg.space.embedding_dim)
    strategy = make_strategy(cfg.space, cfg.search, cfg.seed, spec.sparse_names)
    initial = strategy.initial_population()  # type: ignore[union-attr]
    assert all(set(dict(a.embedding_dims or ())) == set(spec.sparse_names) for a in initial)
    sizes = [
        architecture_costs(a, cfg.space, len(spec.dense_names), tables, None)["embedding_params"]
        for a in initial
    ]
    budget = statistics.median(sizes)
    cfg.search.objective.budgets["embedding_params"] = budget
    run_supernet(cfg, tmp_path)
    summary = run_search(cfg, tmp_path)
    best = summary["best"]
    assert math.isfinite(best["score"])
    assert best["costs"]["embedding_params"] <= budget
    assert "memory_bytes" in best["costs"]
    assert set(best["architecture"]["embedding_dims"]) == set(spec.sparse_names)
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    # The widths do not change the supernet's weights: an interaction-only config loads it.
    from torchrec_nas.stages import load_supernet

    plain = dataclasses.replace(cfg, space=dataclasses.replace(cfg.space, embedding_widths=()))
    load_supernet(plain, tmp_path / "supernet.pt", spec)
    front = summary["pareto_memory"]
    assert front and front[0]["hash"] in {r["hash"] for r in history}
    memory = [row["memory_bytes"] for row in front]
    assert memory == sorted(memory)
    logloss = [row["logloss"] for row in front]
    assert logloss == sorted(logloss, reverse=True)  # more memory buys lower logloss
    over = [r for r in history if r["costs"]["embedding_params"] > budget]
    assert over and all(r["score"] is None for r in over)  # infeasible: the budget binds
