"""Checking one block of an architecture against its search space (``SearchSpace.validate``).

Plain data; nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

from torchrec_nas.architecture import ArchitectureError, BlockConfig


def check_block(space: Any, i: int, b: BlockConfig) -> None:
    """Raises :class:`ArchitectureError` naming block ``i`` and the field of ``b`` that does
    not fit ``space`` (a :class:`~torchrec_nas.space.SearchSpace`)."""

    def fail(name: str, msg: str) -> None:
        raise ArchitectureError(f"block {i}: {name}: {msg}")

    for name, value, allowed in (
        ("dense_op", b.dense_op, space.dense_ops),
        ("sparse_op", b.sparse_op, space.sparse_ops),
        ("dense_dim", b.dense_dim, space.dense_dims),
        ("sparse_tokens", b.sparse_tokens, space.sparse_tokens),
    ):
        if value not in allowed:
            fail(name, f"{value!r} is not among the space's choices {list(allowed)}")
    for name, inputs in (("dense_inputs", b.dense_inputs), ("sparse_inputs", b.sparse_inputs)):
        if not 1 <= len(inputs) <= space.max_inputs:
            fail(name, f"takes 1 to {space.max_inputs} inputs, got {len(inputs)}")
        if len(set(inputs)) != len(inputs):
            fail(name, f"repeats an input: {list(inputs)}")
        bad = [j for j in inputs if not 0 <= j <= i]
        if bad:
            fail(name, f"input {bad[0]} is not an earlier output (allowed 0..{i})")
    if not space.interaction_bits and (b.dense_to_sparse or b.sparse_to_dense):
        fail("dense_to_sparse/sparse_to_dense", "the space does not search interaction bits")
    for name, bits in (("weight_bits", b.weight_bits), ("activation_bits", b.activation_bits)):
        if space.bit_choices and bits not in space.bit_choices:
            fail(name, f"{bits!r} is not among the space's choices {list(space.bit_choices)}")
        if not space.bit_choices and bits is not None:
            fail(name, "the space does not search bit widths")
