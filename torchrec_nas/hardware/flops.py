"""What a NASRec architecture computes per sample, as hardware-neutral layer records, and its
FLOPs and parameters."""

from __future__ import annotations

from collections.abc import Sequence

from torchrec.modules.embedding_configs import EmbeddingBagConfig

from torchrec_nas.hardware.embedding_memory import embedding_memory_bytes, tables_at_widths
from torchrec_nas.hardware.layers import ActivationOp, EmbeddingLookup, Layer, LinearLayer
from torchrec_nas.modules.layout import BlockPlan, SlotSizes, operator_shape, plan_architecture
from torchrec_nas.modules.operators.base import LayerRecords
from torchrec_nas.modules.operators.registry import operator_class
from torchrec_nas.space import Architecture, SearchSpace

# Element-wise work per normalized element (mean, variance, scale, shift).
_LAYERNORM_OPS = 5


def model_layers(
    arch: Architecture,
    space: SearchSpace,
    dense_in_features: int,
    tables: Sequence[EmbeddingBagConfig] | int,
    lookups_per_sample: float = 1.0,
) -> list[Layer]:
    """The layers that ``arch`` runs for one sample, block by block, then the classifier and
    the embedding lookups (only if the embeddings reach the logit).

    Args:
        arch: the architecture.
        space: its search space.
        dense_in_features: number of dense features.
        tables: the embedding tables, or just their number (then sized 1 row, for FLOPs only).
        lookups_per_sample: pooling factor of each feature.

    Example::

        layers = model_layers(arch, space, 13, tables)
        flops = count_flops(layers)
    """
    if isinstance(tables, int):
        table_list: list[EmbeddingBagConfig] = [
            EmbeddingBagConfig(
                name=f"t{i}",
                embedding_dim=space.embedding_dim,
                num_embeddings=1,
                feature_names=[f"f{i}"],
            )
            for i in range(tables)
        ]
    else:
        table_list = list(tables)
    num_features = sum(len(t.feature_names) for t in table_list)
    sizes = SlotSizes.of(space, dense_in_features, num_features)
    plan = plan_architecture(arch, sizes)
    layers: list[Layer] = []
    for i, bp in enumerate(plan.blocks):
        layers += _block_layers(f"block{i}", bp, space, sizes, i)
    layers.append(LinearLayer("classifier", len(plan.classifier_cols), 1))
    if plan.uses_sparse_input:
        for t in table_list:
            layers.append(
                EmbeddingLookup(
                    t.name,
                    t.num_embeddings,
                    t.embedding_dim,
                    lookups_per_sample * len(t.feature_names),
                )
            )
    return layers


def count_flops(layers: Sequence[Layer]) -> int:
    """Floating-point operations per sample: 2 per multiply-accumulate, 1 per element-wise op
    (embedding lookups excluded, as is usual for CTR models)."""
    total = 0
    for layer in layers:
        if isinstance(layer, LinearLayer):
            total += 2 * layer.macs
        elif isinstance(layer, ActivationOp):
            total += 2 * layer.macs + layer.elementwise
    return total


def count_params(layers: Sequence[Layer], include_embeddings: bool = False) -> int:
    """Weights of the dense part (and of the embedding tables if asked)."""
    total = sum(layer.params for layer in layers if isinstance(layer, LinearLayer))
    if include_embeddings:
        total += sum(layer.params for layer in layers if isinstance(layer, EmbeddingLookup))
    return total


def architecture_costs(
    arch: Architecture,
    space: SearchSpace,
    dense_in_features: int,
    tables: Sequence[EmbeddingBagConfig],
    hardware: str | None = "isaac",
    embedding_mode: str = "near_memory",
) -> dict[str, float]:
    """The search's costs of ``arch`` per sample: ``flops``, dense ``params``, the embedding
    tables' ``embedding_params`` and ``memory_bytes`` and, with a PIM ``hardware`` preset (or
    YAML file), ``pim_energy`` (pJ), ``pim_latency`` (ns), ``pim_area`` (mm²) and
    ``pim_crossbars``. Cheap enough (a few milliseconds) to run for every candidate.

    The tables are ``tables`` at the architecture's ``embedding_dims`` where it has them (the
    joint search), so the PIM estimate prices each lookup at its width. ``embedding_params``
    counts the tables' rows x width plus, for each feature narrower than the space's token
    width, the ``nn.Linear(d, embedding_dim)`` that the final model pads it with
    (:func:`~torchrec_nas.embedding_search.modules.use_embedding_dims`); ``memory_bytes`` is
    TorchRec's planner storage estimate of the tables
    (:func:`~torchrec_nas.hardware.embedding_memory.embedding_memory_bytes`). Both are 0 when
    no embedding reaches the logit (the model builds no tables).

    Example::

        costs = architecture_costs(arch, space, 13, tables, hardware="isaac")
    """
    tables = tables_at_widths(tables, arch.widths)
    layers = model_layers(arch, space, dense_in_features, tables)
    costs = {"flops": float(count_flops(layers)), "params": float(count_params(layers))}
    used = any(isinstance(layer, EmbeddingLookup) for layer in layers)
    token = space.embedding_dim
    costs["embedding_params"] = float(
        sum(t.num_embeddings * t.embedding_dim for t in tables)
        + sum((t.embedding_dim + 1) * token for t in tables if t.embedding_dim != token)
        if used
        else 0
    )
    costs["memory_bytes"] = float(embedding_memory_bytes(tables) if used else 0)
    if hardware is not None:
        from torchrec_nas.hardware.pim import estimate_cost

        report = estimate_cost(layers, hardware, embedding_mode)  # type: ignore[arg-type]
        costs.update(
            pim_energy=float(report.energy_pj),
            pim_latency=float(report.latency_ns),
            pim_area=float(report.area_mm2),
            pim_crossbars=float(report.crossbars),
        )
    return costs


def _block_layers(
    name: str, bp: BlockPlan, space: SearchSpace, sizes: SlotSizes, index: int
) -> list[Layer]:
    """The layers one block runs for one sample, as its plan says: its operators' records,
    then the interaction projections and LayerNorms."""
    b, live = bp.config, bp.live
    emb = sizes.embedding_dim
    shape = operator_shape(space, sizes, index)
    layers: list[Layer] = []
    if bp.sparse is not None:
        op = operator_class(b.sparse_op)
        layers += op.layers(bp.sparse, shape, f"{name}.sparse.{op.spec.name}")
    if bp.dense is not None:
        op = operator_class(b.dense_op)
        layers += op.layers(bp.dense, shape, f"{name}.dense.{op.spec.name}")
    records = LayerRecords(name, b)
    if live.dense_out:
        if b.sparse_to_dense:
            records.activation("sparse_to_dense.fm", elementwise=3 * b.sparse_tokens * emb)
            records.linear("sparse_to_dense.proj", emb, b.dense_dim)
        if space.layer_norm and bp.layer_norm:
            records.activation("dense.layernorm", elementwise=_LAYERNORM_OPS * b.dense_dim)
    if live.sparse_out:
        if b.dense_to_sparse:
            records.linear("dense_to_sparse.proj", b.dense_dim, sizes.extra_tokens * emb)
        if space.layer_norm and bp.layer_norm:
            records.activation(
                "sparse.layernorm", elementwise=_LAYERNORM_OPS * bp.out_token_count * emb
            )
    return layers + records.layers
