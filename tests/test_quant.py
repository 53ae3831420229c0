"""Fake quantization with a straight-through estimator."""

from __future__ import annotations

import random

import pytest
import torch
from helpers import random_batch, tiny_tables
from torchrec.datasets.utils import Batch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from torchrec_nas import NASRecModel, SearchSpace
from torchrec_nas.modules.quant import (
    ActivationQuantizer,
    QuantSpec,
    fake_quantize,
    quantization_levels,
    quantize_weight,
)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_symmetric_values_snap_to_levels(bits: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(4096) * 3
    q = fake_quantize(x, bits)
    levels = torch.unique(q)
    assert len(levels) <= quantization_levels(bits) == 2**bits - 1
    # Every value is an integer multiple of the step max|x| / (2^(bits-1) - 1).
    step = x.abs().max() / (2 ** (bits - 1) - 1)
    assert torch.allclose(q / step, torch.round(q / step), atol=1e-4)
    assert q.abs().max() <= x.abs().max() + 1e-6


def test_two_bits_by_hand() -> None:
    # 2 bits symmetric: levels {-1, 0, 1} x max|x|.
    x = torch.tensor([-1.0, -0.4, 0.1, 0.6, 1.0])
    assert fake_quantize(x, 2).tolist() == [-1.0, 0.0, 0.0, 1.0, 1.0]


def test_asymmetric_has_two_to_the_bits_levels() -> None:
    x = torch.linspace(-0.3, 2.0, 1000)
    q = fake_quantize(x, 3, symmetric=False)
    assert len(torch.unique(q)) == quantization_levels(3, symmetric=False) == 8
    assert q.min() == pytest.approx(-0.3) and q.max() == pytest.approx(2.0)


def test_none_is_identity() -> None:
    x = torch.randn(3, 3, requires_grad=True)
    assert fake_quantize(x, None) is x
    assert ActivationQuantizer(bits=None)(x) is x


def test_ste_gradient_equals_upstream_inside_range() -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 8, requires_grad=True)
    upstream = torch.randn(64, 8)
    fake_quantize(x, 4).backward(upstream)
    assert x.grad is not None
    assert torch.equal(x.grad, upstream)


def test_clipped_values_get_no_gradient() -> None:
    x = torch.tensor([-3.0, -0.5, 0.2, 0.9, 2.5], requires_grad=True)
    q = fake_quantize(x, 4, max_abs=1.0)
    assert q.detach().abs().max() <= 1.0 + 1e-6
    q.sum().backward()
    assert x.grad is not None
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_eight_bit_error_is_small() -> None:
    torch.manual_seed(2)
    x = torch.randn(10_000)
    q = fake_quantize(x, 8)
    step = x.abs().max() / 127
    assert (q - x).abs().max() <= step / 2 + 1e-6
    relative = ((q - x).norm() / x.norm()).item()
    assert relative < 0.02


def test_per_channel_scale() -> None:
    w = torch.stack([torch.linspace(-1, 1, 50), torch.linspace(-100, 100, 50)])
    per_channel = fake_quantize(w, 4, per_channel_dim=0)
    per_tensor = quantize_weight(w, 4)
    # The small row keeps its resolution only with a scale of its own.
    assert len(torch.unique(per_channel[0])) > 3
    assert len(torch.unique(per_tensor[0])) == 1
    assert (per_channel[0] - w[0]).abs().max() <= 1 / 7 / 2 + 1e-6


def test_activation_quantizer_running_max() -> None:
    quantizer = ActivationQuantizer(bits=8, momentum=0.5)
    quantizer.train()
    quantizer(torch.full((4,), 2.0))
    assert quantizer.running_max_abs.item() == pytest.approx(2.0)
    quantizer(torch.full((4,), 4.0))
    assert quantizer.running_max_abs.item() == pytest.approx(3.0)
    quantizer.eval()
    y = quantizer(torch.tensor([10.0, -10.0, 1.5]))
    assert y[0].item() == pytest.approx(3.0) and y[1].item() == pytest.approx(-3.0)
    assert quantizer(torch.ones(2), bits=4).shape == (2,)
    state = quantizer.state_dict()
    assert set(state) == {"running_max_abs", "initialized"}


def test_quant_spec() -> None:
    assert QuantSpec().is_full_precision
    assert QuantSpec.uniform(8) == QuantSpec(8, 8)
    with pytest.raises(ValueError, match="weight_bits"):
        QuantSpec(weight_bits=1)
    with pytest.raises(ValueError, match="activation_bits"):
        QuantSpec(activation_bits="8")  # type: ignore[arg-type]
    with pytest.raises(dataclasses_frozen_error()):
        QuantSpec(4, 4).weight_bits = 8  # type: ignore[misc]


def dataclasses_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_eval_quantizer_is_independent_of_the_batch() -> None:
    torch.manual_seed(3)
    quantizer = ActivationQuantizer(bits=4).eval()
    batch = torch.randn(6, 10) * torch.arange(1, 7).unsqueeze(1)
    # Never trained: each row's own range.
    assert torch.equal(quantizer(batch)[:1], quantizer(batch[:1]))
    quantizer.train()(batch)
    quantizer.eval()
    assert torch.equal(quantizer(batch)[2:3], quantizer(batch[2:3]))


def _first_row(kjt: KeyedJaggedTensor) -> KeyedJaggedTensor:
    values, lengths = [], []
    for key in kjt.keys():
        jt = kjt[key]
        values.append(jt.values()[: int(jt.lengths()[0])])
        lengths.append(jt.lengths()[:1])
    return KeyedJaggedTensor.from_lengths_sync(
        keys=kjt.keys(), values=torch.cat(values), lengths=torch.cat(lengths)
    )


@pytest.mark.parametrize("train_steps", [0, 2])
def test_eval_logits_of_a_row_do_not_depend_on_its_batch(train_steps: int) -> None:
    torch.manual_seed(0)
    space = SearchSpace.from_mapping(
        {
            "preset": "nasrec-full",
            "dense_dims": [16, 32],
            "sparse_tokens": [4, 8],
            "bit_choices": [4, 8],
        }
    )
    model = NASRecModel(tiny_tables(), 4, space)
    arch = space.sample(random.Random(5))
    for step in range(train_steps):
        model.train()(random_batch(seed=step), arch).sum().backward()
    model.eval()
    batch = random_batch(batch_size=8, seed=9)
    first = Batch(batch.dense_features[:1], _first_row(batch.sparse_features), batch.labels[:1])
    with torch.no_grad():
        together = model(batch, arch)[:1]
        alone = model(first, arch)
        subnet = model.materialize(arch).eval()
        torch.testing.assert_close(subnet(first), alone, rtol=0, atol=1e-6)
    # Up to float rounding of batched matrix products; a batch-wide range moved it by ~1e-4.
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)
