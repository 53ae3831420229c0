"""Drop the NASRec interaction into your own TorchRec model, in place of DLRM's interaction and
over arch.

Your model keeps its EmbeddingBagCollection (TorchRec's ``SparseArch`` gives one token per
feature, ``[B, F, E]``) and its own dense tower; ``NASRecInteraction`` takes the dense vector and
the tokens and returns the logit. Train it as a supernet (a sampled architecture per step), or
materialize one architecture as a fixed module; ``DLRM_NASRec`` is the same as TorchRec's DLRM
with the searched interaction.

Run: ``.venv/bin/python examples/custom_torchrec_model.py``
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.datasets.utils import Batch
from torchrec.models.dlrm import DenseArch, DLRMTrain, SparseArch
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from torchrec_nas import Architecture, SearchSpace
from torchrec_nas.models import DLRM_NASRec
from torchrec_nas.modules.interaction import NASRecInteraction


class MyRankingModel(nn.Module):
    """A user's TorchRec model: their embeddings and dense tower, NASRec's interaction.

    Args:
        tables: the user's embedding tables (all of the space's embedding dim).
        dense_in_features: raw dense features.
        space: the search space of the interaction.
    """

    def __init__(
        self, tables: list[EmbeddingBagConfig], dense_in_features: int, space: SearchSpace
    ) -> None:
        super().__init__()
        self.sparse_arch = SparseArch(EmbeddingBagCollection(tables=tables))
        self.dense_arch = DenseArch(dense_in_features, layer_sizes=[64, 32])
        self.interaction = NASRecInteraction(
            space, dense_in_features=32, num_sparse_features=len(tables)
        )

    def forward(
        self, dense: torch.Tensor, sparse: KeyedJaggedTensor, arch: Architecture
    ) -> torch.Tensor:
        return self.interaction(self.dense_arch(dense), self.sparse_arch(sparse), arch)


def main() -> None:
    torch.manual_seed(0)
    features = ["user_id", "item_id", "category"]
    tables = [
        EmbeddingBagConfig(name=f"t_{f}", embedding_dim=16, num_embeddings=1000, feature_names=[f])
        for f in features
    ]
    space = SearchSpace.from_mapping({"preset": "nasrec-small", "dense_dims": [16, 32, 64]})
    model = MyRankingModel(tables, dense_in_features=8, space=space)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.01)

    batch_size = 64
    rng = random.Random(0)
    for step in range(20):
        dense = torch.randn(batch_size, 8)
        sparse = KeyedJaggedTensor.from_lengths_sync(
            keys=features,
            values=torch.randint(0, 1000, (batch_size * len(features),)),
            lengths=torch.ones(batch_size * len(features), dtype=torch.int32),
        )
        labels = (dense[:, 0] > 0).float()
        arch = space.sample(rng)  # supernet training: a different subnet every step
        loss = F.binary_cross_entropy_with_logits(model(dense, sparse, arch), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 5 == 0:
            print(f"step {step}: loss {loss.item():.4f}")

    # One architecture as a fixed module with its own copies of the weights it uses.
    best = space.sample(random.Random(1))
    fixed = model.interaction.materialize(best).eval()
    with torch.no_grad():
        tokens = model.sparse_arch(sparse)
        dense_out = model.dense_arch(dense)
        assert torch.allclose(fixed(dense_out, tokens), model.interaction(dense_out, tokens, best))
    print("materialized subnet:", sum(p.numel() for p in fixed.parameters()), "parameters")

    # Or TorchRec's DLRM with the searched interaction, trained by TorchRec's DLRMTrain (the
    # contract of TrainPipelineSparseDist).
    dlrm = DLRM_NASRec(
        EmbeddingBagCollection(tables=tables),
        dense_in_features=8,
        dense_arch_layer_sizes=[64, 16],
        over_arch_layer_sizes=[32, 1],
        architecture=best,
        space=space,
    )
    loss, (_, logits, _) = DLRMTrain(dlrm)(Batch(dense, sparse, labels))
    print(f"DLRM_NASRec: logits {tuple(logits.shape)}, loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
