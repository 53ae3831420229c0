"""Export a trained model as a ``torch.export`` program, optionally with quantized embeddings.

The program takes what TorchRec models take, ``(dense_features [B, D], sparse_features
KeyedJaggedTensor)``, returns logits ``[B]``, and has a dynamic batch dimension. Beside it go the
architecture JSON (NASRec models) and the embedding table configs, so a server can check what
it feeds the program.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.export import Dim, ExportedProgram, ShapesCollection
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from torchrec_nas import storage
from torchrec_nas.data import DataSpec
from torchrec_nas.models import BatchModel, NASRecSubnet
from torchrec_nas.stages.models import load_model, read_model_file
from torchrec_nas.train.checkpoint import write_json_atomic

Quantization = Literal["int8", "int4"]

#: The embedding weight dtype of each ``--quantize`` choice (TorchRec's names for them).
_FAKE_CLASSES_REGISTERED = False

QUANTIZED_DTYPES: dict[str, torch.dtype] = {"int8": torch.qint8, "int4": torch.quint4x2}


class InferenceModel(nn.Module):
    """A saved model with TorchRec's tensor contract: ``forward(dense_features,
    sparse_features) -> logits [B]``.

    Args:
        model: a :class:`~torchrec_nas.models.NASRecSubnet` or a
            :class:`~torchrec_nas.models.BatchModel` (DLRM, DCN-v2), as ``load_model`` gives.

    Example::

        model = InferenceModel(load_model("runs/demo/train/model_nasrec.pt"))
        logits = model(batch.dense_features, batch.sparse_features)   # [B]
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not isinstance(model, (NASRecSubnet, BatchModel)):
            raise TypeError(f"cannot export a {type(model).__name__}: not a trained model")
        self.model = model

    def forward(
        self, dense_features: torch.Tensor, sparse_features: KeyedJaggedTensor
    ) -> torch.Tensor:
        model = self.model
        if isinstance(model, BatchModel):
            logits: torch.Tensor = model.model(dense_features, sparse_features).squeeze(-1)
            return logits
        assert isinstance(model, NASRecSubnet)
        tokens = model.sparse_arch(sparse_features) if model.sparse_arch is not None else None
        result: torch.Tensor = model.interaction(dense_features, tokens)
        return result


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote.

    Args:
        program: the ``.pt2`` file.
        embedding_configs: the JSON of the embedding tables.
        architecture: the architecture JSON (``None`` for baselines).
        table_bytes: bytes of the embedding tables before quantization.
        exported_table_bytes: bytes of the embedding tables in the program.
    """

    program: str
    embedding_configs: str
    architecture: str | None
    table_bytes: int
    exported_table_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def table_bytes(model: nn.Module) -> int:
    """Bytes held by the embedding tables of ``model``: the float tables' parameters, or the
    storage of the quantized tables' batched kernels (rows with their scale and bias)."""
    from fbgemm_gpu.split_table_batched_embeddings_ops_inference import (
        IntNBitTableBatchedEmbeddingBagsCodegen,
    )

    total = 0
    for module in model.modules():
        if isinstance(module, EmbeddingBagCollection):
            total += sum(p.numel() * p.element_size() for p in module.parameters())
        elif isinstance(module, IntNBitTableBatchedEmbeddingBagsCodegen):
            for storage in (module.weights_host, module.weights_dev, module.weights_uvm):
                total += storage.numel() * storage.element_size()
    return total


def quantize_embeddings(model: nn.Module, quantize: Quantization) -> nn.Module:
    """A copy of ``model`` whose ``EmbeddingBagCollection`` s are TorchRec's quantized
    inference ones (``QuantEmbeddingBagCollection``), every table of weight dtype
    ``quantize``; dense layers stay in float.

    Example::

        quantized = quantize_embeddings(InferenceModel(model), "int8")
    """
    if quantize not in QUANTIZED_DTYPES:
        raise ValueError(f"--quantize {quantize!r}: choose one of {sorted(QUANTIZED_DTYPES)}")
    from torchrec.inference.modules import quantize_inference_model
    from torchrec.quant.embedding_modules import quant_prep_enable_register_tbes

    dtype = QUANTIZED_DTYPES[quantize]
    model = copy.deepcopy(model)
    names = [
        config.name
        for ebc in model.modules()
        if isinstance(ebc, EmbeddingBagCollection)
        for config in ebc.embedding_bag_configs()
    ]
    # Registered as submodules, the quantized tables' kernels are visible to table_bytes.
    quant_prep_enable_register_tbes(model, [EmbeddingBagCollection])
    quantized: nn.Module = quantize_inference_model(
        model, per_table_weight_dtype=dict.fromkeys(names, dtype)
    )
    return quantized.eval()


def example_inputs(
    spec: DataSpec, tables: list[EmbeddingBagConfig], batch_size: int = 4
) -> tuple[torch.Tensor, KeyedJaggedTensor]:
    """A synthetic ``(dense_features, sparse_features)`` of ``batch_size`` rows to trace with.

    Rows hold one or two ids per feature, so the trace does not assume one id per feature.
    """
    keys = [f for t in tables for f in t.feature_names]
    rows = {f: t.num_embeddings for t in tables for f in t.feature_names}
    generator = torch.Generator().manual_seed(0)
    lengths = (torch.arange(batch_size * len(keys)) % 3 == 0).to(torch.int32) + 1
    values = torch.cat(
        [
            torch.randint(0, rows[key], (int(n),), generator=generator)
            for key, key_lengths in zip(keys, lengths.view(len(keys), batch_size))
            for n in key_lengths
        ]
    )
    sparse = KeyedJaggedTensor.from_lengths_sync(keys=keys, values=values, lengths=lengths)
    return torch.randn(batch_size, len(spec.dense_names), generator=generator), sparse


def export_program(
    model: nn.Module, inputs: tuple[torch.Tensor, KeyedJaggedTensor]
) -> ExportedProgram:
    """``torch.export`` of ``model`` (tensor contract, eval mode) with a dynamic batch size
    and a dynamic number of ids."""
    global _FAKE_CLASSES_REGISTERED
    if not _FAKE_CLASSES_REGISTERED:
        from torchrec.pt2.utils import register_fake_classes

        # TorchRec's quantized tables keep fbgemm script objects, which export must fake.
        register_fake_classes()
        _FAKE_CLASSES_REGISTERED = True
    dense, sparse = inputs
    shapes = ShapesCollection()
    shapes[dense] = {0: Dim.AUTO}
    shapes[sparse.values()] = {0: Dim.AUTO}
    shapes[sparse.lengths()] = {0: Dim.AUTO}
    with torch.no_grad():
        # An eager call first: TorchRec's quantized collections cache their feature order
        # in a buffer on their first call, which export cannot trace.
        model.eval()(dense, sparse)
        program = torch.export.export(model.eval(), inputs, dynamic_shapes=shapes)
    # The example KeyedJaggedTensor would need unsafe unpickling to load again.
    program.example_inputs = None  # type: ignore[assignment]
    return program


def export_model(
    model_path: str | Path,
    out_path: str | Path,
    quantize: Quantization | None = None,
) -> ExportResult:
    """Writes the ``torch.export`` program of a model saved by ``train`` to ``out_path``
    (``.pt2``), and beside it ``<stem>.embedding_configs.json`` and, for NASRec models,
    ``<stem>.architecture.json``.

    Args:
        model_path: a ``model_<name>.pt`` written by ``train``.
        out_path: the ``.pt2`` to write.
        quantize: ``"int8"`` or ``"int4"`` to store the embedding tables quantized
            (TorchRec's ``quantize_inference_model``); dense layers stay in float.

    Example::

        export_model("runs/demo/train/model_nasrec.pt", "model.pt2")
        program = torch.export.load("model.pt2").module()
        logits = program(dense_features, kjt)   # [B]
    """
    state = read_model_file(model_path)
    spec = DataSpec.from_dict(state["spec"])
    model = InferenceModel(load_model(model_path)).eval()
    tables = [
        config
        for ebc in model.modules()
        if isinstance(ebc, EmbeddingBagCollection)
        for config in ebc.embedding_bag_configs()
    ]
    if not tables and isinstance(model.model, NASRecSubnet):
        tables = model.model.tables
    before = table_bytes(model)
    if quantize is not None:
        model = quantize_embeddings(model, quantize)  # type: ignore[assignment]
    program = export_program(model, example_inputs(spec, tables))
    out = str(out_path)
    with storage.local_file_for_writing(out) as local:
        torch.export.save(program, str(local))
    stem = storage.name(out).rsplit(".", 1)[0]
    configs = storage.join(storage.parent(out), f"{stem}.embedding_configs.json")
    write_json_atomic(configs, [_table_dict(t) for t in tables])
    arch_path = None
    if state["kind"] == "nasrec":
        arch_path = storage.join(storage.parent(out), f"{stem}.architecture.json")
        write_json_atomic(arch_path, state["architecture"])
    return ExportResult(
        out,
        configs,
        arch_path,
        before,
        table_bytes(model),
    )


def _table_dict(table: EmbeddingBagConfig) -> dict[str, Any]:
    return {
        "name": table.name,
        "embedding_dim": table.embedding_dim,
        "num_embeddings": table.num_embeddings,
        "feature_names": list(table.feature_names),
        "pooling": table.pooling.name,
    }
