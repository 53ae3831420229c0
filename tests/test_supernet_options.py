"""Supernet training options: the budget, the sandwich rule with distillation, fair operator
sampling and a longer warm-up; each a function of (seed, step), resumable, one update a step."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import random_batch, tiny_tables

from torchrec_nas import NASRecModel, SearchSpace
from torchrec_nas.config import Config, SupernetConfig
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.runtime import Trainer, standard_callbacks
from torchrec_nas.stages.supernet import sandwich_loss
from torchrec_nas.train.optim import ModelOptimizer
from torchrec_nas.train.resume import FileCheckpointer
from torchrec_nas.train.sampling import PathSampler, smallest_path

SPACE = SearchSpace.from_mapping(
    {"preset": "nasrec-full", "dense_dims": [16, 32], "sparse_tokens": [4, 8]}
)


def test_budget_follows_the_data_unless_steps_or_epochs_are_set() -> None:
    assert SupernetConfig(min_steps=100).total_steps(312) == 312  # one pass
    assert SupernetConfig(min_steps=500).total_steps(8) == 500  # a small table: the floor
    assert SupernetConfig(epochs=2).total_steps(312) == 624
    assert SupernetConfig(steps=7, epochs=2).total_steps(312) == 7
    assert Config.from_dict({"supernet": {"epochs": 3}}).supernet.total_steps(10) == 30
    with pytest.raises(ValueError, match="supernet.steps"):
        SupernetConfig().total_steps(None)
    with pytest.raises(ConfigError, match="epochs must be positive"):
        Config.from_dict({"supernet": {"epochs": 0}})
    with pytest.raises(ConfigError, match="distill needs sandwich"):
        Config.from_dict({"supernet": {"distill": True}})
    with pytest.raises(ConfigError, match="min_steps"):
        Config.from_dict({"supernet": {"min_steps": 0}})


@pytest.mark.parametrize("fair", [False, True], ids=["uniform", "fair"])
def test_sandwich_paths_are_a_function_of_seed_and_step(fair: bool) -> None:
    a = PathSampler(SPACE, seed=5, warmup_steps=4, sandwich=True, fair_operators=fair)
    b = PathSampler(SPACE, seed=5, warmup_steps=4, sandwich=True, fair_operators=fair)
    assert [a.paths(s) for s in range(12)] == [b.paths(s) for s in range(12)]
    other = PathSampler(SPACE, seed=6, warmup_steps=4, sandwich=True, fair_operators=fair)
    assert a.paths(3) != other.paths(3)
    largest, smallest, *rest = a.paths(7)
    assert len(rest) == 2 and a.paths_per_step == 4
    assert all(blk.dense_dim == 32 and blk.sparse_tokens == 8 for blk in largest.blocks)
    assert all(blk.dense_dim == 16 and blk.sparse_tokens == 4 for blk in smallest.blocks)
    assert all(len(blk.dense_inputs) == len(blk.sparse_inputs) == 1 for blk in smallest.blocks)
    assert not any(blk.dense_to_sparse or blk.sparse_to_dense for blk in smallest.blocks)
    for arch in (largest, smallest, *rest):
        SPACE.validate(arch)


def test_smallest_path_is_minimal_in_every_block() -> None:
    arch = smallest_path(SPACE, random.Random(0))
    assert [b.dense_dim for b in arch.blocks] == [16] * SPACE.num_blocks


@pytest.mark.parametrize("sandwich", [False, True], ids=["single", "sandwich"])
def test_fair_sampling_trains_every_operator_equally_often(sandwich: bool) -> None:
    sampler = PathSampler(SPACE, seed=3, sandwich=sandwich, fair_operators=True)
    # 12 draws a block: 3 rounds of the 4 dense operators, 6 of the 2 sparse ones.
    steps = 12 // sampler.paths_per_step
    archs = [a for s in range(steps) for a in sampler.paths(s)]
    assert len(archs) == 12
    for i in range(SPACE.num_blocks):
        dense = Counter(a.blocks[i].dense_op for a in archs)
        sparse = Counter(a.blocks[i].sparse_op for a in archs)
        assert dense == {op: 3 for op in SPACE.dense_ops}, (i, dense)
        assert sparse == {op: 6 for op in SPACE.sparse_ops}, (i, sparse)
    # Uniform sampling is not balanced like this (same seed, same draws).
    uniform = PathSampler(SPACE, seed=3, sandwich=sandwich)
    drawn = [a for s in range(steps) for a in uniform.paths(s)]
    counts = [Counter(a.blocks[i].dense_op for a in drawn) for i in range(SPACE.num_blocks)]
    assert any(c != {op: 3 for op in SPACE.dense_ops} for c in counts)


def test_a_longer_warmup_holds_the_largest_path() -> None:
    linear = PathSampler(SPACE, warmup_steps=10, warmup_prob=0.5)
    constant = PathSampler(SPACE, warmup_steps=10, warmup_prob=0.5, warmup_schedule="constant")
    assert linear.full_probability(8) == pytest.approx(0.1)
    assert constant.full_probability(8) == 0.5 and constant.full_probability(10) == 0.0
    cfg = Config.from_dict({"supernet": {"path_warmup_schedule": "constant"}})
    assert cfg.supernet.path_warmup_schedule == "constant"


def test_distillation_targets_mix_the_label_with_the_largest_path() -> None:
    torch.manual_seed(0)
    model = NASRecModel(tiny_tables(), 4, SPACE)
    batch = random_batch(batch_size=16)
    archs = PathSampler(SPACE, sandwich=True, sandwich_random=1).paths(0)
    sc = SupernetConfig(sandwich=True, sandwich_random=1, distill=True, distill_weight=0.25)
    with torch.no_grad():
        got = sandwich_loss(model, batch, archs, sc)
        teacher = model(batch, archs[0])
        target = 0.75 * batch.labels + 0.25 * torch.sigmoid(teacher)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        want = bce(teacher, batch.labels) + sum(bce(model(batch, a), target) for a in archs[1:])
        plain = sandwich_loss(model, batch, archs, SupernetConfig(sandwich=True))
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, plain)


def _sandwich_run(
    out: Path | None, steps: int, die_after: int | None = None
) -> tuple[NASRecModel, Counter[str]]:
    torch.manual_seed(0)
    model = NASRecModel(tiny_tables(), 4, SPACE)
    sc = SupernetConfig(
        steps=steps, checkpoint_every=3, progress=False, sandwich=True, distill=True
    )
    sampler = PathSampler(SPACE, seed=0, warmup_steps=4, sandwich=True, fair_operators=True)
    opt = ModelOptimizer(model, sc.optimizer, steps)
    updates: Counter[str] = Counter()
    for name, table_opt in opt.table_optimizers().items():
        step = table_opt.step

        def counted(*args, _step=step, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            updates[_name] += 1
            return _step(*args, **kwargs)

        table_opt.step = counted  # type: ignore[method-assign]

    def loss(batch, step):  # type: ignore[no-untyped-def]
        if die_after is not None and step >= die_after:
            raise KeyboardInterrupt
        return sandwich_loss(model, batch, sampler.paths(step), sc)

    def forbidden(batch, step):  # type: ignore[no-untyped-def]
        raise AssertionError("train_forward is not called when train_loss is given")

    ckpt = FileCheckpointer(out / "checkpoint.pt") if out is not None else None
    callbacks = standard_callbacks(sc, out, ckpt)
    batches = [random_batch(batch_size=32, seed=i) for i in range(6)]
    eval_forward = lambda b: model(b, SPACE.largest())  # noqa: E731
    trainer = Trainer(model, opt, sc, forbidden, eval_forward, "supernet", callbacks, None, loss)
    trainer.fit(batches, batches[:1])
    return model, updates


def test_a_sandwich_step_updates_each_table_once() -> None:
    _, updates = _sandwich_run(None, steps=5)
    assert updates and set(updates.values()) == {5}  # 4 paths a step, one update a step


def test_a_resumed_sandwich_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    reference, _ = _sandwich_run(None, steps=10)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _sandwich_run(out, steps=10, die_after=7)  # dies in step 8, after the checkpoint at 6
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 6
    resumed, updates = _sandwich_run(out, steps=10)
    assert set(updates.values()) == {4}  # steps 7 to 10 only
    for (name, p), q in zip(resumed.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(p, q, msg=lambda m, n=name: f"{n}: {m}")
