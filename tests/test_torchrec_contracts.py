"""TorchRec's contracts at the edges: DLRM's inter_arch keywords, DLRM_NASRec built like
DLRM_DCN, the DLRMTrain contract, and torch.export of materialized models."""

from __future__ import annotations

import random

import torch
from helpers import random_batch, tiny_tables
from torchrec.models.dlrm import DLRM, DLRMTrain
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from torchrec_nas import NASRecModel, SearchSpace
from torchrec_nas.models import DLRM_NASRec, SupernetTrain
from torchrec_nas.modules.interaction_arch import NASRecInteractionArch

SPACE = SearchSpace.from_mapping(
    {"preset": "nasrec-full", "dense_dims": [16, 32], "sparse_tokens": [4, 8]}
)


def _dlrm_nasrec(seed: int = 0) -> DLRM_NASRec:
    torch.manual_seed(seed)
    arch = SPACE.sample(random.Random(seed))
    ebc = EmbeddingBagCollection(tables=tiny_tables())
    return DLRM_NASRec(ebc, 4, [8, 16], [8, 1], architecture=arch, space=SPACE)


def test_dlrm_nasrec_is_a_dlrm_with_the_searched_interaction() -> None:
    model = _dlrm_nasrec()
    batch = random_batch()
    assert isinstance(model, DLRM) and isinstance(model.inter_arch, NASRecInteractionArch)
    logits = model(dense_features=batch.dense_features, sparse_features=batch.sparse_features)
    assert logits.shape == (8, 1)
    # DLRM's own call into its interaction arch, by keyword.
    features = model.inter_arch(
        dense_features=torch.randn(8, 16), sparse_features=torch.randn(8, 5, 16)
    )
    assert features.shape == (8, model.inter_arch.out_features)
    # Every parameter takes part (DistributedDataParallel needs no unused-parameter search).
    loss, (loss_detached, train_logits, labels) = DLRMTrain(model)(batch)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert train_logits.shape == (8,) and torch.equal(labels, batch.labels)
    assert loss_detached.item() == loss.item()


def test_supernet_train_has_the_dlrm_train_contract() -> None:
    torch.manual_seed(0)
    model = NASRecModel(tiny_tables(), 4, SPACE)
    archs = [SPACE.sample(random.Random(s)) for s in range(3)]
    train = SupernetTrain(model, lambda step: archs[step % 3])
    batch = random_batch()
    for step in range(2):
        loss, (loss_detached, logits, labels) = train(batch)
        loss.backward()
        assert logits.shape == (8,) and not logits.requires_grad
        assert torch.equal(logits, model(batch, archs[step]).detach())
    assert int(train.step) == 2 and "step" in train.state_dict()
    train.eval()
    with torch.no_grad():
        _, (_, logits, _) = train(batch)
    torch.testing.assert_close(logits, model(batch, archs[1]))


def test_torch_export_of_a_materialized_interaction() -> None:
    torch.manual_seed(0)
    model = NASRecModel(tiny_tables(), 4, SPACE).eval()
    subnet = model.materialize(SPACE.sample(random.Random(1))).eval()
    batch = random_batch()
    assert subnet.sparse_arch is not None
    with torch.no_grad():
        tokens = subnet.sparse_arch(batch.sparse_features)
        program = torch.export.export(subnet.interaction, (batch.dense_features, tokens))
        torch.testing.assert_close(
            program.module()(batch.dense_features, tokens),
            subnet.interaction(batch.dense_features, tokens),
        )


def test_torch_export_of_a_whole_dlrm_nasrec() -> None:
    # TorchRec registers KeyedJaggedTensor as a pytree, so the whole model exports too.
    model = _dlrm_nasrec(2).eval()
    batch = random_batch()
    with torch.no_grad():
        program = torch.export.export(model, (batch.dense_features, batch.sparse_features))
        torch.testing.assert_close(
            program.module()(batch.dense_features, batch.sparse_features),
            model(batch.dense_features, batch.sparse_features),
        )
