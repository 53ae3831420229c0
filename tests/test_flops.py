"""FLOPs and parameters of architectures: the layer records against PyTorch's own counter."""

from __future__ import annotations

import random

import pytest
import torch
from helpers import random_batch, tiny_tables
from torch.utils.flop_counter import FlopCounterMode

from torchrec_nas import NASRecModel, SearchSpace
from torchrec_nas.hardware.flops import architecture_costs, count_flops, count_params, model_layers
from torchrec_nas.hardware.layers import EmbeddingLookup, LinearLayer


@pytest.mark.parametrize("seed", range(6))
def test_matrix_flops_match_pytorch_counter(seed: int) -> None:
    space = SearchSpace.from_mapping({"preset": "nasrec-full", "dense_dims": [16, 32, 64]})
    model = NASRecModel(tiny_tables(), 4, space).eval()
    arch = space.sample(random.Random(seed))
    subnet = model.materialize(arch).eval()
    batch = random_batch(batch_size=4)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        subnet(batch)
    counted = counter.get_total_flops() / 4
    layers = model_layers(arch, space, 4, tiny_tables())
    # Our records count matrix products (2 FLOPs per MAC) plus element-wise work that PyTorch's
    # counter ignores. PyTorch's counter also skips the CPU kernel of scaled-dot-product
    # attention, so attention scores are compared apart from it.
    matrix = sum(2 * layer.macs for layer in layers if isinstance(layer, LinearLayer))
    matrix += sum(
        2 * layer.macs
        for layer in layers
        if not isinstance(layer, (LinearLayer, EmbeddingLookup))
        and not layer.name.endswith("attention.scores")
    )
    assert matrix == pytest.approx(counted, rel=0.02)
    assert count_flops(layers) >= matrix


def test_params_match_the_materialized_subnet() -> None:
    space = SearchSpace.from_mapping({"preset": "nasrec-small", "dense_dims": [16, 32, 64]})
    model = NASRecModel(tiny_tables(), 4, space)
    for arch in space.enumerate_samples(random.Random(0), 5):
        subnet = model.materialize(arch)
        linear_params = sum(
            p.numel()
            for name, p in subnet.interaction.named_parameters()
            if "norm" not in name and p.dim() >= 1 and not name.endswith("pairs")
        )
        assert count_params(model_layers(arch, space, 4, tiny_tables())) == linear_params


def test_costs_include_pim_figures() -> None:
    space = SearchSpace.preset("nasrec-full")
    arch = space.sample(random.Random(1))
    costs = architecture_costs(arch, space, 13, tiny_tables(26), hardware="isaac")
    assert costs["flops"] > 0 and costs["pim_energy"] > 0 and costs["pim_latency"] > 0
    assert "pim_energy" not in architecture_costs(arch, space, 13, tiny_tables(26), hardware=None)
