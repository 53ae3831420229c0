"""The NASRec search space: the choices of every block, and how to sample and mutate them.

Everything here is plain data; nothing imports torch. What an architecture is lives in
:mod:`torchrec_nas.architecture` (re-exported here); which operators exist, in
:mod:`torchrec_nas.modules.operators.registry` (a torch-free registry).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchrec_nas.architecture import (
    ARCHITECTURE_JSON_VERSION,
    NO_OPERATOR,
    Architecture,
    ArchitectureError,
    BlockConfig,
    BlockLiveness,
    canonicalize,
    liveness,
)
from torchrec_nas.config_utils import ConfigError, from_mapping, load_yaml
from torchrec_nas.modules.operators.registry import (
    OperatorError,
    OperatorKind,
    check_operator_name,
    is_reference,
    known_operators,
    operator_spec,
)
from torchrec_nas.space_checks import check_block
from torchrec_nas.space_widths import (
    Features,
    check_width_choices,
    mutate_width,
    sample_embedding_dims,
    validate_embedding_dims,
)

__all__ = [
    "ARCHITECTURE_JSON_VERSION",
    "NO_OPERATOR",
    "Architecture",
    "ArchitectureError",
    "BlockConfig",
    "BlockLiveness",
    "DENSE_OPS",
    "SPARSE_OPS",
    "SearchSpace",
    "canonicalize",
    "liveness",
]

#: The built-in dense and sparse operators (the NASRec-Full choices).
DENSE_OPS: tuple[str, ...] = ("fc", "gating", "sum", "dot")
SPARSE_OPS: tuple[str, ...] = ("efc", "attention")


@dataclass(frozen=True)
class SearchSpace:
    """The choices available to every block, and how architectures are drawn from them.

    Args:
        name: a label for reports.
        num_blocks: number of choice blocks.
        dense_ops: dense operators to choose from: built-in (``fc``, ``gating``, ``sum``,
            ``dot``, ``cross``, ``dlrm_dot``), registered, or ``"package.module:Class"``
            references.
        sparse_ops: sparse operators to choose from (``efc``, ``attention``, or user ones).
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
        layer_norm: whether each block's outputs pass through a LayerNorm (NASRec's blocks;
            the reference code's ``use_layernorm``). Without it a block's output is its
            operator's result, as in DLRM's and DCN-v2's MLPs.
        head_tokens: the values an architecture's ``head_tokens`` may take (whether the
            classifier reads the last block's tokens): ``[true]`` is NASRec's head,
            ``[false]`` DLRM's and DCN-v2's, ``[true, false]`` searches it.
        embedding_widths: per-feature embedding widths searched with the blocks (the joint
            search; empty: not searched). Multiples of 4, at most ``embedding_dim``: the
            supernet's tables stay ``embedding_dim`` wide and a width is a prefix of each row
            (see :mod:`torchrec_nas.space_widths`).

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
    layer_norm: bool = True
    head_tokens: tuple[bool, ...] = (True,)
    embedding_widths: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        """Checks the space itself; a bad field raises ``ValueError`` naming it."""
        if self.num_blocks < 1:
            raise ValueError("num_blocks must be at least 1")
        for name, kind, chosen in self._operator_fields():
            if not chosen:
                raise ValueError(f"{name} must not be empty")
            if len(set(chosen)) != len(chosen):
                raise ValueError(f"{name}: an operator is listed twice: {list(chosen)}")
            for op in chosen:
                try:
                    check_operator_name(op)
                except OperatorError as e:
                    raise ValueError(f"{name}: {e}") from e
                # References are imported (and their kind checked) when a model is built, so
                # that reading a config imports no user code.
                if not is_reference(op) and operator_spec(op).kind != kind:
                    raise ValueError(
                        f"{name}: {op!r} is a {operator_spec(op).kind} operator; known {kind} "
                        f"operators: {known_operators(kind)}"
                    )
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
        if any(b < 1 or b > 32 for b in self.bit_choices):
            raise ValueError("bit_choices must be between 1 and 32")
        if not self.head_tokens or len(set(self.head_tokens)) != len(self.head_tokens):
            raise ValueError(f"head_tokens must list true, false or both once: {self.head_tokens}")
        check_width_choices(self.embedding_widths, self.embedding_dim)

    def _operator_fields(self) -> tuple[tuple[str, OperatorKind, tuple[str, ...]], ...]:
        return (("dense_ops", "dense", self.dense_ops), ("sparse_ops", "sparse", self.sparse_ops))

    # ---- construction ---------------------------------------------------------------------

    @staticmethod
    def preset(name: str) -> SearchSpace:
        """``nasrec-small`` (dense {fc, dot}, sparse {efc}), ``nasrec-full`` (NASRec's
        operators) or ``nasrec-full-x`` (NASRec-Full plus TorchRec's interactions as dense
        operators, ``cross`` (DCN-v2) and ``dlrm_dot`` (DLRM), so that the space contains
        those baselines: see :mod:`torchrec_nas.baseline_archs`)."""
        if name == "nasrec-full":
            return SearchSpace(name="nasrec-full")
        if name == "nasrec-full-x":
            return SearchSpace(name=name, dense_ops=(*DENSE_OPS, "cross", "dlrm_dot"))
        if name == "nasrec-small":
            return SearchSpace(name="nasrec-small", dense_ops=("fc", "dot"), sparse_ops=("efc",))
        raise ConfigError(
            f"unknown search space preset {name!r}; known: nasrec-small, nasrec-full, nasrec-full-x"
        )

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

    def sample(self, rng: random.Random, features: Features = ()) -> Architecture:
        """Single-operator any-connection sampling of a whole architecture; with ``features``
        and ``embedding_widths``, one width per feature (capped where ``features`` has rows)."""
        blocks = tuple(self.sample_block(i, rng) for i in range(self.num_blocks))
        # Drawn only when searched, so spaces with one head sample as they always did.
        head = rng.choice(self.head_tokens) if len(self.head_tokens) > 1 else self.head_tokens[0]
        widths = self.embedding_widths
        dims = sample_embedding_dims(widths, features, rng) if features and widths else None
        return Architecture(blocks, head, dims)

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
        return Architecture(tuple(blocks), max(self.head_tokens))

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
        if len(self.head_tokens) > 1:
            names.append("head_tokens")  # the architecture's, not a block's
        if len(self.embedding_widths) > 1:
            names.append("embedding_width")  # one feature's width, one step
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
        self,
        arch: Architecture,
        rng: random.Random,
        num_mutations: int = 1,
        rows: Mapping[str, int] | None = None,
    ) -> Architecture:
        """Changes ``num_mutations`` randomly chosen genes of randomly chosen blocks.

        Each mutation picks a block and a gene, and draws a value different from the current
        one (genes with a single choice are skipped). Inputs are redrawn with the same rule as
        in :meth:`sample`; a width stays within its feature's cap at ``rows`` (if given)."""
        blocks = list(arch.blocks)
        head, dims = arch.head_tokens, arch.embedding_dims
        genes = self.genes()
        for _ in range(num_mutations):
            for _attempt in range(100):
                i = rng.randrange(len(blocks))
                gene = rng.choice(genes)
                if gene == "head_tokens":
                    head = not head
                    break
                if gene == "embedding_width":
                    if dims is None:
                        continue  # widths are not searched in this architecture
                    dims = mutate_width(arch, self.embedding_widths, rng, rows).embedding_dims
                    arch = dataclasses.replace(arch, embedding_dims=dims)
                    break
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
        return Architecture(tuple(blocks), head, dims, arch.layer_norm)

    # ---- validation -------------------------------------------------------------------------

    def validate(self, arch: Architecture) -> None:
        """Raises :class:`ArchitectureError` naming the block and field that do not fit."""
        if len(arch.blocks) != self.num_blocks:
            raise ArchitectureError(
                f"architecture has {len(arch.blocks)} blocks; space {self.name!r} has "
                f"{self.num_blocks}"
            )
        for i, b in enumerate(arch.blocks):
            check_block(self, i, b)
        if arch.head_tokens not in self.head_tokens:
            allowed = [str(v).lower() for v in self.head_tokens]
            raise ArchitectureError(
                f"head_tokens: {str(arch.head_tokens).lower()} is not among the space's "
                f"choices {allowed}"
            )
        validate_embedding_dims(arch, self.embedding_widths)

    def check_operators(self) -> None:
        """Imports every referenced operator and checks its kind; raises :class:`ValueError`
        naming the field. Models call this before building their operators."""
        for name, kind, chosen in self._operator_fields():
            for op in chosen:
                try:
                    spec = operator_spec(op)
                except OperatorError as e:
                    raise ValueError(f"space.{name}: {e}") from e
                if spec.kind != kind:
                    raise ValueError(f"space.{name}: {op!r} is a {spec.kind} operator")

    def contains(self, arch: Architecture) -> bool:
        try:
            self.validate(arch)
        except ArchitectureError:
            return False
        return True

    def enumerate_samples(
        self, rng: random.Random, count: int, features: Features = ()
    ) -> Iterable[Architecture]:
        """Yields ``count`` sampled architectures with distinct canonical hashes."""
        seen: set[str] = set()
        for _ in range(count * 100):
            arch = self.sample(rng, features)
            h = arch.canonical_hash()
            if h not in seen:
                seen.add(h)
                yield arch
                if len(seen) == count:
                    return
