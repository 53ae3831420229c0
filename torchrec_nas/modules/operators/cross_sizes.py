"""Sizes of the ``cross`` operator (DCN-v2's low-rank cross network), without torch.

The search space and :mod:`torchrec_nas.baseline_archs` read them without building a model; the
operator itself lives in :mod:`torchrec_nas.modules.operators.cross`.
"""

from __future__ import annotations

#: Cross layers of the ``cross`` operator (``dcn_num_layers`` of TorchRec's ``DLRM_DCN`` as
#: this project builds it by default).
CROSS_LAYERS = 3


def cross_rank(dense_dim: int) -> int:
    """Rank ``r`` of the cross layers of a ``cross`` block of width ``dense_dim``: a quarter of
    the width (at least 1), so width 256 gives DCN-v2's usual rank 64 and the rank shrinks with
    the block, as every elastic width does.

    Example::

        cross_rank(256)   # 64
    """
    return max(1, dense_dim // 4)
