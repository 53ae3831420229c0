"""Embedding widths of the joint search inside NASRec models: the supernet narrows each
feature's token to its width, a subnet builds its tables at their widths.

In the supernet every table is ``D = space.embedding_dim`` wide; feature ``f`` at width
``d < D`` keeps the first ``d`` columns of its pooled embedding and is zero-padded back to
``D`` before the interaction (prefix sharing, as AdaS&S), so the interaction is unchanged and
no weight is added for scoring. A subnet builds table ``f`` at ``d`` columns and pads it with
a :class:`~torchrec_nas.embedding_search.modules.ProjectedSparseArch` projection
``nn.Linear(d, D)`` that starts as the same zero padding: a subnet materialized from the
supernet computes what the supernet scored, and one trained from scratch may learn the map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchrec.models.dlrm import SparseArch
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from torchrec_nas.architecture import Architecture
from torchrec_nas.embedding_search.modules import ProjectedSparseArch


def narrow_tokens(
    tokens: torch.Tensor, names: Sequence[str], widths: Mapping[str, int] | None
) -> torch.Tensor:
    """``tokens [B, F, D]`` with columns ``d_f..D`` of feature ``names[f]`` zeroed (features
    without a width keep all ``D``); ``tokens`` itself where ``widths`` is ``None``.

    Example::

        narrow_tokens(tokens, ["c0", "c1"], {"c0": 4, "c1": 16})   # c0: 4 columns, then 0s
    """
    if widths is None:
        return tokens
    dim = tokens.shape[-1]
    limits = torch.tensor([widths.get(f, dim) for f in names], device=tokens.device)
    keep = torch.arange(dim, device=tokens.device)[None, :] < limits[:, None]
    return tokens * keep.to(tokens.dtype)


def subnet_sparse_arch(
    ebc: EmbeddingBagCollection, arch: Architecture, token_width: int
) -> nn.Module:
    """TorchRec's ``SparseArch`` over ``ebc``, or, where ``arch`` has embedding widths (and
    ``ebc`` is built at them), a ``ProjectedSparseArch`` padding each narrow feature to
    ``token_width`` (see the module)."""
    if arch.embedding_dims is None:
        return SparseArch(ebc)
    return ProjectedSparseArch(ebc, token_width)


def load_prefixes(ebc: EmbeddingBagCollection, full: Mapping[str, torch.Tensor]) -> None:
    """Loads into ``ebc`` (tables at any widths) the first columns of the full-width tables'
    state ``full`` (an ``EmbeddingBagCollection.state_dict()`` with the same keys)."""
    own = ebc.state_dict()
    ebc.load_state_dict({k: full[k][:, : v.shape[1]] for k, v in own.items()})
