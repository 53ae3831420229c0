"""The NASRec search space: what an architecture is, how to sample, mutate and canonicalize it.

Everything here is plain data (frozen dataclasses, JSON); nothing imports torch.

An :class:`Architecture` is a stack of choice blocks. Block ``i`` (0-based) reads earlier
*outputs* by index: output 0 is the raw input (the dense features, and the pooled embeddings as
tokens), output ``k >= 1`` is the output of block ``k - 1``. Each block has a dense path and a
sparse path:

- dense operator (``fc``, ``gating``, ``sum``, ``dot``) over its dense inputs, concatenated
  along features, producing ``dense_dim`` features;
- sparse operator (``efc``, ``attention``) over its sparse inputs, concatenated along tokens,
  producing ``sparse_tokens`` tokens of the embedding width;
- ``dense_to_sparse``: the dense result is projected to extra tokens appended to the sparse
  output; ``sparse_to_dense``: a factorization-machine term of the sparse result is added to the
  dense output. Both read the operators' results before these bits apply, so they never form a
  cycle.

The classifier reads the last block's dense and sparse outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchrec_nas.config_utils import ConfigError, from_mapping, load_yaml

DENSE_OPS: tuple[str, ...] = ("fc", "gating", "sum", "dot")
SPARSE_OPS: tuple[str, ...] = ("efc", "attention")
#: Dense operators that combine a left and a right input.
BINARY_DENSE_OPS: frozenset[str] = frozenset({"gating", "sum"})

_JSON_VERSION = 1


class ArchitectureError(ValueError):
    """An architecture that does not fit its search space; the message names block and field."""


@dataclass(frozen=True)
class BlockConfig:
    """The choices of one block.

    Args:
        dense_op: one of ``fc``, ``gating``, ``sum``, ``dot``.
        sparse_op: one of ``efc``, ``attention``.
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

    Example::

        space = SearchSpace.preset("nasrec-small")
        arch = space.sample(random.Random(0))
        text = arch.to_json()
        assert Architecture.from_json(text) == arch
    """

    blocks: tuple[BlockConfig, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"version": _JSON_VERSION, "blocks": [b.to_dict() for b in self.blocks]}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=indent is not None)

    @staticmethod
    def from_dict(data: Mapping[str, Any], where: str = "architecture") -> Architecture:
        """Builds an architecture from its JSON mapping, naming the block and field on error."""
        if not isinstance(data, Mapping) or "blocks" not in data:
            raise ArchitectureError(f"{where}: expected a mapping with a 'blocks' list")
        blocks_data = data["blocks"]
        if not isinstance(blocks_data, list) or not blocks_data:
            raise ArchitectureError(f"{where}: 'blocks' must be a non-empty list")
        blocks = []
        for i, b in enumerate(blocks_data):
            try:
                blocks.append(from_mapping(BlockConfig, b, f"{where}: block {i}"))
            except ConfigError as e:
                raise ArchitectureError(str(e)) from e
        return Architecture(tuple(blocks))

    @staticmethod
    def from_json(text: str, where: str = "architecture") -> Architecture:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchitectureError(f"{where}: not valid JSON: {e}") from e
        return Architecture.from_dict(data, where)

    @staticmethod
    def load(path: str | Path) -> Architecture:
        """Reads an architecture JSON file (for example ``best_arch.json``)."""
        p = Path(path)
        if not p.is_file():
            raise ArchitectureError(f"{p}: architecture file not found")
        data = json.loads(p.read_text())
        # Files written by the search wrap the architecture with its scores.
        if isinstance(data, dict) and "architecture" in data and "blocks" not in data:
            data = data["architecture"]
        return Architecture.from_dict(data, str(p))

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
    dense_out[n] = sparse_out[n] = True
    result: list[BlockLiveness] = [BlockLiveness(False, False, False, False)] * n
    for i in range(n - 1, -1, -1):
        b = arch.blocks[i]
        d_out, s_out = dense_out[i + 1], sparse_out[i + 1]
        dense_op = d_out or (s_out and b.dense_to_sparse)
        sparse_op = s_out or (d_out and b.sparse_to_dense)
        if dense_op:
            for j in b.dense_inputs:
                dense_out[j] = True
            if b.dense_op == "dot":
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
            dense_op, dense_dim, dense_inputs = "-", 0, ()
        if not lv.sparse_op:
            sparse_op, sparse_tokens = "-", 0
            if dense_op != "dot":
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
    return Architecture(tuple(blocks))


_DEAD_BLOCK = BlockConfig("-", "-", 0, 0, (), ())


@dataclass(frozen=True)
class SearchSpace:
    """The choices available to every block, and how architectures are drawn from them.

    Args:
        name: a label for reports.
        num_blocks: number of choice blocks.
        dense_ops: dense operators to choose from (subset of ``fc, gating, sum, dot``).
        sparse_ops: sparse operators to choose from (subset of ``efc, attention``).
        dense_dims: dense output widths.
        sparse_tokens: numbers of sparse output tokens.
        embedding_dim: width of every token (the embedding tables' dim).
        max_inputs: a block takes 1 to ``max_inputs`` earlier outputs on each path.
        dense_to_sparse_tokens: tokens appended by the dense-to-sparse interaction.
        interaction_bits: whether the dense-to-sparse and sparse-to-dense bits are searched
            (otherwise both are off).
        attention_heads: heads of the attention operator.
        bit_choices: weight/activation bit widths searched per block; empty means full
            precision and no bit genes.

    Example::

        space = SearchSpace.preset("nasrec-full")
        rng = random.Random(2018)
        arch = space.sample(rng)
        space.validate(arch)
        child = space.mutate(arch, rng)
    """

    name: str = "nasrec-full"
    num_blocks: int = 7
    dense_ops: tuple[str, ...] = DENSE_OPS
    sparse_ops: tuple[str, ...] = SPARSE_OPS
    dense_dims: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 768, 1024)
    sparse_tokens: tuple[int, ...] = (16, 32, 48, 64)
    embedding_dim: int = 16
    max_inputs: int = 4
    dense_to_sparse_tokens: int = 8
    interaction_bits: bool = True
    attention_heads: int = 2
    bit_choices: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        """Checks the space itself; a bad field raises ``ValueError`` naming it."""
        if self.num_blocks < 1:
            raise ValueError("num_blocks must be at least 1")
        for name, allowed, chosen in (
            ("dense_ops", DENSE_OPS, self.dense_ops),
            ("sparse_ops", SPARSE_OPS, self.sparse_ops),
        ):
            if not chosen:
                raise ValueError(f"{name} must not be empty")
            bad = [op for op in chosen if op not in allowed]
            if bad:
                raise ValueError(f"{name}: unknown operator {bad[0]!r}; known: {list(allowed)}")
        for name, values in (
            ("dense_dims", self.dense_dims),
            ("sparse_tokens", self.sparse_tokens),
        ):
            if not values or any(v < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty list of positive integers")
            if list(values) != sorted(set(values)):
                raise ValueError(f"{name} must be sorted ascending without repeats")
        if self.embedding_dim < 1 or self.max_inputs < 1 or self.attention_heads < 1:
            raise ValueError("embedding_dim, max_inputs and attention_heads must be positive")
        if "attention" in self.sparse_ops and self.embedding_dim % self.attention_heads:
            raise ValueError(
                f"attention_heads ({self.attention_heads}) must divide embedding_dim "
                f"({self.embedding_dim})"
            )
        if any(b < 1 or b > 32 for b in self.bit_choices):
            raise ValueError("bit_choices must be between 1 and 32")

    # ---- construction ---------------------------------------------------------------------

    @staticmethod
    def preset(name: str) -> SearchSpace:
        """``nasrec-small`` (dense {fc, dot}, sparse {efc}) or ``nasrec-full`` (all operators)."""
        if name == "nasrec-full":
            return SearchSpace(name="nasrec-full")
        if name == "nasrec-small":
            return SearchSpace(name="nasrec-small", dense_ops=("fc", "dot"), sparse_ops=("efc",))
        raise ConfigError(f"unknown search space preset {name!r}; known: nasrec-small, nasrec-full")

    @staticmethod
    def from_mapping(data: Mapping[str, Any], where: str = "space") -> SearchSpace:
        """A space from a mapping; ``preset: NAME`` starts from a preset and overrides fields."""
        data = dict(data)
        base: dict[str, Any] = {}
        if "preset" in data:
            preset = data.pop("preset")
            try:
                base = dataclasses.asdict(SearchSpace.preset(preset))
            except ConfigError as e:
                raise ConfigError(f"{where}.preset: {e}") from e
        base.update(data)
        return from_mapping(SearchSpace, base, where)

    @staticmethod
    def from_yaml(path: str | Path) -> SearchSpace:
        return SearchSpace.from_mapping(load_yaml(path), str(path))

    # ---- derived sizes ----------------------------------------------------------------------

    @property
    def max_dense_dim(self) -> int:
        return max(self.dense_dims)

    @property
    def max_sparse_tokens(self) -> int:
        return max(self.sparse_tokens)

    @property
    def max_block_tokens(self) -> int:
        """Tokens of a block's sparse output at its largest (operator plus dense-to-sparse)."""
        extra = self.dense_to_sparse_tokens if self.interaction_bits else 0
        return self.max_sparse_tokens + extra

    # ---- sampling and mutation --------------------------------------------------------------

    def _sample_inputs(self, block: int, rng: random.Random) -> tuple[int, ...]:
        # "Any connection": 1 + Binomial(min(block, max_inputs - 1), 1/2) inputs, chosen
        # uniformly among the block + 1 earlier outputs.
        trials = min(block, self.max_inputs - 1)
        count = 1 + sum(rng.random() < 0.5 for _ in range(trials))
        return tuple(sorted(rng.sample(range(block + 1), count)))

    def _sample_bits(self, rng: random.Random) -> tuple[int | None, int | None]:
        if not self.bit_choices:
            return None, None
        return rng.choice(self.bit_choices), rng.choice(self.bit_choices)

    def sample_block(self, block: int, rng: random.Random) -> BlockConfig:
        """Draws block ``block`` uniformly: one operator per path, widths, inputs and bits."""
        weight_bits, activation_bits = self._sample_bits(rng)
        return BlockConfig(
            dense_op=rng.choice(self.dense_ops),
            sparse_op=rng.choice(self.sparse_ops),
            dense_dim=rng.choice(self.dense_dims),
            sparse_tokens=rng.choice(self.sparse_tokens),
            dense_inputs=self._sample_inputs(block, rng),
            sparse_inputs=self._sample_inputs(block, rng),
            dense_to_sparse=self.interaction_bits and rng.random() < 0.5,
            sparse_to_dense=self.interaction_bits and rng.random() < 0.5,
            weight_bits=weight_bits,
            activation_bits=activation_bits,
        )

    def sample(self, rng: random.Random) -> Architecture:
        """Single-operator any-connection sampling of a whole architecture."""
        return Architecture(tuple(self.sample_block(i, rng) for i in range(self.num_blocks)))

    def largest(self) -> Architecture:
        """A fixed, large architecture: widest choices, every block reading its predecessor
        and the raw input, both interaction bits on. Used to size the supernet in tests."""
        blocks = []
        for i in range(self.num_blocks):
            inputs = tuple(sorted({0, i}))
            blocks.append(
                BlockConfig(
                    self.dense_ops[0],
                    self.sparse_ops[0],
                    self.max_dense_dim,
                    self.max_sparse_tokens,
                    inputs,
                    inputs,
                    self.interaction_bits,
                    self.interaction_bits,
                    max(self.bit_choices) if self.bit_choices else None,
                    max(self.bit_choices) if self.bit_choices else None,
                )
            )
        return Architecture(tuple(blocks))

    def genes(self) -> list[str]:
        """Names of the fields a mutation may change."""
        names = [
            "dense_op",
            "sparse_op",
            "dense_dim",
            "sparse_tokens",
            "dense_inputs",
            "sparse_inputs",
        ]
        if self.interaction_bits:
            names += ["dense_to_sparse", "sparse_to_dense"]
        if self.bit_choices:
            names += ["weight_bits", "activation_bits"]
        return names

    def _choices(self, gene: str) -> Sequence[Any]:
        return {
            "dense_op": self.dense_ops,
            "sparse_op": self.sparse_ops,
            "dense_dim": self.dense_dims,
            "sparse_tokens": self.sparse_tokens,
            "dense_to_sparse": (False, True),
            "sparse_to_dense": (False, True),
            "weight_bits": self.bit_choices,
            "activation_bits": self.bit_choices,
        }[gene]

    def mutate(
        self, arch: Architecture, rng: random.Random, num_mutations: int = 1
    ) -> Architecture:
        """Changes ``num_mutations`` randomly chosen genes of randomly chosen blocks.

        Each mutation picks a block and a gene, and draws a value different from the current
        one (genes with a single choice are skipped). Inputs are redrawn with the same rule as
        in :meth:`sample`.
        """
        blocks = list(arch.blocks)
        genes = self.genes()
        for _ in range(num_mutations):
            for _attempt in range(100):
                i = rng.randrange(len(blocks))
                gene = rng.choice(genes)
                old = getattr(blocks[i], gene)
                if gene in ("dense_inputs", "sparse_inputs"):
                    if i == 0:
                        continue  # the first block can only read the raw input
                    new: Any = self._sample_inputs(i, rng)
                else:
                    options = [c for c in self._choices(gene) if c != old]
                    if not options:
                        continue
                    new = rng.choice(options)
                if new != old:
                    blocks[i] = dataclasses.replace(blocks[i], **{gene: new})
                    break
        return Architecture(tuple(blocks))

    # ---- validation -------------------------------------------------------------------------

    def validate(self, arch: Architecture) -> None:
        """Raises :class:`ArchitectureError` naming the block and field that do not fit."""
        if len(arch.blocks) != self.num_blocks:
            raise ArchitectureError(
                f"architecture has {len(arch.blocks)} blocks; space {self.name!r} has "
                f"{self.num_blocks}"
            )
        for i, b in enumerate(arch.blocks):
            self._check_block(i, b)

    def _check_block(self, i: int, b: BlockConfig) -> None:
        def fail(name: str, msg: str) -> None:
            raise ArchitectureError(f"block {i}: {name}: {msg}")

        for name, value, allowed in (
            ("dense_op", b.dense_op, self.dense_ops),
            ("sparse_op", b.sparse_op, self.sparse_ops),
            ("dense_dim", b.dense_dim, self.dense_dims),
            ("sparse_tokens", b.sparse_tokens, self.sparse_tokens),
        ):
            if value not in allowed:
                fail(name, f"{value!r} is not among the space's choices {list(allowed)}")
        for name, inputs in (("dense_inputs", b.dense_inputs), ("sparse_inputs", b.sparse_inputs)):
            if not 1 <= len(inputs) <= self.max_inputs:
                fail(name, f"takes 1 to {self.max_inputs} inputs, got {len(inputs)}")
            if len(set(inputs)) != len(inputs):
                fail(name, f"repeats an input: {list(inputs)}")
            bad = [j for j in inputs if not 0 <= j <= i]
            if bad:
                fail(name, f"input {bad[0]} is not an earlier output (allowed 0..{i})")
        if not self.interaction_bits and (b.dense_to_sparse or b.sparse_to_dense):
            fail("dense_to_sparse/sparse_to_dense", "the space does not search interaction bits")
        for name, bits in (("weight_bits", b.weight_bits), ("activation_bits", b.activation_bits)):
            if self.bit_choices and bits not in self.bit_choices:
                fail(name, f"{bits!r} is not among the space's choices {list(self.bit_choices)}")
            if not self.bit_choices and bits is not None:
                fail(name, "the space does not search bit widths")

    def contains(self, arch: Architecture) -> bool:
        try:
            self.validate(arch)
        except ArchitectureError:
            return False
        return True

    def enumerate_samples(self, rng: random.Random, count: int) -> Iterable[Architecture]:
        """Yields ``count`` sampled architectures with distinct canonical hashes."""
        seen: set[str] = set()
        for _ in range(count * 100):
            arch = self.sample(rng)
            h = arch.canonical_hash()
            if h not in seen:
                seen.add(h)
                yield arch
                if len(seen) == count:
                    return
