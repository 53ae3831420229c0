"""One NASRec choice block of the supernet: every operator of the space at its largest size."""

from __future__ import annotations

import torch
from torch import nn

from torchrec_nas.modules.elastic import ElasticLayerNorm, ElasticLinear
from torchrec_nas.modules.layout import BlockPlan, SlotSizes, operator_shape
from torchrec_nas.modules.operators.base import (
    DenseOperator,
    LinearWeights,
    SparseOperator,
    activation_quantizer,
    copy_quantizer,
)
from torchrec_nas.modules.operators.registry import operator_class
from torchrec_nas.modules.subnet import SubnetBlock, block_outputs, concat_tokens, gather
from torchrec_nas.space import SearchSpace


class ChoiceBlock(nn.Module):
    """The supernet's block ``index``: one module per operator of the space (keyed by the
    operator's name), a LayerNorm after each (if the space's ``layer_norm``), and the
    interaction projections.

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
        dense_out, sparse_out = block(plan.blocks[0], [dense], [tokens])
    """

    def __init__(
        self, index: int, space: SearchSpace, sizes: SlotSizes, norm_gain_init: float = 1.0
    ) -> None:
        super().__init__()
        self.index = index
        shape = operator_shape(space, sizes, index)
        emb, dmax = sizes.embedding_dim, sizes.dense_slot
        self.dense_ops = nn.ModuleDict()
        self.dense_norms = nn.ModuleDict()
        self.sparse_ops = nn.ModuleDict()
        self.sparse_norms = nn.ModuleDict()
        # Space names (built-in, registered or "package.module:Class") to their modules.
        self._dense_by_name: dict[str, DenseOperator] = {}
        self._sparse_by_name: dict[str, SparseOperator] = {}
        for name in space.dense_ops:
            op = operator_class(name)(shape)
            assert isinstance(op, DenseOperator), f"{name} is not a DenseOperator"
            self.dense_ops[op.spec.name] = self._dense_by_name[name] = op
            if space.layer_norm:
                self.dense_norms[op.spec.name] = ElasticLayerNorm(dmax, gain_init=norm_gain_init)
        for name in space.sparse_ops:
            sparse_op = operator_class(name)(shape)
            assert isinstance(sparse_op, SparseOperator), f"{name} is not a SparseOperator"
            self.sparse_ops[sparse_op.spec.name] = self._sparse_by_name[name] = sparse_op
            if space.layer_norm:
                token_norm = nn.LayerNorm(emb)
                nn.init.constant_(token_norm.weight, norm_gain_init)
                self.sparse_norms[sparse_op.spec.name] = token_norm
        self.dense_to_sparse: ElasticLinear | None = None
        self.sparse_to_dense: ElasticLinear | None = None
        if space.interaction_bits:
            self.dense_to_sparse = ElasticLinear(dmax, sizes.extra_tokens * emb, fan_in=dmax // 2)
            self.sparse_to_dense = ElasticLinear(emb, dmax)
        self.dense_to_sparse_quantizer = activation_quantizer(shape.quantized)
        self.sparse_to_dense_quantizer = activation_quantizer(shape.quantized)

    def dense_operator(self, name: str) -> DenseOperator:
        return self._dense_by_name[name]

    def sparse_operator(self, name: str) -> SparseOperator:
        return self._sparse_by_name[name]

    def _norms(self, plan: BlockPlan) -> tuple[LinearWeights | None, LinearWeights | None]:
        cfg, live = plan.config, plan.live
        dense_norm = sparse_norm = None
        if not plan.layer_norm or (not self.dense_norms and not self.sparse_norms):
            return None, None  # an architecture or a space without LayerNorms
        if live.dense_out:
            norm = self.dense_norms[self.dense_operator(cfg.dense_op).spec.name]
            assert isinstance(norm, ElasticLayerNorm)
            dense_norm = LinearWeights(*norm.sliced(cfg.dense_dim))
        if live.sparse_out:
            token_norm = self.sparse_norms[self.sparse_operator(cfg.sparse_op).spec.name]
            assert isinstance(token_norm, nn.LayerNorm)
            sparse_norm = LinearWeights(token_norm.weight, token_norm.bias)
        return dense_norm, sparse_norm

    def _interaction(self, plan: BlockPlan) -> tuple[LinearWeights | None, LinearWeights | None]:
        cfg, live = plan.config, plan.live
        sparse_to_dense = dense_to_sparse = None
        if cfg.sparse_to_dense and live.dense_out:
            assert self.sparse_to_dense is not None
            sparse_to_dense = LinearWeights(*self.sparse_to_dense.sliced(cfg.dense_dim))
        if cfg.dense_to_sparse and live.sparse_out:
            assert self.dense_to_sparse is not None
            out = self.dense_to_sparse.out_features
            dense_to_sparse = LinearWeights(
                *self.dense_to_sparse.sliced(out, in_prefix=cfg.dense_dim)
            )
        return sparse_to_dense, dense_to_sparse

    def forward(
        self,
        plan: BlockPlan,
        dense_outputs: list[torch.Tensor | None],
        sparse_outputs: list[torch.Tensor | None],
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Runs the block as ``plan`` says.

        Args:
            plan: the block's plan (config, liveness, operator plans).
            dense_outputs: dense outputs so far, indexed by output (0 = raw dense input).
            sparse_outputs: token outputs so far, ``[B, T, E]`` each.

        Returns:
            ``(dense_out, sparse_out)``; an output that cannot reach the logit is ``None``.
        """
        cfg = plan.config
        dense_op = self.dense_operator(cfg.dense_op) if plan.dense is not None else None
        reads_sparse = dense_op is not None and dense_op.spec.reads_sparse
        tokens = None
        if plan.sparse is not None or reads_sparse:
            tokens = concat_tokens(sparse_outputs, cfg.sparse_inputs)
        sparse_result = dense_result = None
        if plan.sparse is not None:
            assert tokens is not None
            sparse_result = self.sparse_operator(cfg.sparse_op)(tokens, plan.sparse)
        if dense_op is not None:
            assert plan.dense is not None
            dense_inputs = gather(dense_outputs, cfg.dense_inputs)
            dense_result = dense_op(dense_inputs, tokens if reads_sparse else None, plan.dense)
        dense_norm, sparse_norm = self._norms(plan)
        sparse_to_dense, dense_to_sparse = self._interaction(plan)
        return block_outputs(
            cfg,
            dense_result,
            sparse_result,
            plan.live.dense_out,
            plan.live.sparse_out,
            dense_norm,
            sparse_norm,
            sparse_to_dense,
            dense_to_sparse,
            self.sparse_to_dense_quantizer,
            self.dense_to_sparse_quantizer,
        )

    @torch.no_grad()
    def materialize(self, plan: BlockPlan) -> SubnetBlock:
        """A :class:`SubnetBlock` with copies of the weights ``plan`` uses."""
        cfg = plan.config
        dense = sparse = None
        reads_sparse = False
        if plan.dense is not None:
            dense_op = self.dense_operator(cfg.dense_op)
            dense = dense_op.materialize(plan.dense)
            reads_sparse = dense_op.spec.reads_sparse
        if plan.sparse is not None:
            sparse = self.sparse_operator(cfg.sparse_op).materialize(plan.sparse)
        dense_norm, sparse_norm = self._norms(plan)
        sparse_to_dense, dense_to_sparse = self._interaction(plan)
        return SubnetBlock(
            cfg,
            dense,
            sparse,
            reads_sparse,
            _layer_norm(dense_norm),
            _layer_norm(sparse_norm),
            sparse_to_dense.to_linear() if sparse_to_dense is not None else None,
            dense_to_sparse.to_linear() if dense_to_sparse is not None else None,
            copy_quantizer(self.sparse_to_dense_quantizer),
            copy_quantizer(self.dense_to_sparse_quantizer),
            dense_out=plan.live.dense_out,
            sparse_out=plan.live.sparse_out,
        )


def _layer_norm(weights: LinearWeights | None) -> nn.LayerNorm | None:
    if weights is None:
        return None
    norm = nn.LayerNorm(weights.weight.shape[0]).to(weights.weight.device)
    with torch.no_grad():
        norm.weight.copy_(weights.weight)
        assert weights.bias is not None and norm.bias is not None
        norm.bias.copy_(weights.bias)
    return norm
