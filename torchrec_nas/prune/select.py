"""Which channels to remove to reach a FLOPs target, given a score per channel."""

from __future__ import annotations

import torch

from torchrec_nas.prune.graph import ChannelGraph, GroupKey, Keep


def select_channels(
    graph: ChannelGraph,
    scores: dict[GroupKey, torch.Tensor],
    target_flops: float,
    normalize: bool = True,
    min_keep: int = 1,
) -> Keep:
    """The fewest lowest-scored channels whose removal brings ``graph``'s FLOPs to at most
    ``target_flops``.

    Channels are removed in ascending score over all groups; with ``normalize`` each score is
    divided by its group's mean first (magnitudes of different layers are not comparable, so
    each group competes by relative magnitude). Every group keeps at least ``min_keep``.

    Args:
        graph: the model's channel graph.
        scores: a score per channel of each prunable group (higher: more important).
        target_flops: FLOPs per sample to reach.
        normalize: divide scores by their group's mean.
        min_keep: channels each group keeps at least.

    Returns:
        The kept channels of every prunable group.

    Raises:
        ValueError: even the smallest model (every group at ``min_keep``) is above the target,
            or nothing in the model can be pruned.

    Example::

        keep = select_channels(graph, graph.importance(), 0.5 * graph.flops())
    """
    if not graph.groups:
        raise ValueError(
            "the model has nothing to prune: no block has an FC/gating/sum dense operator or an "
            "EFC/attention sparse operator whose channels can be removed"
        )
    candidates: list[tuple[float, GroupKey, int]] = []
    for key, size in graph.groups.items():
        score = scores[key].detach().double().cpu()
        if len(score) != size:
            raise ValueError(f"block {key[0]}'s {key[1]}: {len(score)} scores for {size} channels")
        if normalize:
            mean = float(score.abs().mean())
            score = score / mean if mean > 0 else score
        order = torch.argsort(score, stable=True)
        # The highest-scored min_keep channels of each group are never candidates.
        for idx in order[: max(0, size - min_keep)].tolist():
            candidates.append((float(score[idx]), key, idx))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))

    def sizes_after(count: int) -> dict[GroupKey, int]:
        sizes = dict(graph.groups)
        for _, key, _ in candidates[:count]:
            sizes[key] -= 1
        return sizes

    if graph.flops(sizes_after(len(candidates))) > target_flops:
        smallest = graph.flops(sizes_after(len(candidates)))
        raise ValueError(
            f"cannot prune to {target_flops:,.0f} FLOPs: the smallest model that keeps "
            f"{min_keep} channel(s) per group and every unprunable layer has {smallest:,} "
            f"({smallest / graph.flops():.0%} of the model's)"
        )
    lo, hi = 0, len(candidates)  # FLOPs fall as more channels go: the first count that fits
    while lo < hi:
        mid = (lo + hi) // 2
        if graph.flops(sizes_after(mid)) <= target_flops:
            hi = mid
        else:
            lo = mid + 1
    removed: dict[GroupKey, set[int]] = {key: set() for key in graph.groups}
    for _, key, idx in candidates[:lo]:
        removed[key].add(idx)
    return {
        key: torch.tensor([c for c in range(size) if c not in removed[key]], dtype=torch.long)
        for key, size in graph.groups.items()
    }
