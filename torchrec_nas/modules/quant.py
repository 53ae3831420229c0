"""Fake quantization with a straight-through estimator, for bit-width search and fine-tuning.

The forward pass rounds values to a ``bits``-wide integer grid and scales them back, so the
model sees the error the PIM hardware would make; the backward pass treats the rounding as the
identity (straight-through estimator), so gradients flow unchanged to values inside the clip
range and are zero for values that were clipped.

:func:`fake_quantize` has the ``quantize(tensor, bits)`` signature the supernet expects
(``bits=None`` is full precision), so it can be passed as the supernet's ``quantize`` argument.
Weights use a per-tensor (or per-channel) max-abs scale. Activations in a model go through an
:class:`ActivationQuantizer`, whose running range makes eval-mode results independent of the
batch.

Example::

    w = torch.randn(16, 8, requires_grad=True)
    w_q = fake_quantize(w, bits=4)  # at most 15 distinct values
    w_q.sum().backward()  # w.grad is all ones: straight through
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_EPS = 1e-12


@dataclass(frozen=True)
class QuantSpec:
    """Bit widths of one block (or model): ``None`` means full precision.

    Args:
        weight_bits: bits per stored weight.
        activation_bits: bits per input activation.

    Example::

        QuantSpec(weight_bits=4, activation_bits=8)
        QuantSpec.uniform(8)
    """

    weight_bits: int | None = None
    activation_bits: int | None = None

    def __post_init__(self) -> None:
        for name in ("weight_bits", "activation_bits"):
            bits = getattr(self, name)
            if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int)):
                raise ValueError(f"{name}: expected an integer or None, got {bits!r}")
            if bits is not None and not 2 <= bits <= 32:
                raise ValueError(f"{name}: must be between 2 and 32, got {bits}")

    @staticmethod
    def uniform(bits: int | None) -> QuantSpec:
        return QuantSpec(weight_bits=bits, activation_bits=bits)

    @property
    def is_full_precision(self) -> bool:
        return self.weight_bits is None and self.activation_bits is None


def quantization_levels(bits: int, symmetric: bool = True) -> int:
    """Distinct values a ``bits``-wide grid has: ``2^bits - 1`` symmetric, ``2^bits`` otherwise."""
    return 2**bits - 1 if symmetric else 2**bits


def _reduce_dims(x: torch.Tensor, per_channel_dim: int | None) -> tuple[int, ...]:
    if per_channel_dim is None:
        return tuple(range(x.dim()))
    keep = per_channel_dim % x.dim()
    return tuple(d for d in range(x.dim()) if d != keep)


def max_abs_scale(x: torch.Tensor, bits: int, per_channel_dim: int | None = None) -> torch.Tensor:
    """Symmetric step size ``max|x| / (2^(bits-1) - 1)``, per tensor or per channel (no grad)."""
    with torch.no_grad():
        dims = _reduce_dims(x, per_channel_dim)
        max_abs = x.abs().amax(dim=dims, keepdim=True) if x.dim() > 0 else x.abs()
        return max_abs.clamp_min(_EPS) / (2 ** (bits - 1) - 1)


def _straight_through(
    x: torch.Tensor, low: torch.Tensor, high: torch.Tensor, q: torch.Tensor
) -> torch.Tensor:
    # Forward: q. Backward: the upstream gradient where x was inside [low, high] (the
    # rounding counts as the identity), zero where x was clipped.
    inside = (x >= low) & (x <= high)
    passthrough = torch.where(inside, x, x.detach())
    return q + (passthrough - passthrough.detach())


def fake_quantize(
    x: torch.Tensor,
    bits: int | None,
    symmetric: bool = True,
    per_channel_dim: int | None = None,
    max_abs: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Rounds ``x`` to a ``bits``-wide grid in the forward pass, identity gradient in the backward.

    Args:
        x: weights or activations.
        bits: bit width; ``None`` returns ``x`` unchanged.
        symmetric: a grid symmetric around 0 with ``2^bits - 1`` levels (scale ``max|x| /
            (2^(bits-1) - 1)``); otherwise an affine grid over ``[min, max]`` with ``2^bits``
            levels.
        per_channel_dim: compute the range per slice along this dimension (for example 0 for
            the output channels of a weight) instead of per tensor.
        max_abs: a clip value to use instead of the tensor's own max-abs (symmetric only), for
            example a running maximum of activations; values beyond it are clipped and get no
            gradient.

    Returns:
        A tensor of ``x``'s shape and dtype.

    Example::

        fake_quantize(torch.tensor([-1.0, 0.1, 0.5, 1.0]), bits=2)  # [-1, 0, 1, 1]
    """
    if bits is None:
        return x
    if symmetric:
        if bits < 2:
            raise ValueError(f"bits: a symmetric grid needs at least 2 bits, got {bits}")
        qmax = 2 ** (bits - 1) - 1
        with torch.no_grad():
            if max_abs is None:
                dims = _reduce_dims(x, per_channel_dim)
                limit = x.abs().amax(dim=dims, keepdim=True) if x.dim() > 0 else x.abs()
            else:
                limit = torch.as_tensor(max_abs, dtype=x.dtype, device=x.device)
            limit = limit.clamp_min(_EPS)
            scale = limit / qmax
            q = torch.clamp(torch.round(x / scale), -qmax, qmax) * scale
        return _straight_through(x, -limit, limit, q)
    if bits < 1:
        raise ValueError(f"bits: must be at least 1, got {bits}")
    with torch.no_grad():
        dims = _reduce_dims(x, per_channel_dim)
        low = x.amin(dim=dims, keepdim=True)
        high = x.amax(dim=dims, keepdim=True)
        scale = (high - low).clamp_min(_EPS) / (2**bits - 1)
        q = torch.round((x - low) / scale).clamp(0, 2**bits - 1) * scale + low
    return _straight_through(x, low, high, q)


def quantize_weight(weight: torch.Tensor, bits: int | None) -> torch.Tensor:
    """Symmetric per-tensor fake quantization of a weight (the crossbar stores one grid)."""
    return fake_quantize(weight, bits, symmetric=True)


class ActivationQuantizer(nn.Module):
    """Fake-quantizes activations with a running max-abs clip value.

    In training, values are clipped at the batch max-abs and the stored clip value follows its
    exponential moving average; in eval mode the stored value is used, so a deployed model has a
    fixed input range as the PIM DACs do, and a row's result does not depend on the other rows
    of its batch. A quantizer that never saw a training batch uses each row's own max-abs.

    Args:
        bits: default bit width (``None``: full precision); ``forward`` can override it, as the
            supernet does per block.
        momentum: weight of the newest batch in the moving average.

    Example::

        quantizer = ActivationQuantizer(bits=8)
        y = quantizer(torch.randn(32, 64))
        y4 = quantizer(torch.randn(32, 64), bits=4)
    """

    running_max_abs: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, bits: int | None = 8, momentum: float = 0.1) -> None:
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum: must be in (0, 1], got {momentum}")
        self.bits = bits
        self.momentum = momentum
        self.register_buffer("running_max_abs", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor, bits: int | None = None) -> torch.Tensor:
        bits = self.bits if bits is None else bits
        if bits is None:
            return x
        if self.training:
            batch_max = x.detach().abs().amax() if x.numel() else x.new_zeros(())
            with torch.no_grad():
                if bool(self.initialized):
                    self.running_max_abs.lerp_(batch_max.to(self.running_max_abs), self.momentum)
                else:
                    self.running_max_abs.copy_(batch_max)
                    self.initialized.fill_(True)
            return fake_quantize(x, bits, symmetric=True, max_abs=batch_max)
        if bool(self.initialized):
            return fake_quantize(x, bits, symmetric=True, max_abs=self.running_max_abs)
        # Never trained: each row's own range, so that no row depends on the others.
        return fake_quantize(x, bits, symmetric=True, per_channel_dim=0)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, momentum={self.momentum}"
