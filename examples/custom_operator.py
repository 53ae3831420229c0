"""Add your own NASRec operator without editing torchrec_nas: a low-rank FC.

An operator is one class: the elastic weights it owns in a supernet block, how it slices them
for a subnet, its forward, its hardware layer records (FLOPs, PIM costs) and the ordinary
module it materializes into. Register it from Python with ``register_operator``, or name it in
a config as ``package.module:ClassName``::

    space:
      preset: nasrec-full
      dense_ops: [fc, dot, custom_operator:LowRankOperator]

Run: ``PYTHONPATH=. .venv/bin/python examples/custom_operator.py``
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchrec.datasets.utils import Batch
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from torchrec_nas import Architecture, NASRecModel, SearchSpace
from torchrec_nas.hardware.flops import count_flops, model_layers
from torchrec_nas.hardware.layers import ActivationOp, Layer, LinearLayer
from torchrec_nas.modules.elastic import ElasticLinear
from torchrec_nas.modules.operators import OperatorSpec, register_operator
from torchrec_nas.modules.operators.base import (
    DenseOperator,
    LayerRecords,
    LinearWeights,
    OperatorPlan,
    OperatorShape,
)

RANK = 8


class LowRankFullyConnected(nn.Module):
    """``relu(U (V x))`` with ``V`` of rank ``RANK``: the materialized operator.

    Example::

        fc = LowRankFullyConnected(nn.Linear(20, 8), nn.Linear(8, 32))
        y = fc([torch.randn(4, 20)], None)   # [4, 32]
    """

    def __init__(self, down: nn.Linear, up: nn.Linear) -> None:
        super().__init__()
        self.down = down
        self.up = up

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None
    ) -> torch.Tensor:
        return low_rank(dense_inputs, LinearWeights.of(self.down), LinearWeights.of(self.up))


def low_rank(
    dense_inputs: list[torch.Tensor], down: LinearWeights, up: LinearWeights
) -> torch.Tensor:
    x = torch.cat(dense_inputs, dim=1)
    return F.relu(F.linear(F.linear(x, *down), *up))


class LowRankOperator(DenseOperator):
    """The supernet's low-rank FC: ``V`` over every dense slot, ``U`` at the largest width."""

    spec = OperatorSpec("low_rank", "dense")

    def __init__(self, shape: OperatorShape) -> None:
        super().__init__(shape)
        self.down = ElasticLinear(shape.dense_columns, RANK, fan_in=shape.dense_fan_in)
        self.up = ElasticLinear(RANK, shape.max_dense_dim)

    def weights(self, plan: OperatorPlan) -> tuple[LinearWeights, LinearWeights]:
        # The plan's columns select the subnet's inputs; the width selects U's first rows.
        return (
            LinearWeights(*self.down.sliced(RANK, plan.cols)),
            LinearWeights(*self.up.sliced(plan.width)),
        )

    def forward(
        self, dense_inputs: list[torch.Tensor], tokens: torch.Tensor | None, plan: OperatorPlan
    ) -> torch.Tensor:
        return low_rank(dense_inputs, *self.weights(plan))

    @classmethod
    def layers(cls, plan: OperatorPlan, shape: OperatorShape, prefix: str) -> list[Layer]:
        records = LayerRecords(prefix, plan.config)
        records.linear("down", len(plan.cols), RANK)
        records.linear("up", RANK, plan.width)
        records.activation("relu", elementwise=plan.width)
        return records.layers

    def materialize(self, plan: OperatorPlan) -> LowRankFullyConnected:
        down, up = self.weights(plan)
        return LowRankFullyConnected(down.to_linear(), up.to_linear())


def random_batch(features: list[str], batch_size: int = 16) -> Batch:
    ids = torch.randint(0, 100, (batch_size * len(features),))
    lengths = torch.ones(batch_size * len(features), dtype=torch.int32)
    sparse = KeyedJaggedTensor.from_lengths_sync(keys=features, values=ids, lengths=lengths)
    return Batch(torch.randn(batch_size, 13), sparse, torch.randint(0, 2, (batch_size,)))


def main(operator: str = "low_rank") -> None:
    """Runs ``operator`` (a registered name or a ``module:Class`` reference) in a space."""
    if operator == "low_rank":
        register_operator(LowRankOperator)
    torch.manual_seed(0)
    features = ["user", "item", "category"]
    tables = [
        EmbeddingBagConfig(name=f"t_{f}", embedding_dim=16, num_embeddings=100, feature_names=[f])
        for f in features
    ]
    space = SearchSpace.from_mapping(
        {"preset": "nasrec-full", "dense_dims": [16, 32, 64], "dense_ops": ["fc", operator]}
    )
    model = NASRecModel(tables, dense_in_features=13, space=space).eval()
    sampled = space.sample(random.Random(0))
    # Every block runs the user operator.
    arch = Architecture(tuple(dataclasses.replace(b, dense_op=operator) for b in sampled.blocks))
    batch = random_batch(features)
    with torch.no_grad():
        logits = model(batch, arch)
        subnet = model.materialize(arch).eval()
        torch.testing.assert_close(subnet(batch), logits)
        counter = FlopCounterMode(display=False)
        with counter:
            subnet(batch)
    layers = model_layers(arch, space, 13, tables)
    matrix_flops = sum(
        2 * layer.macs for layer in layers if isinstance(layer, (LinearLayer, ActivationOp))
    )
    assert matrix_flops == counter.get_total_flops() / len(batch.labels)
    print(subnet.interaction.blocks[-1])
    print(f"logits {tuple(logits.shape)}; {count_flops(layers):,} FLOPs per sample")


if __name__ == "__main__":
    main()
