"""FLOPs and parameters of architectures: the layer records against PyTorch's own counter."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from helpers import random_batch, tiny_tables
from torch.utils.flop_counter import FlopCounterMode

from torchrec_nas import Architecture, NASRecModel, SearchSpace
from torchrec_nas.hardware.flops import architecture_costs, count_flops, count_params, model_layers
from torchrec_nas.hardware.layers import ActivationOp, Layer, LinearLayer
from torchrec_nas.modules.interaction import NASRecInteraction
from torchrec_nas.modules.layout import operator_shape
from torchrec_nas.modules.operators import known_operators, operator_class, operator_spec
from torchrec_nas.modules.subnet import SubnetBlock


def _matrix_flops(layers: list[Layer]) -> int:
    """2 FLOPs per multiply-accumulate of the records: what PyTorch's counter counts (it
    ignores element-wise work, which the records count apart)."""
    return sum(2 * layer.macs for layer in layers if isinstance(layer, (LinearLayer, ActivationOp)))


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
    layers = model_layers(arch, space, 4, tiny_tables())
    assert _matrix_flops(layers) == counter.get_total_flops() / 4
    assert count_flops(layers) > _matrix_flops(layers)


@pytest.mark.parametrize("name", known_operators())
def test_every_operator_records_what_its_module_computes(name: str) -> None:
    """Each registered operator's layer records against PyTorch's counter on the module it
    materializes into, for a block reading several inputs."""
    spec = operator_spec(name)
    space = SearchSpace.from_mapping(
        {
            "preset": "nasrec-full",
            "dense_dims": [16, 32, 64],
            "sparse_tokens": [4, 8],
            "num_blocks": 3,
            spec.kind + "_ops": [name],
        }
    )
    inter = NASRecInteraction(space, dense_in_features=5, num_sparse_features=3).eval()
    blocks = [space.sample_block(i, random.Random(i)) for i in range(3)]
    last = dataclasses.replace(blocks[2], dense_dim=32, dense_inputs=(0, 2), sparse_inputs=(1, 2))
    arch = Architecture((*blocks[:2], last))
    subnet = inter.materialize(arch)
    block = subnet.blocks[-1]
    assert isinstance(block, SubnetBlock)
    plan = inter.plan(arch).blocks[2]
    module = block.dense if spec.kind == "dense" else block.sparse
    assert module is not None
    # Printing the subnet says which operator the block runs.
    assert f"({spec.kind}): {type(module).__name__}(" in repr(subnet)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        if plan.dense is not None and spec.kind == "dense":
            dense_inputs = [torch.randn(2, 5), torch.randn(2, blocks[1].dense_dim)]
            module(dense_inputs, torch.randn(2, len(plan.dense.token_cols), 16))
        else:
            assert plan.sparse is not None
            module(torch.randn(2, len(plan.sparse.cols), 16))
    op_plan = plan.dense if spec.kind == "dense" else plan.sparse
    assert op_plan is not None
    shape = operator_shape(space, inter.sizes, 2)
    records = operator_class(name).layers(op_plan, shape, f"block2.{spec.kind}.{name}")
    assert records and all(r.name.startswith(f"block2.{spec.kind}.{name}.") for r in records)
    assert _matrix_flops(records) == counter.get_total_flops() / 2


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
