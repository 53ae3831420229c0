"""What a NASRec architecture computes per sample, as hardware-neutral layer records, and its
FLOPs and parameters."""

from __future__ import annotations

from collections.abc import Sequence

from torchrec.modules.embedding_configs import EmbeddingBagConfig

from torchrec_nas.hardware.layers import ActivationOp, EmbeddingLookup, Layer, LinearLayer
from torchrec_nas.modules.layout import BlockPlan, SlotSizes, plan_architecture
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
        layers += _block_layers(f"block{i}", bp, sizes)
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
    """The search's costs of ``arch`` per sample: ``flops``, dense ``params`` and, with a PIM
    ``hardware`` preset (or YAML file), ``pim_energy`` (pJ), ``pim_latency`` (ns),
    ``pim_area`` (mm²) and ``pim_crossbars``. Cheap enough (about a millisecond) to run for
    every candidate.

    Example::

        costs = architecture_costs(arch, space, 13, tables, hardware="isaac")
    """
    layers = model_layers(arch, space, dense_in_features, tables)
    costs = {"flops": float(count_flops(layers)), "params": float(count_params(layers))}
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


def _block_layers(name: str, bp: BlockPlan, sizes: SlotSizes) -> list[Layer]:
    """The layers one block runs for one sample, as its plan says."""
    emb = sizes.embedding_dim
    layers: list[Layer] = []
    b, live = bp.config, bp.live
    wb, ab = b.weight_bits or 8, b.activation_bits or 8

    def linear(suffix: str, k: int, n: int, vectors: int = 1) -> None:
        layers.append(
            LinearLayer(f"{name}.{suffix}", k, n, vectors, weight_bits=wb, activation_bits=ab)
        )

    def op(suffix: str, macs: int = 0, elementwise: int = 0) -> None:
        layers.append(ActivationOp(f"{name}.{suffix}", macs, elementwise, activation_bits=ab))

    t_in = len(bp.token_cols)
    if live.sparse_op:
        t = b.sparse_tokens
        if b.sparse_op == "efc":
            linear("sparse.efc", t_in, t, emb)
        else:
            linear("sparse.attention.query", t_in, t, emb)
            linear("sparse.attention.q_proj", emb, emb, t)
            linear("sparse.attention.kv_proj", emb, 2 * emb, t_in)
            op("sparse.attention.scores", macs=2 * t * t_in * emb, elementwise=3 * t * t_in)
            linear("sparse.attention.out_proj", emb, emb, t)
    if live.dense_op:
        d = b.dense_dim
        if b.dense_op == "fc":
            linear("dense.fc", len(bp.dense_cols), d)
            op("dense.relu", elementwise=d)
        elif b.dense_op in ("gating", "sum"):
            linear(f"dense.{b.dense_op}.left", len(bp.left_cols), d)
            linear(f"dense.{b.dense_op}.right", len(bp.right_cols), d)
            op(
                f"dense.{b.dense_op}.combine",
                elementwise=(2 if b.dense_op == "gating" else 1) * d,
            )
        else:
            n = bp.dot_tokens
            linear("dense.dot.proj", len(bp.dense_cols), emb)
            linear("dense.dot.efc", len(bp.dot_token_cols), n, emb)
            op("dense.dot.gram", macs=n * (n + 1) // 2 * emb)
    if live.dense_out:
        if b.sparse_to_dense:
            op("sparse_to_dense.fm", elementwise=3 * b.sparse_tokens * emb)
            linear("sparse_to_dense.proj", emb, b.dense_dim)
        op("dense.layernorm", elementwise=_LAYERNORM_OPS * b.dense_dim)
    if live.sparse_out:
        if b.dense_to_sparse:
            linear("dense_to_sparse.proj", b.dense_dim, sizes.extra_tokens * emb)
        op("sparse.layernorm", elementwise=_LAYERNORM_OPS * bp.out_token_count * emb)
    return layers
