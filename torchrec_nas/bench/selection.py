"""Subnets that cover a search space: stratified by FLOPs, both extremes included."""

from __future__ import annotations

import random
from collections.abc import Callable

from torchrec_nas.space import Architecture, SearchSpace
from torchrec_nas.train.sampling import largest_path, smallest_path


def stratified_subnets(
    space: SearchSpace,
    flops: Callable[[Architecture], float],
    count: int,
    seed: int,
    pool: int = 512,
    draws: int = 16,
) -> list[Architecture]:
    """``count`` architectures with distinct canonical hashes spread over the FLOPs range.

    The largest and the smallest path (:func:`largest_path`, :func:`~torchrec_nas.train.sampling.smallest_path` reading only raw inputs; of
    ``draws`` operator draws each, the one with the most, and the fewest, FLOPs) are always
    included; the other ``count - 2`` are one draw from each of ``count - 2`` equal quantile
    strata of ``pool`` sampled architectures sorted by FLOPs. Deterministic in ``seed``.

    Args:
        space: the search space.
        flops: FLOPs per sample of an architecture.
        count: how many subnets (at least 2).
        seed: seeds the samples and the draws.
        pool: how many architectures are sampled to form the strata.
        draws: operator draws of each extreme path.

    Example::

        archs = stratified_subnets(space, lambda a: costs(a)["flops"], 24, seed=2018)
    """
    if count < 2:
        raise ValueError(f"stratified_subnets: count must be at least 2, got {count}")
    rng = random.Random(f"{seed}:ranking")
    extremes = [
        max((largest_path(space, rng) for _ in range(draws)), key=flops),
        min((smallest_path(space, rng, True) for _ in range(draws)), key=flops),
    ]
    taken = {a.canonical_hash() for a in extremes}
    sampled = [
        a
        for a in space.enumerate_samples(rng, max(pool, 2 * count))
        if a.canonical_hash() not in taken
    ]
    sampled.sort(key=lambda a: (flops(a), a.canonical_hash()))
    inner = count - 2
    chosen: list[Architecture] = []
    for k in range(inner):
        stratum = sampled[k * len(sampled) // inner : (k + 1) * len(sampled) // inner]
        if stratum:
            chosen.append(rng.choice(stratum))
    return [extremes[1], *chosen, extremes[0]]
