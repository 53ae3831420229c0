"""Elastic layers: a layer owns its largest weights and is told which part is active."""

from __future__ import annotations

import math

import torch
from torch import nn


class ElasticLinear(nn.Module):
    """A linear layer built at its largest size whose subnets use a subset of it.

    A subnet uses the first ``out_features`` rows (once-for-all width sharing) and the input
    columns it is given: either a prefix of ``in_prefix`` columns, or an index of columns chosen
    by the caller (for inputs laid out in slots, see :mod:`torchrec_nas.modules.layout`).

    Args:
        in_features: the largest number of input columns.
        out_features: the largest number of outputs.
        bias: whether the layer has a bias.
        fan_in: the fan-in used to initialize weights (defaults to ``in_features``); a layer
            over many slots of which a subnet uses a few is initialized for a typical subnet.

    Example::

        layer = ElasticLinear(in_features=64, out_features=32)
        w, b = layer.sliced(out_features=16, in_prefix=8)   # w: [16, 8], b: [16]
        y = torch.nn.functional.linear(torch.randn(4, 8), w, b)
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, fan_in: int | None = None
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias: nn.Parameter | None = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters(fan_in or in_features)

    def reset_parameters(self, fan_in: int) -> None:
        bound = 1.0 / math.sqrt(max(1, fan_in))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def sliced(
        self,
        out_features: int,
        cols: torch.Tensor | None = None,
        in_prefix: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The active weight ``[out_features, len(cols) or in_prefix]`` and bias, as views or
        gathers of the full parameters (gradients flow back into them).

        Args:
            out_features: active rows (a prefix).
            cols: active input columns, in the order the input is concatenated.
            in_prefix: active input columns as a prefix (when ``cols`` is ``None``).
        """
        if out_features > self.out_features:
            raise ValueError(f"{out_features} outputs requested of a layer of {self.out_features}")
        w = self.weight[:out_features]
        if cols is not None:
            w = w.index_select(1, cols.to(w.device))
        elif in_prefix is not None:
            w = w[:, :in_prefix]
        b = self.bias[:out_features] if self.bias is not None else None
        return w, b

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class ElasticLayerNorm(nn.Module):
    """LayerNorm over a variable width: a subnet of width ``k`` uses the first ``k`` affine
    parameters.

    Args:
        max_features: the largest width.
        eps: the LayerNorm epsilon.
        gain_init: initial value of the affine gain.

    Example::

        norm = ElasticLayerNorm(1024)
        w, b = norm.sliced(256)
        y = torch.nn.functional.layer_norm(torch.randn(4, 256), (256,), w, b)
    """

    def __init__(self, max_features: int, eps: float = 1e-5, gain_init: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.full((max_features,), gain_init))
        self.bias = nn.Parameter(torch.zeros(max_features))

    def sliced(self, features: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight[:features], self.bias[:features]
