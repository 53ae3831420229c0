"""Training: path sampling, schedule, the loop's progress, checkpoints and resume."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from helpers import random_batch, tiny_tables

from torchrec_nas import NASRecModel, SearchSpace
from torchrec_nas.models import build_baseline
from torchrec_nas.runtime import Trainer, standard_callbacks
from torchrec_nas.train.checkpoint import CheckpointError
from torchrec_nas.train.config import LoopConfig
from torchrec_nas.train.metrics import BinaryMetrics, evaluate
from torchrec_nas.train.optim import ModelOptimizer, OptimizerConfig, lr_factor
from torchrec_nas.train.resume import FileCheckpointer
from torchrec_nas.train.sampling import PathSampler

SPACE = SearchSpace.from_mapping(
    {"preset": "nasrec-full", "dense_dims": [16, 32], "sparse_tokens": [4, 8]}
)


def batches(n: int = 6) -> list:  # type: ignore[type-arg]
    return [random_batch(batch_size=32, seed=i) for i in range(n)]


def test_sampler_is_a_function_of_seed_and_step() -> None:
    a = PathSampler(SPACE, seed=5, warmup_steps=10)
    b = PathSampler(SPACE, seed=5, warmup_steps=10)
    assert [a(s) for s in range(30)] == [b(s) for s in range(30)]
    assert a(3) != PathSampler(SPACE, seed=6, warmup_steps=10)(3)
    assert a.full_probability(0) == 1.0 and a.full_probability(5) == 0.5 and a(50) == b(50)
    # At step 0 of the warm-up the largest path is trained: every block at its widest.
    assert all(blk.dense_dim == 32 for blk in a(0).blocks)


def test_cosine_schedule_with_warmup() -> None:
    cfg = OptimizerConfig(lr=1.0, warmup_fraction=0.1)
    assert lr_factor(0, 100, cfg) == pytest.approx(0.1)
    assert lr_factor(9, 100, cfg) == pytest.approx(1.0)
    assert lr_factor(55, 100, cfg) == pytest.approx(0.5, abs=0.02)
    assert lr_factor(99, 100, cfg) < 0.01


def test_embedding_tables_use_torchrec_fused_optimizer() -> None:
    model = NASRecModel(tiny_tables(), 4, SPACE)
    opt = ModelOptimizer(model, OptimizerConfig(), total_steps=10)
    assert opt.table_params and all(
        hasattr(p, "_in_backward_optimizers") for _, p in opt.table_params
    )
    table = opt.table_params[0][1]
    before = table.detach().clone()
    model(random_batch(), SPACE.sample(random.Random(0))).sum().backward()
    assert table.grad is None  # consumed by the in-backward update
    assert not torch.equal(table, before)


def tiny_dlrm() -> torch.nn.Module:
    return build_baseline(
        "dlrm", tiny_tables(), 4, dense_arch_layer_sizes=[16], over_arch_layer_sizes=[16]
    )


def frozen_loop(steps: int, patience: int, checkpoint_every: int) -> LoopConfig:
    """A loop whose tiny learning rate barely moves the loss: early stopping ends it."""
    return LoopConfig(
        steps=steps,
        optimizer=OptimizerConfig(lr=1e-9, sparse_lr=1e-9, schedule="constant"),
        eval_every=2,
        early_stopping_patience=patience,
        checkpoint_every=checkpoint_every,
        log_every=1,
        progress=False,
    )


def test_training_lowers_the_loss_on_a_learnable_batch() -> None:
    torch.manual_seed(0)
    model = tiny_dlrm()
    data = [random_batch(batch_size=64, seed=0)]
    before = evaluate(model, data).logloss
    cfg = LoopConfig(
        steps=60, optimizer=OptimizerConfig(lr=0.05), checkpoint_every=0, progress=False
    )
    Trainer(model, ModelOptimizer(model, cfg.optimizer, 60), cfg, lambda b, s: model(b)).fit(data)
    assert evaluate(model, data).logloss < before - 0.05


class Killed(Exception):
    pass


def train(
    model: torch.nn.Module,
    forward,  # type: ignore[no-untyped-def]
    cfg: LoopConfig,
    out: Path | None,
    desc: str = "supernet",
) -> None:
    """The Trainer as a stage drives it: checkpoints and a JSONL log under ``out``."""
    opt = ModelOptimizer(model, cfg.optimizer, cfg.total_steps(None))
    ckpt = FileCheckpointer(out / "checkpoint.pt") if out is not None else None
    callbacks = standard_callbacks(cfg, out, ckpt)
    Trainer(model, opt, cfg, forward, desc=desc, callbacks=callbacks).fit(batches())


def _supernet_run(out: Path | None, steps: int, die_after: int | None = None) -> NASRecModel:
    torch.manual_seed(0)
    model = NASRecModel(tiny_tables(), 4, SPACE)
    sampler = PathSampler(SPACE, seed=0, warmup_steps=4)

    def forward(batch, step):  # type: ignore[no-untyped-def]
        if die_after is not None and step >= die_after:
            raise Killed
        return model(batch, sampler(step))

    train(model, forward, LoopConfig(steps=steps, checkpoint_every=3, progress=False), out)
    return model


def test_killed_run_resumes_to_the_same_model(tmp_path: Path) -> None:
    reference = _supernet_run(None, steps=10)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        _supernet_run(out, steps=10, die_after=7)  # dies in step 8, after the checkpoint at 6
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 6 and ckpt["optimizer"]["sparse"]
    log = (out / "train_log.jsonl").read_text()
    resumed = _supernet_run(out, steps=10)  # a fresh model and optimizer, resumed from disk
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 10
    for (name, p), q in zip(resumed.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(p, q, msg=lambda m, n=name: f"{n}: {m}")
    assert (out / "train_log.jsonl").read_text().startswith(log)


def test_checkpoint_of_another_stage_is_refused(tmp_path: Path) -> None:
    _supernet_run(tmp_path, steps=3)
    model = NASRecModel(tiny_tables(), 4, SPACE)
    with pytest.raises(CheckpointError, match="checkpoint is of 'supernet'"):
        cfg = LoopConfig(steps=4, progress=False)
        train(model, lambda b, s: model(b, SPACE.largest()), cfg, tmp_path, desc="other")


def test_metrics_match_hand_computation() -> None:
    m = BinaryMetrics()
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    m.update(logits, labels)
    r = m.compute()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).item()
    assert r.logloss == pytest.approx(expected, rel=1e-5)
    assert r.auc == pytest.approx(0.5)  # positives ranked 1st and 4th of 4
    assert r.ne == pytest.approx(expected / 0.6931, rel=1e-3)


def test_early_stopping_ends_the_run_and_a_rerun_keeps_it_ended(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny_dlrm()
    cfg = frozen_loop(40, patience=1, checkpoint_every=0)  # stops at the second validation
    val = [random_batch(batch_size=32, seed=100)]

    def fit() -> int:
        opt = ModelOptimizer(model, cfg.optimizer, 40)
        ckpt = FileCheckpointer(tmp_path / "checkpoint.pt")
        trainer = Trainer(
            model,
            opt,
            cfg,
            lambda b, s: model(b),
            model,
            "t",
            standard_callbacks(cfg, tmp_path, ckpt),
        )
        result = trainer.fit(batches(), val)
        assert result.stopped_early
        return result.steps

    steps = fit()
    assert steps < 40
    assert fit() == steps  # resumed from the final checkpoint: no more training


def test_a_killed_run_with_early_stopping_stops_where_an_uninterrupted_one_does(
    tmp_path: Path,
) -> None:
    # Early stopping's best logloss and count of bad validations are part of the checkpoint:
    # restarted from zero, the resumed run would stop validations later.
    def fit(out: Path, die_after: int | None = None) -> int:
        torch.manual_seed(0)
        model = tiny_dlrm()
        cfg = frozen_loop(60, patience=3, checkpoint_every=4)

        def forward(batch, step):  # type: ignore[no-untyped-def]
            if die_after is not None and step >= die_after:
                raise Killed
            return model(batch)

        opt = ModelOptimizer(model, cfg.optimizer, 60)
        callbacks = standard_callbacks(cfg, out, FileCheckpointer(out / "checkpoint.pt"))
        trainer = Trainer(model, opt, cfg, forward, model, "t", callbacks)
        result = trainer.fit(batches(), [random_batch(batch_size=32, seed=100)])
        assert result.stopped_early
        return result.steps

    steps = fit(tmp_path / "whole")
    assert steps < 60
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        fit(out, die_after=steps - 2)
    saved = torch.load(out / "checkpoint.pt", weights_only=False)
    assert saved["bad_validations"] >= 1 and saved["step"] < steps
    assert fit(out) == steps


def test_tensorboard_is_skipped_cleanly_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchrec_nas.runtime import TensorBoard

    cfg = LoopConfig(steps=2, tensorboard=True, progress=False)
    monkeypatch.setattr(TensorBoard, "available", staticmethod(lambda: False))
    assert not any(isinstance(c, TensorBoard) for c in standard_callbacks(cfg, tmp_path, None))
    monkeypatch.setattr(TensorBoard, "available", staticmethod(lambda: True))
    assert any(isinstance(c, TensorBoard) for c in standard_callbacks(cfg, tmp_path, None))


def test_early_stopping_waits_for_its_minimum_share_of_the_steps() -> None:
    from torchrec_nas.runtime.callbacks import EarlyStopping
    from torchrec_nas.runtime.trainer import TrainState
    from torchrec_nas.train.metrics import EvalResult

    def run(min_fraction: float) -> int | None:
        # The loss is best at the first validation and worse after (a warm-up peak).
        stop = EarlyStopping(patience=2, min_fraction=min_fraction)
        state = TrainState(desc="t", total=100)
        for step, loss in zip(range(10, 100, 10), [0.5, 0.6, 0.7, 0.6, 0.55, 0.6, 0.7, 0.8, 0.9]):
            state.step = step
            state.val = EvalResult(logloss=loss, auc=0.5, ne=1.0, ctr=0.25, rows=10)
            stop.on_validation(state)
            if state.should_stop:
                return step
        return None

    assert run(0.0) == 30
    assert run(0.5) == 50  # patience long spent, but not before half the steps
    with pytest.raises(ValueError, match="early_stopping_min_fraction"):
        LoopConfig(early_stopping_min_fraction=1.0).validate()


def test_a_bad_early_stopping_min_fraction_is_one_config_error(tmp_path: Path) -> None:
    from torchrec_nas.config import Config
    from torchrec_nas.config_utils import ConfigError

    for section, field in (
        ("bench", "ranking_min_fraction"),
        ("train", "early_stopping_min_fraction"),
    ):
        path = tmp_path / "bad.yaml"
        path.write_text(f"{section}:\n  {field}: 1.5\n")
        with pytest.raises(ConfigError, match=f"{field} must be in \\[0, 1\\), got 1.5"):
            Config.load(path)


def test_an_early_stop_does_not_validate_the_same_step_twice() -> None:
    """The validation that stops a run is its last: the weights it measured are not measured
    again (once per validation step, and the early-stop line is logged once)."""
    from torchrec_nas.runtime.callbacks import Callback, EarlyStopping

    class Steps(Callback):
        def __init__(self) -> None:
            self.seen: list[int] = []

        def on_validation(self, state) -> None:  # type: ignore[no-untyped-def]
            self.seen.append(state.step)

    torch.manual_seed(0)
    model = tiny_dlrm()
    cfg = frozen_loop(40, patience=1, checkpoint_every=0)
    seen = Steps()
    trainer = Trainer(
        model,
        ModelOptimizer(model, cfg.optimizer, 40),
        cfg,
        lambda b, s: model(b),
        model,
        "t",
        [EarlyStopping(1), seen],
    )
    result = trainer.fit(batches(), [random_batch(batch_size=32, seed=100)])
    assert result.stopped_early and result.steps < 40
    assert seen.seen == list(range(2, result.steps + 1, 2))  # each validation step once
