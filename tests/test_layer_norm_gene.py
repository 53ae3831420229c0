"""The architecture's ``layer_norm`` gene: an architecture without NASRec's LayerNorms in a
space that has them (DLRM's and DCN-v2's form), in JSON, hashes, models, FLOPs and the
supernet."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
from helpers import tiny_tables
from test_baseline_space import (
    DENSE_ARCH,
    OVER_ARCH,
    _criteo_batch,
    _small_space,
    assert_computes_torchrec_dcn,
)

from torchrec_nas import NASRecModel, SearchSpace
from torchrec_nas.architecture import Architecture, ArchitectureError
from torchrec_nas.baseline_archs import dcn_architecture
from torchrec_nas.hardware.flops import architecture_costs


def test_json_and_hash_carry_the_gene_only_when_false() -> None:
    arch = SearchSpace.preset("nasrec-small").sample(random.Random(0))
    assert "layer_norm" not in arch.to_dict()  # files with LayerNorms stay as they were
    plain = dataclasses.replace(arch, layer_norm=False)
    assert plain.to_dict()["layer_norm"] is False
    assert Architecture.from_json(plain.to_json()) == plain
    assert plain.canonical_hash() != arch.canonical_hash()
    with pytest.raises(ArchitectureError, match="layer_norm must be true or false"):
        Architecture.from_dict({**arch.to_dict(), "layer_norm": "no"})
    # A mutation keeps the gene (the supernet cannot judge it).
    space = SearchSpace.preset("nasrec-small")
    assert all(not space.mutate(plain, random.Random(i)).layer_norm for i in range(20))


def test_dcn_without_norms_in_a_normed_space_is_torchrecs_dcn() -> None:
    # The space keeps its LayerNorms (the supernet's); the architecture drops them.
    space = SearchSpace.from_mapping(
        {**dataclasses.asdict(_small_space()), "head_tokens": [True, False]}
    )
    assert space.layer_norm
    arch = dcn_architecture(space, DENSE_ARCH, OVER_ARCH, layer_norm=False)
    tables = tiny_tables(num_features=26, rows=10)
    assert_computes_torchrec_dcn(space, arch, tables)
    normed = dataclasses.replace(arch, layer_norm=True)
    costs = [architecture_costs(a, space, 13, tables, None)["flops"] for a in (arch, normed)]
    assert costs[0] < costs[1]


def test_supernet_and_subnet_agree_without_norms() -> None:
    space = _small_space()
    arch = dataclasses.replace(space.sample(random.Random(3)), layer_norm=False)
    torch.manual_seed(0)
    model = NASRecModel(tiny_tables(num_features=26, rows=10), 13, space).train()
    batch = _criteo_batch(8)
    model(batch, arch)
    model.eval()
    with torch.no_grad():
        subnet = model.materialize(arch).eval()
        torch.testing.assert_close(subnet(batch), model(batch, arch))
        normed = model(batch, dataclasses.replace(arch, layer_norm=True))
    assert not [m for m in subnet.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert not torch.allclose(normed, model(batch, arch))


def test_final_training_keeps_an_architectures_choice(tmp_path: Path) -> None:
    # An architecture picked without LayerNorms trains, saves, loads and exports without
    # them; train.layer_norm_grid has nothing to choose for it (one trial per lr).
    from test_seeds import TINY

    from torchrec_nas.config import Config
    from torchrec_nas.runtime.local import LocalRuntime
    from torchrec_nas.stages import train_final
    from torchrec_nas.stages.export import InferenceModel, example_inputs, export_model
    from torchrec_nas.stages.models import load_model

    (tmp_path / "tiny.yaml").write_text(TINY)
    cfg = Config.load(tmp_path / "tiny.yaml")
    train = dataclasses.replace(cfg.train, layer_norm_grid=[True, False], lr_grid=[0.05])
    cfg = dataclasses.replace(cfg, train=train)
    data = LocalRuntime("cpu").data(cfg)
    arch = dataclasses.replace(cfg.space.sample(random.Random(1)), layer_norm=False)
    out = tmp_path / "run"
    results = train_final(cfg, out, arch, data)
    assert set(results["nasrec"]["lr_trials"]) == {"0.05"}
    assert results["nasrec"]["layer_norm"] is False
    assert results["nasrec"]["architecture"]["layer_norm"] is False
    model = load_model(out / "train" / "model_nasrec.pt")
    assert not [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    result = export_model(out / "train" / "model_nasrec.pt", tmp_path / "model.pt2")
    program = torch.export.load(result.program).module()
    dense, sparse = example_inputs(data.spec, model.tables, 5)
    with torch.no_grad():
        torch.testing.assert_close(
            program(dense, sparse), InferenceModel(model).eval()(dense, sparse)
        )


def test_another_architecture_in_the_same_train_directory_is_refused(tmp_path: Path) -> None:
    # A new best_arch.json trained into the last one's directory: one clear error, not a
    # checkpoint-loading traceback.
    from test_seeds import TINY

    from torchrec_nas.config import Config
    from torchrec_nas.runtime.local import LocalRuntime
    from torchrec_nas.stages import train_final

    (tmp_path / "tiny.yaml").write_text(TINY)
    cfg = Config.load(tmp_path / "tiny.yaml")
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(
            cfg.train, lr_grid=[0.05], baselines=dataclasses.replace(cfg.train.baselines, models=[])
        ),
    )
    data = LocalRuntime("cpu").data(cfg)
    arch = cfg.space.sample(random.Random(1))
    out = tmp_path / "run"
    first = train_final(cfg, out, arch, data)
    assert train_final(cfg, out, arch, data)["nasrec"]["test"] == first["nasrec"]["test"]
    other = dataclasses.replace(arch, layer_norm=False)
    with pytest.raises(ValueError, match=r"model.json: this trial trained another model"):
        train_final(cfg, out, other, data)


def test_show_says_when_an_architecture_has_no_layer_norms() -> None:
    from torchrec_nas.architecture_view import describe

    arch = SearchSpace.preset("nasrec-small").sample(random.Random(0))
    assert "no LayerNorms" not in describe(arch)
    assert "no LayerNorms after the blocks" in describe(dataclasses.replace(arch, layer_norm=False))
