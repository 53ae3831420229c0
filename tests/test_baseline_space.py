"""A space that contains its baselines: DLRM and DCN-v2 as architectures of ``nasrec-full-x``,
their FLOPs against TorchRec's models, and the ``dlrm_dot`` and ``cross`` operators computing
TorchRec's own interactions on TorchRec's weights."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from helpers import random_batch, tiny_tables
from torch.utils.flop_counter import FlopCounterMode
from torchrec.datasets.utils import Batch
from torchrec.models.dlrm import DLRM, DLRM_DCN
from torchrec.modules.crossnet import LowRankCrossNet
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from torchrec_nas import NASRecModel, SearchSpace
from torchrec_nas.architecture import Architecture, ArchitectureError, canonicalize
from torchrec_nas.baseline_archs import dcn_architecture, dlrm_architecture
from torchrec_nas.hardware.flops import architecture_costs, count_params, model_layers
from torchrec_nas.models import NASRecSubnet, build_baseline
from torchrec_nas.modules.operators.cross import CrossInteraction
from torchrec_nas.modules.operators.dlrm_dot import DLRMDot

# configs/demo.yaml: its widths, and its baselines' dense and over arch.
DEMO_WIDTHS = {"dense_dims": [16, 32, 64, 128, 256], "sparse_tokens": [8, 16, 24, 32]}
DENSE_ARCH, OVER_ARCH = [256, 64], [256, 64]
# The NASRec architectures' FLOPs (layer records, element-wise work included) over TorchRec's
# (PyTorch's counter, matrix products only): LayerNorms, the last block's tokens, and
# dlrm_dot's projection of the dense vector.
FLOPS_FACTOR = 1.05


def _demo_space() -> SearchSpace:
    return SearchSpace.from_mapping({"preset": "nasrec-full-x", **DEMO_WIDTHS})


def _criteo_batch(batch_size: int = 4) -> Batch:
    keys = [f"c{i}" for i in range(26)]
    kjt = KeyedJaggedTensor.from_lengths_sync(
        keys=keys,
        values=torch.randint(0, 10, (batch_size * 26,)),
        lengths=torch.ones(batch_size * 26, dtype=torch.int32),
    )
    return Batch(torch.randn(batch_size, 13), kjt, torch.zeros(batch_size))


@pytest.mark.parametrize("name", ["dlrm", "dcn"])
def test_baselines_are_architectures_of_the_extended_space(name: str) -> None:
    make = dlrm_architecture if name == "dlrm" else dcn_architecture
    space = _demo_space()
    arch = make(space, DENSE_ARCH, OVER_ARCH)
    space.validate(arch)
    # Bottom MLP 256-64-16, the interaction (with the over arch's first layer), over 64.
    live = [b for b in canonicalize(arch).blocks if b.dense_op != "-"]
    interaction = "dlrm_dot" if name == "dlrm" else "cross"
    assert [(b.dense_op, b.dense_dim) for b in live] == [
        ("fc", 256),
        ("fc", 64),
        ("fc", 16),
        (interaction, 256),
        ("fc", 64),
    ]
    assert live[3].sparse_inputs == (0,)  # the raw embedding tokens
    # NASRec-Full itself does not contain them.
    with pytest.raises(ArchitectureError, match=rf"dense_op: '{interaction}' is not among"):
        SearchSpace.from_mapping({"preset": "nasrec-full", **DEMO_WIDTHS}).validate(arch)


@pytest.mark.parametrize("name", ["dlrm", "dcn"])
def test_flops_are_those_of_the_torchrec_baseline(name: str) -> None:
    make = dlrm_architecture if name == "dlrm" else dcn_architecture
    space = _demo_space()
    tables = tiny_tables(num_features=26, rows=10)
    baseline = build_baseline(
        name, tables, 13, dense_arch_layer_sizes=DENSE_ARCH, over_arch_layer_sizes=OVER_ARCH
    ).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        baseline(_criteo_batch(4))
    baseline_flops = counter.get_total_flops() / 4
    flops = architecture_costs(make(space, DENSE_ARCH, OVER_ARCH), space, 13, tables, None)
    assert baseline_flops < flops["flops"] < FLOPS_FACTOR * baseline_flops


def _baseline(name: str) -> torch.nn.Module:
    tables = tiny_tables(num_features=26, rows=10)
    return build_baseline(
        name, tables, 13, dense_arch_layer_sizes=DENSE_ARCH, over_arch_layer_sizes=OVER_ARCH
    ).model


def _interaction_module(arch: Architecture, space: SearchSpace, op: type) -> torch.nn.Module:
    """The interaction block's operator module of ``arch``, materialized from a supernet (so
    the supernet's slicing is what is checked), after checking supernet == subnet."""
    torch.manual_seed(0)
    model = NASRecModel(tiny_tables(num_features=26, rows=10), 13, space).eval()
    batch = _criteo_batch(8)
    with torch.no_grad():
        subnet = model.materialize(arch).eval()
        torch.testing.assert_close(subnet(batch), model(batch, arch))
    modules = [b.dense for b in subnet.interaction.blocks if isinstance(b.dense, op)]
    assert len(modules) == 1
    return modules[0]


def _small_space() -> SearchSpace:
    # The baselines' widths without dead blocks, so the supernet is small.
    return SearchSpace.from_mapping(
        {"preset": "nasrec-full-x", "num_blocks": 5, "dense_dims": [16, 64, 256]}
    )


def test_cross_is_torchrecs_low_rank_cross_net() -> None:
    space = _small_space()
    cross = _interaction_module(
        dcn_architecture(space, DENSE_ARCH, OVER_ARCH), space, CrossInteraction
    )
    assert isinstance(cross, CrossInteraction) and isinstance(cross.crossnet, LowRankCrossNet)
    baseline = _baseline("dcn")
    assert isinstance(baseline, DLRM_DCN)
    # DLRM_DCN's cross network and first over-arch layer, loaded into the operator.
    cross.crossnet.load_state_dict(baseline.inter_arch.crossnet.state_dict())
    first_over = baseline.over_arch.model[0]._mlp[0]._linear
    cross.projection.load_state_dict(first_over.state_dict())
    dense, tokens = torch.randn(8, 16), torch.randn(8, 26, 16)
    with torch.no_grad():
        expected = torch.relu(first_over(baseline.inter_arch(dense, tokens)))
        torch.testing.assert_close(cross([dense], tokens), expected)


def test_dlrm_dot_is_dlrms_interaction() -> None:
    space = _small_space()
    dot = _interaction_module(dlrm_architecture(space, DENSE_ARCH, OVER_ARCH), space, DLRMDot)
    assert isinstance(dot, DLRMDot)
    assert dot.over.in_features == 16 + 27 * 26 // 2  # [d, upper triangle of 27 vectors]
    baseline = _baseline("dlrm")
    assert isinstance(baseline, DLRM)
    first_over = baseline.over_arch.model[0]._mlp[0]._linear
    dot.over.load_state_dict(first_over.state_dict())
    with torch.no_grad():
        dot.projection.weight.copy_(torch.eye(16))
        dot.projection.bias.zero_()
    dense, tokens = torch.randn(8, 16), torch.randn(8, 26, 16)
    with torch.no_grad():
        expected = torch.relu(first_over(baseline.inter_arch(dense, tokens)))
        torch.testing.assert_close(dot([dense], tokens), expected)


def test_baseline_subnets_build_fresh_and_export() -> None:
    space = _small_space()
    tables = tiny_tables(num_features=26, rows=10)
    batch = _criteo_batch(8)
    for arch in (
        dlrm_architecture(space, DENSE_ARCH, OVER_ARCH),
        dcn_architecture(space, DENSE_ARCH, OVER_ARCH),
    ):
        torch.manual_seed(0)
        subnet = NASRecSubnet.build(tables, 13, space, arch).eval()
        # The layer records count every weight of the subnet but the LayerNorms'.
        weights = sum(
            p.numel() for n, p in subnet.interaction.named_parameters() if "norm" not in n
        )
        assert count_params(model_layers(arch, space, 13, tables)) == weights
        crossnets = [m for m in subnet.modules() if isinstance(m, LowRankCrossNet)]
        for net in crossnets:
            # TorchRec's initialization: Xavier-normal kernels, zero biases.
            assert all(torch.all(b == 0) for b in net.bias)
            std = (2.0 / (432 + 64)) ** 0.5
            assert all(0.8 * std < v.std() < 1.2 * std for v in net.V_kernels)
        assert subnet.sparse_arch is not None
        with torch.no_grad():
            tokens = subnet.sparse_arch(batch.sparse_features)
            program = torch.export.export(subnet.interaction, (batch.dense_features, tokens))
            torch.testing.assert_close(
                program.module()(batch.dense_features, tokens),
                subnet.interaction(batch.dense_features, tokens),
            )
            assert torch.isfinite(subnet(batch)).all()


def test_what_the_space_cannot_hold_is_named() -> None:
    space = _demo_space()
    with pytest.raises(ArchitectureError, match="num_layers: the cross operator has 3 layers"):
        dcn_architecture(space, DENSE_ARCH, OVER_ARCH, num_layers=2)
    with pytest.raises(ArchitectureError, match="low_rank: a cross block of width 256 has rank 64"):
        dcn_architecture(space, DENSE_ARCH, OVER_ARCH, low_rank=32)
    with pytest.raises(ArchitectureError, match="layer size 512 is not among"):
        dlrm_architecture(space, [512, 64], OVER_ARCH)
    with pytest.raises(ArchitectureError, match="num_blocks: the model has 5 layers"):
        dlrm_architecture(dataclasses.replace(space, num_blocks=4), DENSE_ARCH, OVER_ARCH)
    with pytest.raises(ArchitectureError, match="the space has no 'cross' operator"):
        dcn_architecture(
            SearchSpace.from_mapping({"preset": "nasrec-full", **DEMO_WIDTHS}),
            DENSE_ARCH,
            OVER_ARCH,
        )


@pytest.mark.parametrize("bits", [(), (4, 8)])
def test_new_operators_build_and_materialize_alike(bits: tuple[int, ...]) -> None:
    """Subnets running ``cross`` and ``dlrm_dot`` in every block: built fresh (no supernet)
    they have the materialized subnet's modules and keys, and compute the same function on the
    same weights; quantized too."""
    space = SearchSpace.from_mapping(
        {
            "preset": "nasrec-full-x",
            "dense_dims": [16, 32],
            "sparse_tokens": [4, 8],
            "num_blocks": 3,
            "bit_choices": list(bits),
        }
    )
    supernet = NASRecModel(tiny_tables(), 4, space)
    batch = random_batch()
    for seed, op in enumerate(["cross", "dlrm_dot"]):
        sampled = space.sample(random.Random(seed))
        arch = Architecture(tuple(dataclasses.replace(b, dense_op=op) for b in sampled.blocks))
        torch.manual_seed(seed)
        built = NASRecSubnet.build(tiny_tables(), 4, space, arch)
        supernet.train()
        supernet(batch, arch)  # quantizers see a range
        reference = supernet.materialize(arch)
        assert built.state_dict().keys() == reference.state_dict().keys()
        assert [type(m) for m in built.modules()] == [type(m) for m in reference.modules()]
        assert not any(p.is_meta for p in built.parameters())
        with torch.no_grad():
            supernet.eval()
            torch.testing.assert_close(reference.eval()(batch), supernet(batch, arch))
            reference.load_state_dict(built.state_dict())
            torch.testing.assert_close(built.eval()(batch), reference(batch))


def assert_computes_torchrec_dcn(
    space: SearchSpace, arch: Architecture, tables: list[EmbeddingBagConfig]
) -> torch.nn.Module:
    """Loads a fresh TorchRec ``DLRM_DCN``'s weights, in order, into ``arch``'s subnet and
    checks both give the same logits; returns the baseline."""
    torch.manual_seed(0)
    baseline = build_baseline(
        "dcn", tables, 13, dense_arch_layer_sizes=DENSE_ARCH, over_arch_layer_sizes=OVER_ARCH
    ).eval()
    subnet = NASRecSubnet.build(tables, 13, space, arch).eval()
    assert not [m for m in subnet.modules() if isinstance(m, torch.nn.LayerNorm)]
    theirs, ours = baseline.model.state_dict(), subnet.state_dict()
    assert [v.shape for v in theirs.values()] == [v.shape for v in ours.values()]
    subnet.load_state_dict(dict(zip(ours, theirs.values())))
    batch = _criteo_batch(8)
    with torch.no_grad():
        torch.testing.assert_close(subnet(batch), baseline(batch))
    return baseline


def test_dcn_architecture_is_torchrecs_dcn_without_norms_and_head_tokens() -> None:
    # layer_norm: false and a head that reads the dense output only: the architecture is
    # DLRM_DCN itself; TorchRec's weights, copied in order, give TorchRec's logits.
    space = SearchSpace.from_mapping(
        {**dataclasses.asdict(_small_space()), "layer_norm": False, "head_tokens": [True, False]}
    )
    arch = dcn_architecture(space, DENSE_ARCH, OVER_ARCH)
    assert not arch.head_tokens
    tables = tiny_tables(num_features=26, rows=10)
    baseline = assert_computes_torchrec_dcn(space, arch, tables)
    # FLOPs: the same layers (element-wise work only on top).
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        baseline(_criteo_batch(4))
    flops = architecture_costs(arch, space, 13, tables, None)["flops"]
    assert counter.get_total_flops() / 4 < flops < 1.01 * counter.get_total_flops() / 4


def test_head_tokens_is_a_gene_when_searched() -> None:
    space = SearchSpace.from_mapping({**DEMO_WIDTHS, "head_tokens": [True, False]})
    rng = random.Random(0)
    heads = {space.sample(rng).head_tokens for _ in range(20)}
    assert heads == {True, False}
    arch = space.sample(rng)
    flipped = [space.mutate(arch, rng) for _ in range(200)]
    assert any(a.head_tokens != arch.head_tokens for a in flipped)
    headless = dataclasses.replace(arch, head_tokens=False)
    assert headless.canonical_hash() != dataclasses.replace(arch, head_tokens=True).canonical_hash()
    assert Architecture.from_json(headless.to_json()) == headless
    with pytest.raises(ArchitectureError, match="head_tokens: false is not among"):
        SearchSpace.from_mapping(DEMO_WIDTHS).validate(headless)
    # The classifier reads fewer features, and a supernet and its subnet still agree, with
    # and without LayerNorms.
    for norm in (True, False):
        normed = dataclasses.replace(space, layer_norm=norm)
        torch.manual_seed(0)
        model = NASRecModel(tiny_tables(num_features=26, rows=10), 13, normed).train()
        batch = _criteo_batch(8)
        model(batch, headless)  # quantizers and norms see one training batch
        model.eval()
        with torch.no_grad():
            subnet = model.materialize(headless).eval()
            torch.testing.assert_close(subnet(batch), model(batch, headless))
        last = headless.blocks[-1].dense_dim
        assert subnet.interaction.classifier.in_features == last
        norms = [m for m in subnet.modules() if isinstance(m, torch.nn.LayerNorm)]
        assert bool(norms) == norm
