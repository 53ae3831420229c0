"""What an architecture is: plain data (frozen dataclasses, JSON) and its canonical form.

Nothing here imports torch. An :class:`Architecture` is a stack of choice blocks. Block ``i``
(0-based) reads earlier *outputs* by index: output 0 is the raw input (the dense features, and
the pooled embeddings as tokens), output ``k >= 1`` is the output of block ``k - 1``. Each block
has a dense path and a sparse path:

- a dense operator (for example ``fc``, ``gating``, ``sum``, ``dot``) over its dense inputs,
  concatenated along features, producing ``dense_dim`` features;
- a sparse operator (for example ``efc``, ``attention``) over its sparse inputs, concatenated
  along tokens, producing ``sparse_tokens`` tokens of the embedding width;
- ``dense_to_sparse``: the dense result is projected to extra tokens appended to the sparse
  output; ``sparse_to_dense``: a factorization-machine term of the sparse result is added to the
  dense output. Both read the operators' results before these bits apply, so they never form a
  cycle.

The classifier reads the last block's dense output and, when the architecture's ``head_tokens``
is true (NASRec's head), its sparse output too. What an operator is (binary,
reading sparse inputs) comes from :mod:`torchrec_nas.modules.operators.registry`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.config_utils import ConfigError, from_mapping
from torchrec_nas.modules.operators.registry import operator_spec

#: Version of the architecture JSON format written by :meth:`Architecture.to_dict`.
ARCHITECTURE_JSON_VERSION = 1
#: The operator name of a path that cannot reach the logit, in the canonical form.
NO_OPERATOR = "-"


class ArchitectureError(ValueError):
    """An architecture that does not fit its search space; the message names block and field."""


@dataclass(frozen=True)
class BlockConfig:
    """The choices of one block.

    Args:
        dense_op: a dense operator of the space (for example ``fc``, ``gating``, ``sum``,
            ``dot``, or a user operator's name).
        sparse_op: a sparse operator of the space (for example ``efc``, ``attention``).
        dense_dim: width of the dense output.
        sparse_tokens: number of tokens the sparse operator outputs.
        dense_inputs: indices of earlier outputs feeding the dense path (0 = raw input).
        sparse_inputs: indices of earlier outputs feeding the sparse path.
        dense_to_sparse: append projected dense tokens to the sparse output.
        sparse_to_dense: add a factorization-machine term of the sparse output to the dense one.
        weight_bits: weight precision of the block's layers (``None``: full precision).
        activation_bits: activation precision of the block's layers (``None``: full precision).

    Example::

        BlockConfig("fc", "efc", 256, 32, dense_inputs=(0,), sparse_inputs=(0,))
    """

    dense_op: str
    sparse_op: str
    dense_dim: int
    sparse_tokens: int
    dense_inputs: tuple[int, ...]
    sparse_inputs: tuple[int, ...]
    dense_to_sparse: bool = False
    sparse_to_dense: bool = False
    weight_bits: int | None = None
    activation_bits: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dense_inputs"] = list(self.dense_inputs)
        d["sparse_inputs"] = list(self.sparse_inputs)
        if self.weight_bits is None and self.activation_bits is None:
            del d["weight_bits"], d["activation_bits"]
        return d


@dataclass(frozen=True)
class Architecture:
    """A subnet of the supernet: one :class:`BlockConfig` per block. Plain data.

    Args:
        blocks: the blocks' choices.
        head_tokens: whether the classifier reads the last block's tokens beside its dense
            output (NASRec's head). DLRM's and DCN-v2's final layer reads the dense output
            only; a space lists which values it allows (``SearchSpace.head_tokens``).
        embedding_dims: per-feature embedding widths as sorted ``(feature, width)`` pairs
            (the joint search's genes; see ``SearchSpace.embedding_widths``), or ``None``
            when widths are not searched (every table at the space's ``embedding_dim``).
            JSON: a ``{feature: width}`` object, absent when ``None``.
        layer_norm: whether the blocks' outputs pass through NASRec's LayerNorms (in a space
            that has them, ``SearchSpace.layer_norm``; a space without them has none for any
            architecture). DLRM and DCN-v2 have none. The supernet cannot judge this gene (its
            weights were trained with the LayerNorms), so its search leaves it ``true``; it is
            set by stand-alone training (``search.rerank.layer_norm``). JSON: written only
            when false.

    Example::

        arch = SearchSpace.preset("nasrec-small").sample(random.Random(0))
        text = arch.to_json()
        assert Architecture.from_json(text) == arch
    """

    blocks: tuple[BlockConfig, ...]
    head_tokens: bool = True
    embedding_dims: tuple[tuple[str, int], ...] | None = None
    layer_norm: bool = True

    def __post_init__(self) -> None:
        if self.embedding_dims is not None:  # one order, so equal maps compare equal
            object.__setattr__(self, "embedding_dims", tuple(sorted(self.embedding_dims)))

    @property
    def widths(self) -> dict[str, int] | None:
        """``embedding_dims`` as a ``{feature: width}`` dict (``None`` when not searched)."""
        return None if self.embedding_dims is None else dict(self.embedding_dims)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": ARCHITECTURE_JSON_VERSION,
            "blocks": [b.to_dict() for b in self.blocks],
        }
        if not self.head_tokens:  # files of NASRec heads stay as they were
            d["head_tokens"] = False
        if self.embedding_dims is not None:  # and so do files without searched widths
            d["embedding_dims"] = dict(self.embedding_dims)
        if not self.layer_norm:  # and files of models with LayerNorms
            d["layer_norm"] = False
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=indent is not None)

    @staticmethod
    def from_dict(data: Mapping[str, Any], where: str = "architecture") -> Architecture:
        """Builds an architecture from its JSON mapping, naming the block and field on error."""
        if not isinstance(data, Mapping) or "blocks" not in data:
            raise ArchitectureError(f"{where}: expected a mapping with a 'blocks' list")
        version = data.get("version", ARCHITECTURE_JSON_VERSION)
        if version != ARCHITECTURE_JSON_VERSION:
            raise ArchitectureError(
                f"{where}: architecture JSON version {version!r} is not supported "
                f"(this version of torchrec_nas reads version {ARCHITECTURE_JSON_VERSION})"
            )
        known = ("version", "blocks", "head_tokens", "embedding_dims", "layer_norm")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ArchitectureError(
                f"{where}: unknown field {unknown[0]!r} (known: {', '.join(known)})"
            )
        flags = {}
        for name in ("head_tokens", "layer_norm"):
            flags[name] = data.get(name, True)
            if not isinstance(flags[name], bool):
                raise ArchitectureError(
                    f"{where}: {name} must be true or false, not {flags[name]!r}"
                )
        blocks_data = data["blocks"]
        if not isinstance(blocks_data, list) or not blocks_data:
            raise ArchitectureError(f"{where}: 'blocks' must be a non-empty list")
        blocks = []
        for i, b in enumerate(blocks_data):
            try:
                blocks.append(from_mapping(BlockConfig, b, f"{where}: block {i}"))
            except ConfigError as e:
                raise ArchitectureError(str(e)) from e
        dims = _read_embedding_dims(data.get("embedding_dims"), where)
        return Architecture(tuple(blocks), flags["head_tokens"], dims, flags["layer_norm"])

    @staticmethod
    def from_json(text: str, where: str = "architecture") -> Architecture:
        """Parses :meth:`to_json`'s text; ``where`` (a file name, say) starts every error."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchitectureError(f"{where}: not valid JSON: {e}") from e
        return Architecture.from_dict(data, where)

    @staticmethod
    def load(path: str | Path) -> Architecture:
        """Reads an architecture JSON file (for example ``best_arch.json``; a local path or
        URL)."""
        p = str(path)
        data = storage.read_json(p, "architecture", ArchitectureError)
        # Files written by the search wrap the architecture with its scores.
        if isinstance(data, dict) and "architecture" in data and "blocks" not in data:
            data = data["architecture"]
        return Architecture.from_dict(data, p)

    def canonical_hash(self) -> str:
        """A hash equal for architectures that compute the same function by construction.

        Parts that cannot reach the logit (dead blocks, unused paths, input order) are
        normalized first; see :func:`canonicalize`.
        """
        canon = canonicalize(self)
        return hashlib.sha1(canon.to_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BlockLiveness:
    """Which results of a block can reach the logit.

    Args:
        dense_op: the dense operator's result is used.
        sparse_op: the sparse operator's result is used.
        dense_out: the block's dense output is read by a later block or the classifier.
        sparse_out: the block's sparse output is read by a later block or the classifier.
    """

    dense_op: bool
    sparse_op: bool
    dense_out: bool
    sparse_out: bool

    @property
    def alive(self) -> bool:
        return self.dense_op or self.sparse_op


def liveness(arch: Architecture) -> list[BlockLiveness]:
    """Marks, for each block, which of its results can reach the classifier's logit."""
    n = len(arch.blocks)
    dense_out = [False] * (n + 1)  # indexed by output index; 0 is the raw input
    sparse_out = [False] * (n + 1)
    dense_out[n] = True
    sparse_out[n] = arch.head_tokens
    result: list[BlockLiveness] = [BlockLiveness(False, False, False, False)] * n
    for i in range(n - 1, -1, -1):
        b = arch.blocks[i]
        d_out, s_out = dense_out[i + 1], sparse_out[i + 1]
        dense_op = d_out or (s_out and b.dense_to_sparse)
        sparse_op = s_out or (d_out and b.sparse_to_dense)
        if dense_op:
            for j in b.dense_inputs:
                dense_out[j] = True
            if operator_spec(b.dense_op).reads_sparse:
                for j in b.sparse_inputs:
                    sparse_out[j] = True
        if sparse_op:
            for j in b.sparse_inputs:
                sparse_out[j] = True
        result[i] = BlockLiveness(dense_op, sparse_op, d_out, s_out)
    return result


def canonicalize(arch: Architecture) -> Architecture:
    """Returns the normal form of ``arch``: what cannot reach the logit is set to fixed values.

    - inputs are sorted and de-duplicated (concatenation order is fixed by the supernet);
    - a dead block becomes a fixed placeholder block;
    - an unused operator's choices (op, width, inputs, bits) are set to fixed values;
    - an interaction bit whose target output is unused is cleared.

    Two architectures with the same normal form give the same logits from the same supernet.
    """
    live = liveness(arch)
    blocks = []
    for b, lv in zip(arch.blocks, live):
        if not lv.alive:
            blocks.append(_DEAD_BLOCK)
            continue
        dense_inputs = tuple(sorted(set(b.dense_inputs)))
        sparse_inputs = tuple(sorted(set(b.sparse_inputs)))
        dense_op, dense_dim = b.dense_op, b.dense_dim
        sparse_op, sparse_tokens = b.sparse_op, b.sparse_tokens
        if not lv.dense_op:
            dense_op, dense_dim, dense_inputs = NO_OPERATOR, 0, ()
        if not lv.sparse_op:
            sparse_op, sparse_tokens = NO_OPERATOR, 0
            if dense_op == NO_OPERATOR or not operator_spec(dense_op).reads_sparse:
                sparse_inputs = ()
        blocks.append(
            BlockConfig(
                dense_op=dense_op,
                sparse_op=sparse_op,
                dense_dim=dense_dim,
                sparse_tokens=sparse_tokens,
                dense_inputs=dense_inputs,
                sparse_inputs=sparse_inputs,
                dense_to_sparse=b.dense_to_sparse and lv.sparse_out,
                sparse_to_dense=b.sparse_to_dense and lv.dense_out,
                weight_bits=b.weight_bits,
                activation_bits=b.activation_bits,
            )
        )
    # Widths stay as they are: a width changes the tokens even where only the dense path
    # reads them (and costs memory regardless).
    return Architecture(tuple(blocks), arch.head_tokens, arch.embedding_dims, arch.layer_norm)


def _read_embedding_dims(value: Any, where: str) -> tuple[tuple[str, int], ...] | None:
    """The JSON ``embedding_dims`` object as sorted pairs; ``None`` stays ``None``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ArchitectureError(f"{where}: embedding_dims must be an object {{feature: width}}")
    for feature, width in value.items():
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ArchitectureError(
                f"{where}: embedding_dims: feature {feature!r}: width {width!r} is not a "
                "positive integer"
            )
    return tuple(sorted((str(f), int(w)) for f, w in value.items()))


_DEAD_BLOCK = BlockConfig(NO_OPERATOR, NO_OPERATOR, 0, 0, (), ())
