"""Final training with searched widths: each model of ``train`` is also built with a
mixed-width ``EmbeddingBagCollection`` (``<name>_mixed``) beside its uniform-width self, with
the same seeds and recipe.

DLRM, DCN-v2 and NASRec subnets need one width at their interaction, so their sparse arch
becomes a :class:`~torchrec_nas.embedding_search.modules.ProjectedSparseArch`: the tables at
their own widths, then a projection per feature to the token width.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from torchrec_nas.config import Config
from torchrec_nas.data.spec import DataSpec
from torchrec_nas.embedding_search.dims import embedding_bag_configs, load_embedding_dims
from torchrec_nas.embedding_search.modules import ProjectedSparseArch, use_embedding_dims
from torchrec_nas.stages.spread import compare_to_baselines
from torchrec_nas.train.optim import table_parameters

#: ``(name, build, options)`` as ``torchrec_nas.stages.models.final_candidates`` gives them.
Candidate = tuple[str, Any, dict[str, Any]]

#: The suffix of a mixed-width model's name.
MIXED = "_mixed"


def mixed_width_candidates(
    cfg: Config, spec: DataSpec, candidates: list[Candidate]
) -> list[Candidate]:
    """``candidates`` followed by each of them with ``cfg.train.embedding_dims``' widths.

    Raises:
        EmbeddingDimsError: a width that is not a multiple of 4, a feature of the data
            without a width, or a width for a feature not in the data (one line naming it).
    """
    path = cfg.train.embedding_dims
    if not path:
        return candidates
    dims = load_embedding_dims(path)
    token = cfg.space.embedding_dim
    tables = embedding_bag_configs(path, spec.tables(token))
    out = list(candidates)
    for name, build, options in candidates:

        def build_mixed(build: Any = build) -> nn.Module:
            return use_embedding_dims(build(), tables, token)

        out.append((name + MIXED, build_mixed, {**options, "embedding_dims": dims}))
    return out


def embedding_param_count(model: nn.Module) -> int:
    """Parameters of the embedding tables plus any per-feature projections."""
    count = sum(p.numel() for _, p in table_parameters(model))
    for m in model.modules():
        if isinstance(m, ProjectedSparseArch):
            count += sum(p.numel() for p in m.projections.parameters())
    return count


def compare_mixed(results: Mapping[str, Mapping[str, Any]]) -> None:
    """Adds ``versus_uniform`` to each ``<name>_mixed`` entry: its test metrics' mean minus
    those of ``<name>`` and whether the difference exceeds the seeds' spread."""
    for name in list(results):
        if name.endswith(MIXED) and name[: -len(MIXED)] in results:
            pair = {n: results[n] for n in (name, name[: -len(MIXED)])}
            results[name]["versus_uniform"] = compare_to_baselines(pair, name)  # type: ignore[index]
