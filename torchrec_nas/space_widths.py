"""Embedding widths as genes of an architecture (the joint search): checking, sampling and
mutating ``Architecture.embedding_dims`` against a space's ``embedding_widths``.

Plain data; nothing here imports torch. The NASRec supernet's tables are ``embedding_dim``
wide and a searched width ``d`` uses the first ``d`` columns of a feature's pooled embedding
(prefix sharing, as AdaS&S), so every candidate width is a multiple of 4 (FBGEMM's kernels) no
larger than ``embedding_dim``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from torchrec_nas.architecture import Architecture, ArchitectureError


def check_width_choices(widths: Sequence[int], embedding_dim: int) -> None:
    """Raises ``ValueError`` naming ``embedding_widths`` unless ``widths`` are sorted, distinct,
    positive multiples of 4 no larger than ``embedding_dim`` (empty: widths not searched)."""
    if list(widths) != sorted(set(widths)):
        raise ValueError(f"embedding_widths must be sorted ascending without repeats: {widths}")
    for w in widths:
        if w < 1 or w % 4:
            raise ValueError(f"embedding_widths: {w} is not a positive multiple of 4")
        if w > embedding_dim:
            raise ValueError(
                f"embedding_widths: {w} is wider than the supernet's tables "
                f"(embedding_dim {embedding_dim}); a width is a prefix of a table's row"
            )


def sample_embedding_dims(
    widths: Sequence[int], features: Sequence[str], rng: random.Random
) -> tuple[tuple[str, int], ...]:
    """One width per feature, drawn uniformly from ``widths``, in ``features``' order.

    Example::

        sample_embedding_dims((4, 8, 16), ["c0", "c1"], random.Random(0))
    """
    return tuple(sorted((f, rng.choice(widths)) for f in features))


def mutate_width(arch: Architecture, widths: Sequence[int], rng: random.Random) -> Architecture:
    """``arch`` with one feature's width moved one step along ``widths`` (up or down, at
    random where both exist); ``arch`` itself where it has no widths or one choice."""
    if not arch.embedding_dims or len(widths) < 2:
        return arch
    dims = dict(arch.embedding_dims)
    feature = rng.choice(sorted(dims))
    old = dims[feature]
    if old in widths:
        k = list(widths).index(old)
        steps = [j for j in (k - 1, k + 1) if 0 <= j < len(widths)]
        dims[feature] = widths[rng.choice(steps)]
    else:
        dims[feature] = rng.choice(list(widths))
    return dataclasses.replace(arch, embedding_dims=tuple(dims.items()))


def validate_embedding_dims(arch: Architecture, widths: Sequence[int]) -> None:
    """Raises :class:`ArchitectureError` naming the feature whose width is not among
    ``widths`` (an architecture without widths always fits)."""
    if arch.embedding_dims is None:
        return
    if not widths:
        raise ArchitectureError("embedding_dims: the space does not search embedding widths")
    for feature, width in arch.embedding_dims:
        if width not in widths:
            raise ArchitectureError(
                f"embedding_dims: feature {feature!r}: width {width} is not among the space's "
                f"embedding_widths {list(widths)}"
            )
