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


def check_widths(widths: Sequence[int], where: str = "embedding_search.widths") -> None:
    """Fails with one line naming the first width that FBGEMM's fused kernels cannot take.

    Raises:
        ValueError: an empty list, a width that is not a positive multiple of 4, or a repeat.
    """
    if not widths:
        raise ValueError(f"{where}: needs at least one width")
    for w in widths:
        if w <= 0 or w % 4:
            raise ValueError(f"{where}: width {w} is not a positive multiple of 4")
    if len(set(widths)) != len(widths):
        raise ValueError(f"{where}: a width appears twice in {widths}")


def check_width_choices(widths: Sequence[int], embedding_dim: int) -> None:
    """Raises ``ValueError`` naming ``embedding_widths`` unless ``widths`` are sorted, distinct,
    positive multiples of 4 no larger than ``embedding_dim`` (empty: widths not searched)."""
    if not widths:
        return
    check_widths(widths, "embedding_widths")
    if list(widths) != sorted(widths):
        raise ValueError(f"embedding_widths must be sorted ascending: {widths}")
    for w in widths:
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


def step_width(width: int, ordered: Sequence[int], rng: random.Random) -> int:
    """``width`` moved one step up or down the sorted ``ordered`` (at random where both
    exist; ``width`` itself where it is the only choice).

    Example::

        step_width(8, [4, 8, 16], random.Random(0))   # 4 or 16
    """
    i = list(ordered).index(width)
    moves = [j for j in (i - 1, i + 1) if 0 <= j < len(ordered)]
    return ordered[rng.choice(moves)] if moves else width


def mutate_width(arch: Architecture, widths: Sequence[int], rng: random.Random) -> Architecture:
    """``arch`` with one feature's width moved one step along ``widths`` (up or down, at
    random where both exist); ``arch`` itself where it has no widths or one choice."""
    if not arch.embedding_dims or len(widths) < 2:
        return arch
    dims = dict(arch.embedding_dims)
    feature = rng.choice(sorted(dims))
    old = dims[feature]
    if old in widths:
        dims[feature] = step_width(old, widths, rng)
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
