"""The supernet's sliced optimizer step computes what clip_grad_norm_ + torch Adagrad compute."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import random_batch, tiny_tables

from torchrec_nas import NASRecModel, SearchSpace
from torchrec_nas.modules.elastic import used_regions
from torchrec_nas.modules.operators.attention import multi_head_attention
from torchrec_nas.train.optim import ModelOptimizer, OptimizerConfig
from torchrec_nas.train.sampling import PathSampler

SPACE = SearchSpace.from_mapping(
    {"preset": "nasrec-full-x", "dense_dims": [16, 32], "sparse_tokens": [4, 8]}
)
CFG = OptimizerConfig(lr=0.12, eps=0.01, grad_clip_norm=0.5, warmup_fraction=0.0)


def _train(model: NASRecModel, opt: ModelOptimizer, steps: range, sampler: PathSampler) -> None:
    for s in steps:
        batch = random_batch(batch_size=16, seed=s)
        loss = F.binary_cross_entropy_with_logits(model(batch, sampler(s)), batch.labels.float())
        loss.backward()
        opt.step()


def _pair() -> tuple[NASRecModel, ModelOptimizer, NASRecModel, ModelOptimizer]:
    torch.manual_seed(0)
    model = NASRecModel(tiny_tables(), 4, SPACE)
    reference = copy.deepcopy(model)
    opt = ModelOptimizer(model, CFG, total_steps=20)
    ref_opt = ModelOptimizer(reference, CFG, total_steps=20)
    ref_opt.sliced = False  # clip_grad_norm_ + torch.optim.Adagrad.step over whole weights
    assert opt.sliced
    return model, opt, reference, ref_opt


def _assert_close(a: NASRecModel, b: NASRecModel) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


def test_sliced_steps_equal_whole_weight_adagrad_on_a_supernet() -> None:
    model, opt, reference, ref_opt = _pair()
    # Steps 0-1 train the largest path, later ones sampled subnets of every operator.
    sampler = PathSampler(SPACE, seed=3, warmup_steps=2)
    batch = random_batch(batch_size=16, seed=0)
    model(batch, sampler(0)).sum().backward()
    # The cross records the columns of its x0 on its kernels; untouched weights stay unrecorded.
    recorded = [p for p in opt.dense_params if used_regions(p)]
    assert 0 < len(recorded) < len(opt.dense_params)
    opt.step()
    assert not any(used_regions(p) for p in opt.dense_params)
    reference(batch, sampler(0)).sum().backward()
    ref_opt.step()
    _assert_close(model, reference)
    _train(model, opt, range(1, 8), sampler)
    _train(reference, ref_opt, range(1, 8), sampler)
    _assert_close(model, reference)
    ops = {b.dense_op for s in range(8) for b in sampler(s).blocks}
    assert {"cross", "dlrm_dot"} <= ops
    # The optimizer states agree too (same keys, same accumulators and step counts).
    state, ref_state = opt.state_dict()["dense"], ref_opt.state_dict()["dense"]
    assert state["state"].keys() == ref_state["state"].keys()
    for key, value in state["state"].items():
        torch.testing.assert_close(value["sum"], ref_state["state"][key]["sum"], atol=1e-6, rtol=0)
        assert float(value["step"]) == float(ref_state["state"][key]["step"])


def test_a_resumed_sliced_run_equals_the_uninterrupted_one() -> None:
    sampler = PathSampler(SPACE, seed=4, warmup_steps=2)
    torch.manual_seed(0)
    model = NASRecModel(tiny_tables(), 4, SPACE)
    start = copy.deepcopy(model.state_dict())
    opt = ModelOptimizer(model, CFG, total_steps=12)
    _train(model, opt, range(5), sampler)
    saved = copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict()})
    _train(model, opt, range(5, 10), sampler)

    torch.manual_seed(1)
    resumed = NASRecModel(tiny_tables(), 4, SPACE)
    resumed.load_state_dict(start)
    resumed_opt = ModelOptimizer(resumed, CFG, total_steps=12)
    resumed.load_state_dict(saved["model"])
    resumed_opt.load_state_dict(saved["opt"])
    _train(resumed, resumed_opt, range(5, 10), sampler)
    for (name, p), q in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize(
    ("name", "weight_decay"), [("adagrad", 0.0), ("adagrad", 1e-3), ("adam", 0.0)]
)
def test_only_adagrad_without_weight_decay_is_sliced(name: str, weight_decay: float) -> None:
    # Weight decay and Adam's moments move weights whose gradient is zero.
    model = NASRecModel(tiny_tables(), 4, SPACE)
    cfg = OptimizerConfig(name=name, weight_decay=weight_decay)
    assert ModelOptimizer(model, cfg, total_steps=5).sliced == (
        name == "adagrad" and not weight_decay
    )


def test_attention_on_views_equals_multihead_attention() -> None:
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    query = torch.randn(8, 5, 16, requires_grad=True)
    tokens = torch.randn(8, 11, 16, requires_grad=True)
    ours = multi_head_attention(query, tokens, attention)
    theirs, _ = attention(query, tokens, tokens, need_weights=False)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    grads = torch.autograd.grad(ours.square().sum(), [query, tokens, attention.in_proj_weight])
    ref = torch.autograd.grad(theirs.square().sum(), [query, tokens, attention.in_proj_weight])
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-5)
