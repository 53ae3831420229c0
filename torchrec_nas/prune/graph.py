"""Channel groups of a materialized NASRec model, and its rebuild with fewer channels.

Structured pruning removes whole *channels* from *groups*: the output channels of one block's
dense operator (group ``(i, "dense")``: rows of its linear layers, entries of its LayerNorm and
of its sparse-to-dense projection) and the output tokens of one block's sparse operator (group
``(i, "tokens")``: rows of its token map). When a channel goes, every reader of it loses the
matching input column: the dense and sparse inputs of later blocks (FC, gating, sum, dot
product, cross), the block's own dense-to-sparse projection and the classifier. Attention over
tokens stays consistent (a removed token is neither a query nor a key); the cross's residual
``x_{l+1} = x0 * (...) + x_l`` runs over ``x0``'s columns, which are sliced alike everywhere.

What is kept whole, because it cannot be removed consistently or would change what the
architecture means:

- the raw inputs (dense features and embedding tokens) and the embedding width (LayerNorms
  over tokens and attention heads run over it);
- the dense outputs of the dot product (a channel is a Gram entry whose count fixes the number
  of compressed tokens), the cross (its width fixes its rank), DLRM's dot and user operators;
- the tokens of user sparse operators, and the dense-to-sparse tokens (the space fixes their
  number);
- every output read by an operator whose input columns cannot be sliced (DLRM's dot, user
  operators).

The rebuilt model is an ordinary :class:`~torchrec_nas.models.NASRecSubnet` of the pruned
architecture (block widths are the kept counts) over a space whose width choices include those
counts, so it saves, loads, counts FLOPs and exports like any trained model.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from torchrec_nas.architecture import Architecture
from torchrec_nas.hardware.flops import count_flops, model_layers
from torchrec_nas.models import NASRecSubnet
from torchrec_nas.modules.operators.attention import TokenAttention
from torchrec_nas.modules.operators.binary import BinaryCombination
from torchrec_nas.modules.operators.cross import CrossInteraction
from torchrec_nas.modules.operators.dot import DotProduct
from torchrec_nas.modules.operators.efc import EmbeddedFC
from torchrec_nas.modules.operators.fc import FullyConnected
from torchrec_nas.modules.subnet import SubnetBlock
from torchrec_nas.space import SearchSpace

#: ``(block index, "dense" | "tokens")``.
GroupKey = tuple[int, str]
#: The kept channel indices (sorted) of pruned groups; a group not named keeps all.
Keep = dict[GroupKey, torch.Tensor]

_WIDTH_OPS = (FullyConnected, BinaryCombination)  # dense operators whose width can shrink
_TOKEN_OPS = (EmbeddedFC, TokenAttention)  # sparse operators whose tokens can go
_SLICEABLE_DENSE = (FullyConnected, BinaryCombination, DotProduct, CrossInteraction)


def _take(t: torch.Tensor, dim: int, index: torch.Tensor | None) -> torch.Tensor:
    return t.detach().clone() if index is None else t.detach().index_select(dim, index).clone()


class ChannelGraph:
    """Which channels of a materialized model can be pruned, how much each matters by
    magnitude, what the model costs with fewer, and the rebuilt smaller model.

    Args:
        model: a materialized model (as ``train`` saves it).
        dense_in_features: number of dense features.

    Raises:
        ValueError: ``model`` is not a NASRec model (baselines are not pruned here).

    Example::

        graph = ChannelGraph(load_model("runs/demo/train/model_nasrec.pt"), 13)
        keep = {(0, "dense"): torch.tensor([0, 2, 5])}
        smaller = graph.rebuild(keep)           # block 0's dense width is now 3
    """

    def __init__(self, model: nn.Module, dense_in_features: int) -> None:
        if not isinstance(model, NASRecSubnet):
            raise ValueError(
                f"cannot prune a {type(model).__name__}: only NASRec models (model_nasrec.pt) "
                "are pruned"
            )
        self.model = model
        self.arch = model.arch
        self.space = model.space
        self.dense_in = dense_in_features
        self.num_sparse = sum(len(t.feature_names) for t in model.tables)
        self.extra_tokens = self.space.dense_to_sparse_tokens if self.space.interaction_bits else 0
        inter = model.interaction
        self.blocks: dict[int, SubnetBlock] = {}
        for i, block in zip(inter.live_index, inter.blocks):
            assert isinstance(block, SubnetBlock)
            self.blocks[i] = block
        self.groups = self._prunable_groups()

    def _prunable_groups(self) -> dict[GroupKey, int]:
        frozen: set[GroupKey] = set()
        for block in self.blocks.values():
            cfg = block.config
            dense_readers = block.dense is not None and not isinstance(
                block.dense, _SLICEABLE_DENSE
            )
            if dense_readers:
                frozen.update((j - 1, "dense") for j in cfg.dense_inputs if j > 0)
            token_readers = (dense_readers and block.reads_sparse) or (
                block.sparse is not None and not isinstance(block.sparse, _TOKEN_OPS)
            )
            if token_readers:
                frozen.update((j - 1, "tokens") for j in cfg.sparse_inputs if j > 0)
        groups: dict[GroupKey, int] = {}
        for i, block in self.blocks.items():
            cfg = block.config
            if isinstance(block.dense, _WIDTH_OPS) and (i, "dense") not in frozen:
                groups[(i, "dense")] = cfg.dense_dim
            if isinstance(block.sparse, _TOKEN_OPS) and (i, "tokens") not in frozen:
                groups[(i, "tokens")] = cfg.sparse_tokens
        return groups

    def importance(self) -> dict[GroupKey, torch.Tensor]:
        """Magnitude of every channel of every prunable group: the L2 norm of the weights that
        make it (rows of the operator's layers, and of the sparse-to-dense projection), times
        the absolute gain of the LayerNorm that follows (dense channels; a token's LayerNorm
        gain is shared by all tokens)."""
        scores: dict[GroupKey, torch.Tensor] = {}
        with torch.no_grad():
            for i, kind in self.groups:
                block = self.blocks[i]
                layers: list[nn.Linear] = []
                if isinstance(block.sparse, EmbeddedFC) and kind == "tokens":
                    layers.append(block.sparse.token_mixing)
                elif isinstance(block.sparse, TokenAttention) and kind == "tokens":
                    layers.append(block.sparse.queries)
                elif isinstance(block.dense, FullyConnected):
                    layers.append(block.dense.linear)
                elif isinstance(block.dense, BinaryCombination):
                    layers += [block.dense.left, block.dense.right]
                if kind == "dense" and block.sparse_to_dense is not None:
                    layers.append(block.sparse_to_dense)
                square = torch.stack([layer.weight.pow(2).sum(dim=1) for layer in layers])
                score = square.sum(dim=0).sqrt()
                if kind == "dense" and block.dense_norm is not None:
                    score = score * block.dense_norm.weight.abs()
                scores[(i, kind)] = score.cpu()
        return scores

    def sizes(self, keep: Keep) -> dict[GroupKey, int]:
        """The width of every prunable group under ``keep``."""
        return {k: (len(keep[k]) if k in keep else n) for k, n in self.groups.items()}

    def architecture(self, sizes: dict[GroupKey, int]) -> Architecture:
        """The architecture with the groups' widths set to ``sizes``."""
        blocks = list(self.arch.blocks)
        for (i, kind), n in sizes.items():
            if kind == "dense":
                blocks[i] = dataclasses.replace(blocks[i], dense_dim=n)
            else:
                blocks[i] = dataclasses.replace(blocks[i], sparse_tokens=n)
        return dataclasses.replace(self.arch, blocks=tuple(blocks))

    def space_for(self, arch: Architecture) -> SearchSpace:
        """The model's space with ``arch``'s widths added to its choices (the largest stay)."""
        dims = {b.dense_dim for b in arch.blocks} | set(self.space.dense_dims)
        tokens = {b.sparse_tokens for b in arch.blocks} | set(self.space.sparse_tokens)
        return dataclasses.replace(
            self.space, dense_dims=tuple(sorted(dims)), sparse_tokens=tuple(sorted(tokens))
        )

    def flops(self, sizes: dict[GroupKey, int] | None = None) -> int:
        """FLOPs per sample (:func:`~torchrec_nas.hardware.flops.count_flops`) at ``sizes``
        (default: the model as it is)."""
        arch = self.architecture(sizes or {})
        layers = model_layers(arch, self.space_for(arch), self.dense_in, self.model.tables)
        return count_flops(layers)

    # -- the rebuild -------------------------------------------------------------------------

    def _kept(self, output: int, kind: str, keep: Keep) -> tuple[torch.Tensor, int]:
        """Kept channels (dense) or token positions of ``output`` and its old width."""
        if output == 0:
            n = self.dense_in if kind == "dense" else self.num_sparse
            return torch.arange(n), n
        b = self.arch.blocks[output - 1]
        if kind == "dense":
            return keep.get((output - 1, "dense"), torch.arange(b.dense_dim)), b.dense_dim
        ops = keep.get((output - 1, "tokens"), torch.arange(b.sparse_tokens))
        extra = self.extra_tokens if b.dense_to_sparse else 0
        positions = torch.cat([ops, torch.arange(b.sparse_tokens, b.sparse_tokens + extra)])
        return positions, b.sparse_tokens + extra

    def _columns(self, inputs: tuple[int, ...] | list[int], kind: str, keep: Keep) -> torch.Tensor:
        """Kept columns of the concatenation of ``inputs`` (in sorted order)."""
        parts, offset = [], 0
        for j in sorted(inputs):
            kept, width = self._kept(j, kind, keep)
            parts.append(kept + offset)
            offset += width
        return torch.cat(parts)

    def _block_tensors(self, i: int, keep: Keep) -> dict[str, torch.Tensor]:
        block, cfg = self.blocks[i], self.blocks[i].config
        emb = self.space.embedding_dim
        kd, kt = keep.get((i, "dense")), keep.get((i, "tokens"))
        dcols = self._columns(cfg.dense_inputs, "dense", keep)
        tcols = self._columns(cfg.sparse_inputs, "tokens", keep)
        out: dict[str, torch.Tensor] = {}

        def linear(
            name: str, layer: nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None
        ) -> None:
            out[f"{name}.weight"] = _take(_take(layer.weight, 0, rows), 1, cols)
            if layer.bias is not None:
                out[f"{name}.bias"] = _take(layer.bias, 0, rows)

        d = block.dense
        if isinstance(d, FullyConnected):
            linear("dense.linear", d.linear, kd, dcols)
        elif isinstance(d, BinaryCombination):
            first, *rest = sorted(cfg.dense_inputs)
            linear("dense.left", d.left, kd, self._columns([first], "dense", keep))
            right = self._columns(rest or [first], "dense", keep)
            linear("dense.right", d.right, kd, right)
        elif isinstance(d, DotProduct):
            linear("dense.projection", d.projection, None, dcols)
            shifted = torch.cat([torch.zeros(1, dtype=torch.long), tcols + 1])
            linear("dense.compression", d.compression, None, shifted)
        elif isinstance(d, CrossInteraction):
            # x0 = [dense inputs, flattened tokens]: token t's channels follow every dense column.
            old_dense = sum(self._kept(j, "dense", keep)[1] for j in cfg.dense_inputs)
            token_x0 = (tcols.unsqueeze(1) * emb + torch.arange(emb)).flatten()
            x0 = torch.cat([dcols, old_dense + token_x0])
            net = d.crossnet
            for layer, (v, w, b) in enumerate(zip(net.V_kernels, net.W_kernels, net.bias)):
                out[f"dense.crossnet.V_kernels.{layer}"] = _take(v, 1, x0)
                out[f"dense.crossnet.W_kernels.{layer}"] = _take(w, 0, x0)
                out[f"dense.crossnet.bias.{layer}"] = _take(b, 0, x0)
            linear("dense.projection", d.projection, None, x0)
        s = block.sparse
        if isinstance(s, EmbeddedFC):
            linear("sparse.token_mixing", s.token_mixing, kt, tcols)
        elif isinstance(s, TokenAttention):
            linear("sparse.queries", s.queries, kt, tcols)
        if block.dense_norm is not None:
            out["dense_norm.weight"] = _take(block.dense_norm.weight, 0, kd)
            out["dense_norm.bias"] = _take(block.dense_norm.bias, 0, kd)
        if block.sparse_to_dense is not None:
            linear("sparse_to_dense", block.sparse_to_dense, kd, None)
        if block.dense_to_sparse is not None:
            linear("dense_to_sparse", block.dense_to_sparse, None, kd)
        return out

    def rebuild(self, keep: Keep) -> NASRecSubnet:
        """A new model of ordinary layers of the kept sizes, holding copies of the kept
        weights (the embedding tables are copied whole).

        Args:
            keep: the kept channels of pruned groups (each a sorted index tensor, non-empty).

        Raises:
            ValueError: ``keep`` names a group that cannot be pruned, or keeps none of one.
        """
        for key, kept in keep.items():
            if key not in self.groups:
                raise ValueError(f"block {key[0]}'s {key[1]} cannot be pruned (kept whole)")
            if len(kept) < 1 or len(kept) > self.groups[key]:
                raise ValueError(f"block {key[0]}'s {key[1]}: keeps {len(kept)} channels")
        keep = {k: torch.as_tensor(v, dtype=torch.long).sort().values for k, v in keep.items()}
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        for position, i in enumerate(self.blocks):
            for name, tensor in self._block_tensors(i, keep).items():
                state[f"interaction.blocks.{position}.{name}"] = tensor
        n = len(self.arch.blocks)
        dense, width = self._kept(n, "dense", keep)
        columns = dense
        if self.arch.head_tokens:  # the classifier reads the last block's tokens too
            tokens, _ = self._kept(n, "tokens", keep)
            emb = self.space.embedding_dim
            token_cols = width + (tokens.unsqueeze(1) * emb + torch.arange(emb)).flatten()
            columns = torch.cat([dense, token_cols])
        classifier = self.model.interaction.classifier
        state["interaction.classifier.weight"] = _take(classifier.weight, 1, columns)
        arch = self.architecture(self.sizes(keep))
        pruned = NASRecSubnet.build(self.model.tables, self.dense_in, self.space_for(arch), arch)
        pruned.load_state_dict(state)
        device = next(self.model.parameters()).device
        return pruned.to(device).train(self.model.training)
