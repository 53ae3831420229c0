"""Structured pruning of a trained NASRec model (NASRec journal paper, section 6.1): whole
output channels of dense layers and whole tokens of sparse operators are removed, ranked by
magnitude or by a learned mask, in a progressive schedule with fine-tuning between steps, and
the model is rebuilt of smaller ordinary layers.

Example::

    from torchrec_nas.prune import ChannelGraph, select_channels

    graph = ChannelGraph(model, dense_in_features=13)
    keep = select_channels(graph, graph.importance(), 0.5 * graph.flops())
    smaller = graph.rebuild(keep)
"""

from torchrec_nas.prune.graph import ChannelGraph, GroupKey, Keep
from torchrec_nas.prune.options import PruneOptions, parse_targets
from torchrec_nas.prune.select import select_channels

__all__ = [
    "ChannelGraph",
    "GroupKey",
    "Keep",
    "PruneOptions",
    "parse_targets",
    "select_channels",
]
