"""The search space: presets, sampling, mutation, validation, canonical form."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter

import pytest

from torchrec_nas import Architecture, SearchSpace
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.space import ArchitectureError, canonicalize, liveness


def test_presets_match_nasrec() -> None:
    full = SearchSpace.preset("nasrec-full")
    small = SearchSpace.preset("nasrec-small")
    assert full.num_blocks == small.num_blocks == 7
    assert set(full.dense_ops) == {"fc", "gating", "sum", "dot"}
    assert set(full.sparse_ops) == {"efc", "attention"}
    assert set(small.dense_ops) == {"fc", "dot"} and small.sparse_ops == ("efc",)
    assert full.dense_dims == (16, 32, 64, 128, 256, 512, 768, 1024)
    assert full.sparse_tokens == (16, 32, 48, 64)
    assert full.embedding_dim == 16 and full.max_inputs == 4 and full.dense_to_sparse_tokens == 8
    with pytest.raises(ConfigError, match="unknown search space preset 'nope'"):
        SearchSpace.preset("nope")


@pytest.mark.parametrize("preset", ["nasrec-small", "nasrec-full"])
def test_samples_are_valid_and_round_trip(preset: str) -> None:
    space = SearchSpace.preset(preset)
    rng = random.Random(0)
    for _ in range(300):
        arch = space.sample(rng)
        space.validate(arch)
        assert Architecture.from_json(arch.to_json()) == arch
        child = space.mutate(arch, rng, num_mutations=3)
        space.validate(child)


def test_input_counts_follow_binomial_rule() -> None:
    space = SearchSpace.preset("nasrec-full")
    rng = random.Random(1)
    counts: dict[int, Counter[int]] = {i: Counter() for i in range(7)}
    for _ in range(4000):
        for i, b in enumerate(space.sample(rng).blocks):
            counts[i][len(b.dense_inputs)] += 1
            assert all(0 <= j <= i for j in b.dense_inputs + b.sparse_inputs)
    assert set(counts[0]) == {1}
    assert set(counts[1]) == {1, 2}
    assert set(counts[6]) == {1, 2, 3, 4}
    # 1 + Binomial(3, 1/2): P(4 inputs) = 1/8 for the later blocks.
    assert abs(counts[6][4] / 4000 - 0.125) < 0.03
    assert abs(counts[1][2] / 4000 - 0.5) < 0.04


def test_validate_names_block_and_field() -> None:
    space = SearchSpace.preset("nasrec-small")
    arch = space.sample(random.Random(2))
    bad = dataclasses.replace(arch.blocks[3], dense_op="attention")
    broken = Architecture(arch.blocks[:3] + (bad,) + arch.blocks[4:])
    with pytest.raises(ArchitectureError, match=r"block 3: dense_op: 'attention' is not among"):
        space.validate(broken)
    future = dataclasses.replace(arch.blocks[2], sparse_inputs=(0, 5))
    with pytest.raises(
        ArchitectureError, match=r"block 2: sparse_inputs: input 5 is not an earlier"
    ):
        space.validate(Architecture(arch.blocks[:2] + (future,) + arch.blocks[3:]))
    too_many = dataclasses.replace(arch.blocks[6], dense_inputs=(0, 1, 2, 3, 4))
    with pytest.raises(ArchitectureError, match=r"block 6: dense_inputs: takes 1 to 4 inputs"):
        space.validate(Architecture(arch.blocks[:6] + (too_many,)))
    with pytest.raises(ArchitectureError, match="has 6 blocks"):
        space.validate(Architecture(arch.blocks[:6]))


def test_from_json_errors_name_the_field() -> None:
    data = SearchSpace.preset("nasrec-full").sample(random.Random(0)).to_dict()
    data["blocks"][2]["dense_dim"] = "wide"
    with pytest.raises(ArchitectureError, match=r"block 2.dense_dim: expected an integer"):
        Architecture.from_json(json.dumps(data))
    data["blocks"][2]["dense_dim"] = 64
    data["blocks"][1]["colour"] = 1
    with pytest.raises(ArchitectureError, match=r"block 1.colour: unknown field"):
        Architecture.from_dict(data)
    with pytest.raises(ArchitectureError, match="not valid JSON"):
        Architecture.from_json("{")


def test_canonical_hash_ignores_what_cannot_reach_the_logit() -> None:
    space = SearchSpace.preset("nasrec-full")
    rng = random.Random(3)
    found = 0
    for _ in range(200):
        arch = space.sample(rng)
        live = liveness(arch)
        dead = [i for i, lv in enumerate(live) if not lv.alive]
        if not dead:
            continue
        i = dead[0]
        changed = dataclasses.replace(
            arch.blocks[i], dense_op="sum" if arch.blocks[i].dense_op != "sum" else "fc"
        )
        other = Architecture(arch.blocks[:i] + (changed,) + arch.blocks[i + 1 :])
        assert other.canonical_hash() == arch.canonical_hash()
        found += 1
    assert found > 10
    # The last block is always alive: changing its width changes the function.
    arch = space.sample(rng)
    last = arch.blocks[-1]
    wider = dataclasses.replace(last, dense_dim=1024 if last.dense_dim != 1024 else 16)
    assert Architecture(arch.blocks[:-1] + (wider,)).canonical_hash() != arch.canonical_hash()


def test_canonical_form_sorts_inputs_and_clears_unused_bits() -> None:
    space = SearchSpace.preset("nasrec-full")
    arch = space.sample(random.Random(4))
    last = arch.blocks[-1]
    shuffled = dataclasses.replace(last, dense_inputs=tuple(reversed(last.dense_inputs)))
    assert Architecture(arch.blocks[:-1] + (shuffled,)).canonical_hash() == arch.canonical_hash()
    canon = canonicalize(arch)
    assert canonicalize(canon) == canon


def test_space_from_yaml_overrides_preset_and_reports_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "space.yaml"
    good.write_text("preset: nasrec-small\ndense_dims: [16, 32, 64]\nnum_blocks: 3\n")
    space = SearchSpace.from_yaml(good)
    assert space.dense_dims == (16, 32, 64) and space.num_blocks == 3
    assert space.dense_ops == ("fc", "dot")
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: nasrec-small\ndense_ops: [fc, conv]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*dense_ops: unknown operator 'conv'"):
        SearchSpace.from_yaml(bad)
    unsorted = tmp_path / "unsorted.yaml"
    unsorted.write_text("dense_dims: [64, 16]\n")
    with pytest.raises(ConfigError, match="dense_dims must be sorted"):
        SearchSpace.from_yaml(unsorted)


def test_mutation_changes_the_architecture() -> None:
    space = SearchSpace.preset("nasrec-full")
    rng = random.Random(5)
    for _ in range(100):
        arch = space.sample(rng)
        assert space.mutate(arch, rng) != arch


def test_loading_a_bad_architecture_file_names_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    arch = SearchSpace.preset("nasrec-full").sample(random.Random(6))
    good = tmp_path / "best_arch.json"
    good.write_text(json.dumps({"architecture": arch.to_dict(), "score": 0.44}))
    assert Architecture.load(good) == arch
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1, "blocks": [')
    with pytest.raises(ArchitectureError, match=r"broken.json: not valid JSON") as info:
        Architecture.load(broken)
    assert "\n" not in str(info.value)
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**arch.to_dict(), "version": 2}))
    with pytest.raises(ArchitectureError, match=r"future.json: architecture JSON version 2 is not"):
        Architecture.load(future)
    with pytest.raises(ArchitectureError, match=r"future.json: .*version 2"):
        Architecture.from_json(future.read_text(), str(future))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(ArchitectureError, match=r"binary.json: not valid JSON"):
        Architecture.load(binary)


def test_operators_come_from_the_registry() -> None:
    with pytest.raises(ConfigError, match=r"dense_ops: 'efc' is a sparse operator"):
        SearchSpace.from_mapping({"dense_ops": ["fc", "efc"]})
    with pytest.raises(ConfigError, match=r"dense_ops: operator 'my pkg:Op'"):
        SearchSpace.from_mapping({"dense_ops": ["fc", "my pkg:Op"]})
    # A reference is imported when a model is built, not when the space is read.
    space = SearchSpace.from_mapping({"dense_ops": ["fc", "no_such_pkg.ops:MyOp"]})
    with pytest.raises(
        ValueError, match=r"space.dense_ops: operator 'no_such_pkg.ops:MyOp': cannot"
    ):
        space.check_operators()
