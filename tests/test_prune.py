"""Structured pruning: consistent rebuilds, FLOPs targets, magnitude and mask ranking, export,
the ``prune`` command and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import random_batch, tiny_tables, train_tiny_run
from torch import nn

from torchrec_nas.architecture import Architecture, BlockConfig
from torchrec_nas.cli import main
from torchrec_nas.data import DataSpec
from torchrec_nas.hardware.flops import count_flops, model_layers
from torchrec_nas.models import NASRecSubnet, build_baseline
from torchrec_nas.prune import ChannelGraph, parse_targets, select_channels
from torchrec_nas.prune.mask import GatedSubnet
from torchrec_nas.space import SearchSpace
from torchrec_nas.stages.export import InferenceModel, example_inputs, export_model
from torchrec_nas.stages.models import load_model, save_model

SPACE = SearchSpace(
    name="prune-test",
    num_blocks=5,
    dense_ops=("fc", "gating", "sum", "dot", "cross"),
    sparse_ops=("efc", "attention"),
    dense_dims=(8, 16),
    sparse_tokens=(4, 8),
    embedding_dim=8,
    dense_to_sparse_tokens=2,
)
# Every operator; FC/gating/sum widths and EFC/attention tokens read by dot, cross, binary
# operators, dense-to-sparse projections and the classifier.
ARCH = Architecture(
    (
        BlockConfig("fc", "efc", 16, 8, (0,), (0,), dense_to_sparse=True, sparse_to_dense=True),
        BlockConfig("gating", "attention", 16, 8, (0, 1), (0, 1), dense_to_sparse=True),
        BlockConfig("sum", "efc", 8, 4, (1, 2), (1, 2), sparse_to_dense=True),
        BlockConfig("dot", "attention", 16, 8, (0, 2), (1, 3), dense_to_sparse=True),
        BlockConfig("cross", "efc", 8, 4, (1, 3, 4), (2, 4), True, True),
    )
)
DENSE_IN, FEATURES = 4, 5
SPEC = DataSpec([f"d{i}" for i in range(DENSE_IN)], [f"c{i}" for i in range(FEATURES)], [50] * 5)


def _model(seed: int = 0) -> NASRecSubnet:
    torch.manual_seed(seed)
    tables = tiny_tables(FEATURES, rows=50, dim=8)
    model = NASRecSubnet.build(tables, DENSE_IN, SPACE, ARCH, norm_gain_init=1.0)
    with torch.no_grad():  # LayerNorms with distinct gains, so magnitudes differ
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def test_every_operator_groups_and_zero_pruning_reproduces_logits() -> None:
    model = _model()
    graph = ChannelGraph(model, DENSE_IN)
    # Dot and cross widths are kept whole; FC, gating, sum widths and all tokens are prunable.
    assert set(graph.groups) == {
        (0, "dense"), (1, "dense"), (2, "dense"),
        (0, "tokens"), (1, "tokens"), (2, "tokens"), (3, "tokens"), (4, "tokens"),
    }  # fmt: skip
    batch = random_batch(16, DENSE_IN, FEATURES)
    everything = {k: torch.arange(n) for k, n in graph.groups.items()}
    for keep in ({}, everything):
        same = graph.rebuild(keep).eval()
        assert torch.equal(same(batch), model(batch))


def test_pruned_flops_at_or_below_target_and_layers_truly_smaller() -> None:
    model = _model()
    graph = ChannelGraph(model, DENSE_IN)
    full = graph.flops()
    keep = select_channels(graph, graph.importance(), 0.5 * full)
    pruned = graph.rebuild(keep).eval()
    layers = model_layers(pruned.arch, pruned.space, DENSE_IN, pruned.tables)
    assert count_flops(layers) <= 0.5 * full
    assert count_flops(layers) == ChannelGraph(pruned, DENSE_IN).flops()
    linears = dict(pruned.named_modules())
    assert linears["interaction.blocks.0.dense.linear"].out_features == len(keep[(0, "dense")]) < 16
    assert linears["interaction.blocks.0.sparse.token_mixing"].out_features < 8
    dense_params = lambda m: sum(p.numel() for n, p in m.named_parameters() if "embedding" not in n)  # noqa: E731
    assert dense_params(pruned) < dense_params(model)
    assert not any("mask" in n or "gate" in n for n, _ in pruned.named_parameters())
    assert pruned(random_batch(8, DENSE_IN, FEATURES)).shape == (8,)


def test_magnitude_removes_the_zeroed_channel_first() -> None:
    model = _model()
    with torch.no_grad():
        model.interaction.blocks[1].dense.left.weight[5].zero_()
        model.interaction.blocks[1].dense.right.weight[5].zero_()
    graph = ChannelGraph(model, DENSE_IN)
    assert graph.importance()[(1, "dense")][5] == 0
    keep = select_channels(graph, graph.importance(), graph.flops() - 1)
    removed = {k: n - len(keep[k]) for k, n in graph.groups.items()}
    assert sum(removed.values()) == 1 and 5 not in keep[(1, "dense")].tolist()


def test_learned_mask_gates_fold_and_remove_gated_channels() -> None:
    model = _model()
    batch = random_batch(16, DENSE_IN, FEATURES)
    gated = GatedSubnet(ChannelGraph(model, DENSE_IN))
    assert torch.equal(gated(batch), model(batch))  # gates start at one
    # A few steps of the task loss plus the L1 penalty move the gates.
    opt = torch.optim.SGD(gated.gates.parameters(), lr=0.5)
    for _ in range(3):
        loss = nn.functional.binary_cross_entropy_with_logits(gated(batch), batch.labels)
        (loss + 1e-2 * gated.penalty()).backward()
        opt.step()
        opt.zero_grad()
    assert all(bool((g < 1).any()) for g in gated.gates.values())
    with torch.no_grad():
        gated.gates["block0_dense"][[2, 7]] = 0.0
        for block in range(5):
            gated.gates[f"block{block}_tokens"].fill_(1.0)
        expected = gated(batch)  # token gates all one: folding the dense gates is exact
        gated.gates["block1_tokens"][3] = 0.0
    scores = gated.scores()
    folded = gated.fold_and_remove()  # dense gates into the LayerNorms, token gates dropped
    assert torch.allclose(folded(batch), expected, atol=1e-6)
    graph = ChannelGraph(folded, DENSE_IN)
    sizes = dict(graph.groups)
    sizes[(0, "dense")] -= 2
    sizes[(1, "tokens")] -= 1
    keep = select_channels(graph, scores, graph.flops(sizes), normalize=False)
    assert keep[(0, "dense")].tolist() == [0, 1, 3, 4, 5, 6] + list(range(8, 16))
    assert 3 not in keep[(1, "tokens")].tolist()


def test_pruned_model_saves_loads_and_exports(tmp_path: Path) -> None:
    model = _model()
    graph = ChannelGraph(model, DENSE_IN)
    pruned = graph.rebuild(select_channels(graph, graph.importance(), 0.6 * graph.flops()))
    path = tmp_path / "model_magnitude_60.pt"
    save_model(pruned, path, spec=SPEC.to_dict(), options={})
    loaded = load_model(path)
    batch = random_batch(8, DENSE_IN, FEATURES)
    assert torch.equal(loaded(batch), pruned.eval()(batch))
    result = export_model(path, tmp_path / "pruned.pt2")
    program = torch.export.load(result.program).module()
    inputs = example_inputs(SPEC, loaded.tables, batch_size=32)
    eager = InferenceModel(loaded).eval()(*inputs)
    assert torch.allclose(program(*inputs), eager, atol=1e-5)


def test_targets_outside_the_open_interval_are_refused() -> None:
    assert parse_targets("0.25,0.75,0.5") == [0.75, 0.5, 0.25]
    for bad in ("0", "1", "1.5", "-0.2", "half"):
        with pytest.raises(ValueError, match="--target-flops"):
            parse_targets(bad)


TINY = """
seed: 0
data: {batch_size: 128, synthetic: {rows: 3000, cardinalities: 300}}
space: {preset: nasrec-full, dense_dims: [16, 32], sparse_tokens: [4, 8]}
train:
  steps: 6
  eval_batches: 2
  progress: false
  baselines: {models: [dlrm], dense_arch_layer_sizes: [16], over_arch_layer_sizes: [16]}
"""
TINY_ARCH = Architecture(
    (
        BlockConfig("fc", "efc", 32, 8, (0,), (0,), dense_to_sparse=True),
        BlockConfig("gating", "attention", 16, 8, (0, 1), (0, 1)),
        BlockConfig("fc", "efc", 32, 8, (1, 2), (1, 2), sparse_to_dense=True),
        BlockConfig("sum", "efc", 16, 4, (3,), (3,)),
        BlockConfig("fc", "efc", 16, 8, (0, 4), (2, 4)),
        BlockConfig("dot", "efc", 16, 4, (5,), (5,)),
        BlockConfig("fc", "attention", 32, 8, (3, 6), (4, 6), dense_to_sparse=True),
    )
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    config, run = train_tiny_run(tmp_path_factory.mktemp("prune"), TINY, TINY_ARCH)
    return config, run / "train"


def test_prune_command_writes_models_json_and_markdown(tiny_run: tuple[Path, Path]) -> None:
    config, train = tiny_run
    argv = ["prune", "--config", str(config), "--model", str(train / "model_nasrec.pt")]
    argv += ["--target-flops", "0.7,0.4", "--method", "magnitude,mask", "--steps", "1"]
    assert main([*argv, "--finetune-steps", "2", "--mask-steps", "3", "--quiet"]) == 0
    out = train.parent / "prune"
    result = json.loads((out / "prune.json").read_text())
    assert [(e["method"], e["target"]) for e in result["pruned"]] == [
        ("magnitude", 0.7), ("magnitude", 0.4), ("mask", 0.7), ("mask", 0.4),
    ]  # fmt: skip
    for entry in result["pruned"]:
        assert entry["flops"] <= entry["target"] * result["base"]["flops"]
        assert entry["pim"]["pim_energy"] < result["base"]["pim"]["pim_energy"]
        assert 0 < entry["test"]["auc"] < 1
        assert isinstance(load_model(out / entry["model_file"]), NASRecSubnet)
    assert "| magnitude 40%" in (out / "prune.md").read_text()
    assert (out / "prune_auc_flops.png").stat().st_size > 0


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchrec-nas prune: error: ")
    return lines[0]


def test_prune_bad_inputs_fail_with_one_line(
    tiny_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, train = tiny_run
    base = ["prune", "--config", str(config), "--out", str(tmp_path / "out")]
    model = ["--model", str(train / "model_nasrec.pt")]
    assert "strictly between 0 and 1" in _fails([*base, *model, "--target-flops", "1.2"], capsys)
    missing = [*base, "--model", str(tmp_path / "none.pt"), "--target-flops", "0.5"]
    assert "model file not found" in _fails(missing, capsys)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a model")
    assert "corrupt.pt" in _fails([*base, "--model", str(corrupt), "--target-flops", "0.5"], capsys)
    dlrm = ["--model", str(train / "model_dlrm.pt"), "--target-flops", "0.5"]
    assert "cannot be pruned" in _fails([*base, *dlrm], capsys)
    unreachable = [*base, *model, "--target-flops", "0.01", "--finetune-steps", "0"]
    assert "cannot prune to" in _fails(unreachable, capsys)


def test_baselines_are_not_prunable() -> None:
    dlrm = build_baseline("dlrm", tiny_tables(3, dim=16), 4)
    with pytest.raises(ValueError, match="only NASRec models"):
        ChannelGraph(dlrm, 4)


def test_report_includes_prune_section(tmp_path: Path) -> None:
    from torchrec_nas.config import Config
    from torchrec_nas.report import write_report

    (tmp_path / "prune").mkdir()
    (tmp_path / "prune" / "prune.md").write_text(
        "## Structured pruning\n\n![x](prune_auc_flops.png)\n"
    )
    report = Path(write_report(Config(), str(tmp_path))).read_text()
    assert "## Structured pruning" in report and "](prune/prune_auc_flops.png)" in report


def test_prunes_models_without_layer_norms_or_head_tokens() -> None:
    import dataclasses

    space = dataclasses.replace(SPACE, layer_norm=False, head_tokens=(True, False))
    arch = dataclasses.replace(ARCH, head_tokens=False)
    torch.manual_seed(0)
    model = NASRecSubnet.build(tiny_tables(FEATURES, rows=50, dim=8), DENSE_IN, space, arch).eval()
    graph = ChannelGraph(model, DENSE_IN)
    batch = random_batch(16, DENSE_IN, FEATURES)
    assert torch.equal(graph.rebuild({}).eval()(batch), model(batch))
    keep = select_channels(graph, graph.importance(), 0.6 * graph.flops())
    pruned = graph.rebuild(keep).eval()
    assert ChannelGraph(pruned, DENSE_IN).flops() <= 0.6 * graph.flops()
    assert not pruned.arch.head_tokens and not pruned.space.layer_norm
    assert pruned.interaction.classifier.in_features == pruned.arch.blocks[-1].dense_dim
    gated = GatedSubnet(ChannelGraph(model, DENSE_IN))  # no LayerNorm to fold into: dropped
    assert torch.equal(gated(batch), model(batch))
    assert torch.equal(gated.fold_and_remove()(batch), model(batch))
