"""Candidate scoring: the exact classifier fit, its evaluator, and its config."""

from __future__ import annotations

import dataclasses
import random
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchrec.datasets.utils import Batch

from tests.helpers import random_batch, tiny_tables
from torchrec_nas import SearchSpace
from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.models import NASRecModel
from torchrec_nas.search.config import FinetuneConfig
from torchrec_nas.search.evaluator import SupernetEvaluator
from torchrec_nas.search.probe import fit_logistic


def logistic_problem(n: int = 600, d: int = 10, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    true_w = torch.randn(d, generator=g)
    y = (torch.rand(n, generator=g) < torch.sigmoid(x @ true_w - 0.5)).float()
    w0 = 0.1 * torch.randn(1, d, generator=g)
    return x, y, w0, torch.zeros(1)


def lbfgs_reference(
    x: torch.Tensor, y: torch.Tensor, w0: torch.Tensor, l2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same objective minimized by plain torch L-BFGS in float64, to convergence."""
    x64, y64, c = x.double(), y.double(), w0.double().reshape(-1)
    w = c.clone().requires_grad_(True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], max_iter=2000, tolerance_grad=1e-12, tolerance_change=0,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x64 @ w + b, y64)
        loss = loss + 0.5 * l2 * ((w - c) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


@pytest.mark.parametrize(("method", "rows"), [("newton", 600), ("newton", 9000), ("lbfgs", 600)])
def test_exact_fit_equals_the_lbfgs_optimum(method: str, rows: int) -> None:
    """Also where Newton's Hessian is estimated on a subsample of the rows (9,000)."""
    x, y, w0, b0 = logistic_problem(n=rows)
    ref_w, ref_b = lbfgs_reference(x, y, w0, l2=1e-3)
    w, b = fit_logistic(x, y, w0, b0, l2=1e-3, method=method)
    assert w.shape == (1, 10) and b.shape == (1,) and w.dtype == torch.float32
    assert torch.allclose(w.double().reshape(-1), ref_w, atol=1e-4)
    assert torch.allclose(b.double(), ref_b, atol=1e-4)
    # It moved: the start is far from the optimum.
    assert (w - w0).abs().max() > 0.1


def test_newton_on_two_ranks_equals_one_process() -> None:
    """Two ranks, each holding half the rows, average their statistics through ``reduce``
    (as ``all_reduce_mean`` does) and end with the weights one process gets on all rows."""
    x, y, w0, b0 = logistic_problem(n=800)
    whole = fit_logistic(x, y, w0, b0, l2=1e-3)
    barrier = threading.Barrier(2)
    slots: list[list[torch.Tensor]] = [[], []]
    results: list[tuple[torch.Tensor, torch.Tensor] | None] = [None, None]
    calls = [0, 0]

    def run(rank: int) -> None:
        def reduce(tensors: list[torch.Tensor]) -> None:
            calls[rank] += 1
            slots[rank] = [t.clone() for t in tensors]
            barrier.wait()
            means = [(a + b) / 2 for a, b in zip(*slots)]
            barrier.wait()
            for t, m in zip(tensors, means):
                t.copy_(m)

        rows = slice(rank * 400, (rank + 1) * 400)
        results[rank] = fit_logistic(x[rows], y[rows], w0, b0, l2=1e-3, reduce=reduce)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    first, second = results
    assert first is not None and second is not None and calls[0] == calls[1] > 2
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.allclose(first[0], whole[0], atol=1e-5)
    assert torch.allclose(first[1], whole[1], atol=1e-5)


def tiny_supernet(batches: int = 12, rows: int = 128) -> tuple[NASRecModel, list, list]:
    """A small untrained supernet, and train/validation batches whose label follows their
    first dense feature."""
    torch.manual_seed(0)
    space = dataclasses.replace(
        SearchSpace.preset("nasrec-full"), dense_dims=[8, 16], sparse_tokens=[2, 4]
    )
    model = NASRecModel(tiny_tables(dim=space.embedding_dim), 4, space, norm_gain_init=1.0)
    model.eval()

    def planted(seed: int) -> Batch:
        batch = random_batch(rows, seed=seed)
        noise = torch.randn(rows, generator=torch.Generator().manual_seed(seed))
        labels = (batch.dense_features[:, 0] + 2.0 * noise > 0).float()
        return Batch(batch.dense_features, batch.sparse_features, labels)

    train = [planted(i) for i in range(batches)]
    return model, train, [planted(100 + i) for i in range(4)]


def test_scores_do_not_depend_on_order_or_restart() -> None:
    model, train, val = tiny_supernet()
    archs = [model.space.sample(random.Random(i)) for i in range(3)]
    cfg = FinetuneConfig(fit_batches=5, eval_batches=None)
    forward = SupernetEvaluator(model, train, val, cfg, seed=3)
    first = [forward(a) for a in archs]
    backward = SupernetEvaluator(model, train, val, cfg, seed=3)
    second = [backward(a) for a in reversed(archs)][::-1]
    assert first == second
    assert first[0]["rows"] == 4 * 128  # eval_batches null: the whole validation split
    assert len({s["logloss"] for s in first}) == 3
    other = SupernetEvaluator(model, train, val, cfg, seed=4)
    assert other.fit_indices() != forward.fit_indices()
    assert forward.cache_bytes() == sum(
        t.numel() * 4
        for t in forward._fit_cache[0]  # type: ignore[index]
    ) * (5 + 4)


def test_fast_score_is_the_limit_of_long_sgd_fine_tuning() -> None:
    """Scored on the rows it is fitted on, the exact fit is what step-by-step fine-tuning
    approaches: many Adagrad steps from the supernet's classifier come close to its logloss,
    from above."""
    model, train, _ = tiny_supernet(batches=8, rows=512)
    arch = model.space.sample(random.Random(6))
    fast = SupernetEvaluator(model, train, train, FinetuneConfig(fit_batches=8, l2=0.0))(arch)
    sgd = FinetuneConfig(method="sgd", steps=300, lr=0.1)
    slow = SupernetEvaluator(model, train, train, sgd)(arch)
    start = SupernetEvaluator(model, train, train, dataclasses.replace(sgd, steps=0))(arch)
    assert fast["logloss"] <= slow["logloss"] < start["logloss"]
    # Adagrad at a fixed rate stalls a little above the optimum; the gap is small.
    assert slow["logloss"] - fast["logloss"] < 0.15 * (start["logloss"] - fast["logloss"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "adam"),
        ("steps", -1),
        ("lr", 0.0),
        ("fit_batches", 0),
        ("l2", -1e-3),
        ("max_iter", 0),
        ("eval_batches", 0),
    ],
)
def test_bad_finetune_settings_name_their_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(FinetuneConfig(), **{field: value}).validate()
    FinetuneConfig().validate()


def test_a_bad_method_in_yaml_names_its_section(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: {finetune: {method: adam}}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: search.finetune: method must be one of"):
        Config.load(bad)
