"""Supernet modules: materialized subnets equal the supernet, weights are shared by slicing."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from helpers import random_batch, tiny_tables

from torchrec_nas import Architecture, NASRecModel, SearchSpace
from torchrec_nas.modules.interaction import NASRecInteraction
from torchrec_nas.modules.operators.dot import dot_tokens, tril_pair_index

# The presets' operators and connectivity with smaller widths, so that tests run in seconds.
SMALL_WIDTHS = {"dense_dims": (16, 32, 64), "sparse_tokens": (4, 8)}


def _space(preset: str) -> SearchSpace:
    return SearchSpace.from_mapping(
        {"preset": preset, **{k: list(v) for k, v in SMALL_WIDTHS.items()}}
    )


@pytest.mark.parametrize("preset", ["nasrec-small", "nasrec-full", "nasrec-full-x"])
def test_materialized_subnet_gives_the_same_logits(preset: str) -> None:
    torch.manual_seed(0)
    space = _space(preset)
    model = NASRecModel(tiny_tables(), dense_in_features=4, space=space).eval()
    batch = random_batch()
    rng = random.Random(0)
    for arch in space.enumerate_samples(rng, 40):
        with torch.no_grad():
            expected = model(batch, arch)
            subnet = model.materialize(arch).eval()
            got = subnet(batch)
        assert got.shape == (8,)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        # Only the active weights are copied: the subnet is much smaller than the supernet.
        n_sub = sum(p.numel() for p in subnet.interaction.parameters())
        n_super = sum(p.numel() for p in model.interaction.parameters())
        assert n_sub < n_super


def test_reference_widths_materialize_exactly() -> None:
    torch.manual_seed(0)
    space = SearchSpace.preset("nasrec-full")
    model = NASRecModel(tiny_tables(), 4, space).eval()
    batch = random_batch()
    for arch in space.enumerate_samples(random.Random(7), 5):
        with torch.no_grad():
            torch.testing.assert_close(model.materialize(arch)(batch), model(batch, arch))


def test_gradients_reach_only_the_active_slices() -> None:
    torch.manual_seed(0)
    space = _space("nasrec-full")
    model = NASRecModel(tiny_tables(), 4, space)
    sampled = space.sample(random.Random(1))
    # The last block always reaches the logit; make it run FC and EFC.
    last_config = dataclasses.replace(sampled.blocks[-1], dense_op="fc", sparse_op="efc")
    arch = Architecture(sampled.blocks[:-1] + (last_config,))
    model(random_batch(), arch).sum().backward()
    last = model.interaction.plan(arch).blocks[-1]
    assert last.dense is not None
    block = model.interaction.blocks[-1]
    grad = block.dense_ops["fc"].linear.weight.grad
    assert grad is not None and grad[: last_config.dense_dim, last.dense.cols].abs().sum() > 0
    assert grad[last_config.dense_dim :].abs().sum() == 0  # rows beyond the active width
    unused = torch.ones(grad.shape[1], dtype=torch.bool)
    unused[last.dense.cols] = False
    assert unused.any() and grad[:, unused].abs().sum() == 0  # columns of unselected inputs
    # Operators the last block did not choose get no gradient at all.
    for name, op in list(block.dense_ops.items()) + list(block.sparse_ops.items()):
        if name not in ("fc", "efc"):
            assert all(p.grad is None for p in op.parameters()), name


def test_weights_are_shared_between_subnets() -> None:
    torch.manual_seed(0)
    space = _space("nasrec-small")
    model = NASRecModel(tiny_tables(), 4, space).eval()
    arch = space.sample(random.Random(2))
    batch = random_batch()
    with torch.no_grad():
        before = model(batch, arch)
        model.interaction.classifier.weight.mul_(2.0)
        model.interaction.classifier.bias.mul_(2.0)
        after = model(batch, arch)
    torch.testing.assert_close(after, 2 * before)


def test_dot_product_balancing() -> None:
    for dim in (16, 32, 64, 128, 256, 512, 768, 1024):
        n = dot_tokens(dim)
        assert n * (n + 1) // 2 >= dim
        assert tril_pair_index(n, dim).numel() == dim
    # Pairs among the first k tokens come first, so narrower widths share a prefix.
    assert torch.equal(tril_pair_index(6, 10)[:6], torch.tensor([0, 6, 7, 12, 13, 14]))


def test_interaction_standalone_on_any_tokens() -> None:
    space = _space("nasrec-full")
    inter = NASRecInteraction(space, dense_in_features=7, num_sparse_features=3)
    arch = space.sample(random.Random(3))
    logits = inter(torch.randn(5, 7), torch.randn(5, 3, 16), arch)
    assert logits.shape == (5,)
    assert torch.isfinite(logits).all()


def test_wrong_embedding_dim_is_rejected() -> None:
    with pytest.raises(ValueError, match="embedding_dim 8"):
        NASRecModel(tiny_tables(dim=8), 4, SearchSpace.preset("nasrec-small"))
