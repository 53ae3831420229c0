"""Elastic layers: a layer owns its largest weights and is told which part is active.

Every slice of an elastic weight is taken with :func:`take`, which records on the parameter
the block it handed out while gradients are on (:func:`used_regions`), so that the optimizer
can update only what a step's subnet touched (see :class:`torchrec_nas.train.optim.ModelOptimizer`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: A selector along one axis: ``None`` (all), an ``int`` (a prefix) or a ``LongTensor`` index.
Selector = int | torch.Tensor | None

#: The ``(rows, cols)`` block of a parameter a subnet used (``cols`` is ``None`` for vectors).
Region = tuple[Selector, Selector]

_REGIONS = "_elastic_regions"


def _select(t: torch.Tensor, dim: int, sel: Selector) -> torch.Tensor:
    if isinstance(sel, int):
        return t.narrow(dim, 0, sel)
    if sel is not None:
        return t.index_select(dim, sel.to(t.device))
    return t


def select_region(t: torch.Tensor, region: Region) -> torch.Tensor:
    """``t[rows][:, cols]`` for ``region = (rows, cols)``: a view when both are prefixes or
    ``None``, else a copy (prefixes are applied before index selections)."""
    rows, cols = region
    if isinstance(rows, int):
        t = t.narrow(0, 0, rows)
    if isinstance(cols, int):
        t = t.narrow(1, 0, cols)
    if isinstance(rows, torch.Tensor):
        t = _select(t, 0, rows)
    if isinstance(cols, torch.Tensor):
        t = _select(t, 1, cols)
    return t


def take(param: torch.Tensor, rows: Selector = None, cols: Selector = None) -> torch.Tensor:
    """The block ``(rows, cols)`` of ``param`` (gradients flow back into it), recorded on the
    parameter while gradients are on.

    Args:
        param: an elastic weight.
        rows: rows to take: ``None`` (all), a prefix length or an index.
        cols: the same for columns (2-D weights only).

    Example::

        w = take(layer.weight, rows=16, cols=torch.tensor([0, 1, 5]))   # [16, 3]
    """
    if torch.is_grad_enabled() and param.requires_grad:
        regions = getattr(param, _REGIONS, None)
        if regions is None:
            regions = []
            setattr(param, _REGIONS, regions)
        if not regions or regions[-1][0] is not rows or regions[-1][1] is not cols:
            regions.append((rows, cols))
        if len(regions) > 2:
            # Two differing regions already mean the whole weight; keep the list short when
            # forwards run without optimizer steps (evaluation with gradients on).
            regions[:] = [regions[0], (None, None)]
    return select_region(param, (rows, cols))


def used_regions(param: torch.Tensor) -> list[Region]:
    """The regions :func:`take` handed out of ``param`` since :func:`clear_regions`."""
    regions: list[Region] = getattr(param, _REGIONS, None) or []
    return regions


def clear_regions(param: torch.Tensor) -> None:
    """Forgets the regions recorded on ``param``."""
    if getattr(param, _REGIONS, None):
        setattr(param, _REGIONS, [])


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
        w = take(self.weight, out_features, cols if cols is not None else in_prefix)
        b = take(self.bias, out_features) if self.bias is not None else None
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
        return take(self.weight, features), take(self.bias, features)
