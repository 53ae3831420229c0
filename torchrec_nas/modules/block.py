"""One NASRec choice block: its supernet weights and the forward computation of a subnet.

:func:`block_forward` is the only place where a block's computation is written. The supernet's
:class:`ChoiceBlock` feeds it slices of its elastic weights; a materialized
:class:`torchrec_nas.modules.subnet.SubnetBlock` feeds it its own copies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from torchrec_nas.modules.elastic import ElasticLayerNorm, ElasticLinear
from torchrec_nas.modules.layout import BlockPlan, SlotSizes, dot_tokens
from torchrec_nas.modules.operators import dot_product, factorization_machine, token_linear
from torchrec_nas.space import SearchSpace

Weights = Mapping[str, torch.Tensor | None]
#: Applied to every weight matrix and every matrix input before use (fake quantization);
#: called as ``quantize(tensor, bits)`` with ``bits=None`` meaning full precision.
Quantizer = Callable[[torch.Tensor, "int | None"], torch.Tensor]


def _identity(x: torch.Tensor, bits: int | None) -> torch.Tensor:
    return x


class ChoiceBlock(nn.Module):
    """The supernet's block ``index``: every operator of the space at its largest size.

    Args:
        index: position of the block (it reads outputs ``0..index``).
        space: the search space.
        sizes: slot sizes of the supernet.
        norm_gain_init: initial gain of the LayerNorms after operators (see
            :class:`~torchrec_nas.modules.interaction.NASRecInteraction`).

    Example::

        space = SearchSpace.preset("nasrec-small")
        sizes = SlotSizes.of(space, dense_in_features=13, num_sparse_features=26)
        block = ChoiceBlock(0, space, sizes)
    """

    def __init__(
        self, index: int, space: SearchSpace, sizes: SlotSizes, norm_gain_init: float = 1.0
    ) -> None:
        super().__init__()
        self.index = index
        dense_cols = sizes.dense_columns(index)
        token_cols = sizes.token_columns(index)
        dmax, emb = sizes.dense_slot, sizes.embedding_dim
        # Initialize for a typical subnet, which reads about two slots, not all of them.
        dense_fan = min(dense_cols, sizes.dense_in + dmax)
        token_fan = min(token_cols, sizes.sparse_in + sizes.token_slot)
        self.dense_linears = nn.ModuleDict()
        self.dense_norms = nn.ModuleDict()
        for op in space.dense_ops:
            if op == "fc":
                self.dense_linears["fc"] = ElasticLinear(dense_cols, dmax, fan_in=dense_fan)
            elif op in ("gating", "sum"):
                self.dense_linears[f"{op}_left"] = ElasticLinear(dense_cols, dmax, fan_in=dense_fan)
                self.dense_linears[f"{op}_right"] = ElasticLinear(
                    dense_cols, dmax, fan_in=dense_fan
                )
            elif op == "dot":
                self.dense_linears["dot_proj"] = ElasticLinear(dense_cols, emb, fan_in=dense_fan)
                self.dense_linears["dot_efc"] = ElasticLinear(
                    token_cols + 1, dot_tokens(dmax), fan_in=token_fan + 1
                )
            self.dense_norms[op] = ElasticLayerNorm(dmax, gain_init=norm_gain_init)
        self.sparse_linears = nn.ModuleDict()
        self.sparse_norms = nn.ModuleDict()
        self.attention: nn.MultiheadAttention | None = None
        for op in space.sparse_ops:
            self.sparse_linears[op] = ElasticLinear(token_cols, sizes.op_tokens, fan_in=token_fan)
            token_norm = nn.LayerNorm(emb)
            nn.init.constant_(token_norm.weight, norm_gain_init)
            self.sparse_norms[op] = token_norm
            if op == "attention":
                self.attention = nn.MultiheadAttention(emb, space.attention_heads, batch_first=True)
        self.dense_to_sparse: ElasticLinear | None = None
        self.sparse_to_dense: ElasticLinear | None = None
        if space.interaction_bits:
            self.dense_to_sparse = ElasticLinear(dmax, sizes.extra_tokens * emb, fan_in=dmax // 2)
            self.sparse_to_dense = ElasticLinear(emb, dmax)

    def _dense(self, name: str) -> ElasticLinear:
        layer = self.dense_linears[name]
        assert isinstance(layer, ElasticLinear)
        return layer

    def _sparse(self, name: str) -> ElasticLinear:
        layer = self.sparse_linears[name]
        assert isinstance(layer, ElasticLinear)
        return layer

    def active_weights(self, plan: BlockPlan) -> dict[str, torch.Tensor | None]:
        """Slices of this block's weights that the planned subnet block uses, by name."""
        cfg, live = plan.config, plan.live
        d, t = cfg.dense_dim, cfg.sparse_tokens
        w: dict[str, torch.Tensor | None] = {}
        lin = self._dense
        if live.dense_op:
            op = cfg.dense_op
            if op == "fc":
                w["fc_w"], w["fc_b"] = lin("fc").sliced(d, plan.dense_cols)
            elif op in ("gating", "sum"):
                w["left_w"], w["left_b"] = lin(f"{op}_left").sliced(d, plan.left_cols)
                w["right_w"], w["right_b"] = lin(f"{op}_right").sliced(d, plan.right_cols)
            else:
                emb = lin("dot_proj").out_features
                w["proj_w"], w["proj_b"] = lin("dot_proj").sliced(emb, plan.dense_cols)
                w["dot_w"], w["dot_b"] = lin("dot_efc").sliced(plan.dot_tokens, plan.dot_token_cols)
            norm = self.dense_norms[op]
            assert isinstance(norm, ElasticLayerNorm)
            w["dense_norm_w"], w["dense_norm_b"] = norm.sliced(d)
            if cfg.sparse_to_dense and live.dense_out:
                assert self.sparse_to_dense is not None
                w["s2d_w"], w["s2d_b"] = self.sparse_to_dense.sliced(d)
        if live.sparse_op:
            op = cfg.sparse_op
            w["sparse_w"], w["sparse_b"] = self._sparse(op).sliced(t, plan.token_cols)
            if live.sparse_out:
                norm_t = self.sparse_norms[op]
                assert isinstance(norm_t, nn.LayerNorm)
                w["sparse_norm_w"], w["sparse_norm_b"] = norm_t.weight, norm_t.bias
                if cfg.dense_to_sparse:
                    assert self.dense_to_sparse is not None
                    out = self.dense_to_sparse.out_features
                    w["d2s_w"], w["d2s_b"] = self.dense_to_sparse.sliced(out, in_prefix=d)
        return w


def _linear(
    x: torch.Tensor, w: Weights, name: str, cfg_bits: tuple[int | None, int | None], q: Quantizer
) -> torch.Tensor:
    weight = w[f"{name}_w"]
    assert weight is not None
    weight_bits, act_bits = cfg_bits
    return F.linear(q(x, act_bits), q(weight, weight_bits), w[f"{name}_b"])


def block_forward(
    plan: BlockPlan,
    w: Weights,
    attention: nn.MultiheadAttention | None,
    dense_outputs: Sequence[torch.Tensor | None],
    sparse_outputs: Sequence[torch.Tensor | None],
    pairs: torch.Tensor | None = None,
    quantize: Quantizer = _identity,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Runs one block of a subnet.

    Args:
        plan: the block's plan (config, liveness, input order).
        w: the active weights by name (from :meth:`ChoiceBlock.active_weights` or a subnet).
        attention: the attention layer when the sparse operator is ``attention``.
        dense_outputs: dense outputs so far, indexed by output (0 = raw dense input).
        sparse_outputs: token outputs so far, ``[B, T, E]`` each.
        pairs: the dot-product operator's Gram indices on the right device.
        quantize: fake quantization applied to weights and inputs of matrix products.

    Returns:
        ``(dense_out, sparse_out)``; an output that cannot reach the logit is ``None``.
    """
    cfg, live = plan.config, plan.live
    bits = (cfg.weight_bits, cfg.activation_bits)
    dense_result = sparse_result = None
    if live.sparse_op:
        tokens = torch.cat([_need(sparse_outputs, j) for j in sorted(cfg.sparse_inputs)], dim=1)
        sw = w["sparse_w"]
        assert sw is not None
        q_tokens = quantize(tokens, bits[1])
        query = token_linear(q_tokens, quantize(sw, bits[0]), w["sparse_b"])
        if cfg.sparse_op == "attention":
            assert attention is not None
            attended, _ = attention(query, q_tokens, q_tokens, need_weights=False)
            sparse_result = query + attended
        else:
            sparse_result = query
    if live.dense_op:
        dense_in = [_need(dense_outputs, j) for j in sorted(cfg.dense_inputs)]
        if cfg.dense_op == "fc":
            dense_result = F.relu(_linear(torch.cat(dense_in, dim=1), w, "fc", bits, quantize))
        elif cfg.dense_op in ("gating", "sum"):
            left = _linear(dense_in[0], w, "left", bits, quantize)
            right_in = torch.cat(dense_in[1:], dim=1) if len(dense_in) > 1 else dense_in[0]
            right = _linear(right_in, w, "right", bits, quantize)
            dense_result = left + right if cfg.dense_op == "sum" else torch.sigmoid(left) * right
        else:
            tokens = torch.cat([_need(sparse_outputs, j) for j in sorted(cfg.sparse_inputs)], 1)
            assert pairs is not None
            dense_result = dot_product(
                quantize(torch.cat(dense_in, dim=1), bits[1]),
                quantize(tokens, bits[1]),
                quantize(_need_w(w, "proj_w"), bits[0]),
                w["proj_b"],
                quantize(_need_w(w, "dot_w"), bits[0]),
                w["dot_b"],
                pairs,
            )
    dense_out = sparse_out = None
    if live.dense_out:
        assert dense_result is not None
        y = dense_result
        if cfg.sparse_to_dense:
            assert sparse_result is not None
            y = y + _linear(factorization_machine(sparse_result), w, "s2d", bits, quantize)
        dense_out = F.layer_norm(y, (cfg.dense_dim,), w["dense_norm_w"], w["dense_norm_b"])
    if live.sparse_out:
        assert sparse_result is not None
        t = sparse_result
        if cfg.dense_to_sparse:
            assert dense_result is not None
            extra = _linear(dense_result, w, "d2s", bits, quantize)
            t = torch.cat([t, extra.view(t.shape[0], -1, t.shape[2])], dim=1)
        sparse_out = F.layer_norm(t, (t.shape[2],), w["sparse_norm_w"], w["sparse_norm_b"])
    return dense_out, sparse_out


def _need(outputs: Sequence[torch.Tensor | None], j: int) -> torch.Tensor:
    out = outputs[j]
    if out is None:
        raise RuntimeError(f"output {j} was not computed but is read (liveness bug)")
    return out


def _need_w(w: Weights, name: str) -> torch.Tensor:
    t = w[name]
    assert t is not None
    return t
