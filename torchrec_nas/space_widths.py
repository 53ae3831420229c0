"""Embedding widths as genes of an architecture (the joint search): checking, sampling and
mutating ``Architecture.embedding_dims`` against a space's ``embedding_widths``.

Plain data; nothing here imports torch. The NASRec supernet's tables are ``embedding_dim``
wide and a searched width ``d`` uses the first ``d`` columns of a feature's pooled embedding
(prefix sharing, as AdaS&S), so every candidate width is a multiple of 4 (FBGEMM's kernels) no
larger than ``embedding_dim``.

Capping at the rows: a table of ``r`` rows, projected to the token width, represents ``r``
vectors, which any width ``d >= r`` represents exactly (``E = I``, the projection's rows are the
vectors); a wider table adds parameters and no expressiveness. So with ``rows`` a feature's
choices stop at :func:`width_cap`, the smallest candidate ``>= r`` (all candidates where none is
that large). Every choice list stays a prefix of the sorted candidates, so the narrowest width,
and a step down, are always allowed.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence

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


#: Sparse feature names, or ``{feature: table rows}`` to cap each feature's widths at its rows.
Features = Sequence[str] | Mapping[str, int]


def width_cap(widths: Sequence[int], rows: int) -> int:
    """The widest width worth searching for a table of ``rows`` rows: the smallest of
    ``widths`` at least ``rows``, or the largest where none is.

    Example::

        width_cap([4, 8, 16, 32], 6)     # 8
        width_cap([4, 8, 16, 32], 5000)  # 32
    """
    ordered = sorted(widths)
    return next((w for w in ordered if w >= rows), ordered[-1])


def capped_widths(widths: Sequence[int], rows: int | None) -> tuple[int, ...]:
    """The sorted ``widths`` up to :func:`width_cap` (all of them where ``rows`` is None).

    Example::

        capped_widths([4, 8, 16, 32], 6)   # (4, 8)
    """
    ordered = tuple(sorted(widths))
    if rows is None:
        return ordered
    cap = width_cap(ordered, rows)
    return tuple(w for w in ordered if w <= cap)


def allowed_widths(widths: Sequence[int], features: Features) -> dict[str, tuple[int, ...]]:
    """Each feature's width choices: capped at its rows where ``features`` maps names to
    rows, else all ``widths``.

    Example::

        allowed_widths([4, 8, 16], {"tiny": 4, "big": 1000})   # {"tiny": (4,), "big": (4, 8, 16)}
    """
    rows = features if isinstance(features, Mapping) else {}
    return {f: capped_widths(widths, rows.get(f)) for f in features}


def sample_embedding_dims(
    widths: Sequence[int], features: Features, rng: random.Random
) -> tuple[tuple[str, int], ...]:
    """One width per feature, drawn uniformly from ``widths`` (capped at the feature's rows
    where ``features`` maps names to rows), in ``features``' order.

    Example::

        sample_embedding_dims((4, 8, 16), ["c0", "c1"], random.Random(0))
        sample_embedding_dims((4, 8, 16), {"c0": 4, "c1": 900}, random.Random(0))  # c0 at 4
    """
    rows = features if isinstance(features, Mapping) else {}
    return tuple(sorted((f, rng.choice(capped_widths(widths, rows.get(f)))) for f in features))


def step_width(width: int, ordered: Sequence[int], rng: random.Random) -> int:
    """``width`` moved one step up or down the sorted ``ordered`` (at random where both
    exist; ``width`` itself where it is the only choice).

    Example::

        step_width(8, [4, 8, 16], random.Random(0))   # 4 or 16
    """
    i = list(ordered).index(width)
    moves = [j for j in (i - 1, i + 1) if 0 <= j < len(ordered)]
    return ordered[rng.choice(moves)] if moves else width


def mutate_width(
    arch: Architecture,
    widths: Sequence[int],
    rng: random.Random,
    rows: Mapping[str, int] | None = None,
) -> Architecture:
    """``arch`` with one feature's width moved one step along its choices (up or down, at
    random where both exist); ``arch`` itself where it has no widths or no feature has two
    choices.

    Args:
        arch: the architecture.
        widths: the candidate widths, sorted.
        rng: the random source.
        rows: table rows per feature: each feature's choices stop at :func:`width_cap`, and
            only features with two or more choices are drawn (a width over the cap moves to
            it). ``None``: every feature has all ``widths``.

    Example::

        child = mutate_width(arch, (4, 8, 16), random.Random(0), {"c0": 4, "c1": 900})
    """
    if not arch.embedding_dims or len(widths) < 2:
        return arch
    dims = dict(arch.embedding_dims)
    rows = rows or {}
    choices = {f: capped_widths(widths, rows.get(f)) for f in dims}
    movable = sorted(f for f in dims if len(choices[f]) > 1)
    if not movable:
        return arch
    feature = rng.choice(movable)
    old, ordered = dims[feature], choices[feature]
    if old in ordered:
        dims[feature] = step_width(old, ordered, rng)
    elif old in widths and old > ordered[-1]:
        dims[feature] = ordered[-1]  # over its cap: to the cap
    else:
        dims[feature] = rng.choice(list(ordered))
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
