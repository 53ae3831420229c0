"""Building a subnet directly from its architecture, without allocating the supernet."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from torch import nn

from tests.helpers import random_batch, tiny_tables
from torchrec_nas import NASRecModel, SearchSpace
from torchrec_nas.models import NASRecSubnet
from torchrec_nas.modules.quant import ActivationQuantizer

PRESETS = ("nasrec-small", "nasrec-full")


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset", PRESETS)
def test_direct_build_matches_materialize_given_the_same_weights(preset: str) -> None:
    space = SearchSpace.preset(preset)
    for seed in range(4):
        arch = space.sample(random.Random(seed))
        torch.manual_seed(seed)
        built = NASRecSubnet.build(tiny_tables(), 4, space, arch).eval()
        reference = NASRecModel(tiny_tables(), 4, space).materialize(arch).eval()
        assert built.state_dict().keys() == reference.state_dict().keys()
        assert [type(m) for m in built.modules()] == [type(m) for m in reference.modules()]
        reference.load_state_dict(built.state_dict())
        batch = random_batch(seed=seed)
        with torch.no_grad():
            torch.testing.assert_close(built(batch), reference(batch))


def test_quantized_space_builds_and_matches() -> None:
    space = dataclasses.replace(SearchSpace.preset("nasrec-full"), bit_choices=(4, 8))
    arch = space.sample(random.Random(3))
    built = NASRecSubnet.build(tiny_tables(), 4, space, arch)
    reference = NASRecModel(tiny_tables(), 4, space).materialize(arch)
    reference.load_state_dict(built.state_dict())
    quantizers = [m for m in built.modules() if isinstance(m, ActivationQuantizer)]
    assert quantizers and not any(bool(q.initialized) for q in quantizers)
    batch = random_batch()
    built.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(built(batch), reference(batch))


def test_direct_build_allocates_only_the_subnet() -> None:
    space = SearchSpace.preset("nasrec-full")
    tables = tiny_tables(num_features=26, rows=10)
    arch = space.sample(random.Random(0))
    built = NASRecSubnet.build(tables, 13, space, arch)
    supernet = NASRecModel(tables, 13, space)
    assert not any(p.is_meta for p in built.parameters())
    assert not any(b.is_meta for b in built.buffers())
    # The supernet is over a hundred times the subnet (both with the same small tables).
    assert _count(built) * 100 < _count(supernet)
    assert _count(built) == _count(supernet.materialize(arch))


def test_direct_build_initialization() -> None:
    space = SearchSpace.preset("nasrec-full")
    arch = space.sample(random.Random(1))
    built = NASRecSubnet.build(tiny_tables(), 4, space, arch, norm_gain_init=0.5)
    for block in built.interaction.blocks:
        for norm in (block.dense_norm, block.sparse_norm):
            if norm is not None:
                assert torch.all(norm.weight == 0.5) and torch.all(norm.bias == 0)
    for module in built.modules():
        if isinstance(module, nn.Linear) and module.weight.shape[1] > 1:
            # PyTorch's default: uniform in ±1/sqrt(in_features), not all zero.
            bound = 1.0 / module.weight.shape[1] ** 0.5
            assert 0 < module.weight.abs().max() <= bound + 1e-6
