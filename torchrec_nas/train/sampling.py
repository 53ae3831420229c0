"""Which architectures the supernet trains at each step.

The architectures of step ``s`` are a function of ``(seed, s)`` alone, never of process-local
random state, so every rank of a distributed job trains the same subnets at the same step and a
resumed job continues the same sequence.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Literal

from torchrec_nas.space import Architecture, BlockConfig, SearchSpace

WarmupSchedule = Literal["linear", "constant"]


@dataclass(frozen=True)
class PathSampler:
    """Single-operator any-connection sampling with a full-supernet warm-up, optionally with
    the sandwich rule and fair operator sampling.

    During the first ``warmup_steps`` steps, a sampled path is replaced by the *largest* path
    (every block at its widest, with the most inputs and both interaction bits; operators
    still drawn) with probability ``warmup_prob`` times ``1 - step / warmup_steps``
    (``warmup_schedule: linear``) or times 1 (``constant``); other draws are uniform subnets.

    With ``sandwich``, :meth:`paths` returns the largest path, the smallest path and
    ``sandwich_random`` sampled paths for each step (BigNAS's sandwich rule). With
    ``fair_operators``, each block's dense and sparse operators are dealt from a seeded
    permutation of the block's choices, a fresh permutation per round, so that over every
    round of ``len(choices)`` draws each operator is trained exactly once; the draws of one
    step are numbered ``step * len(paths) + j``.

    Args:
        space: the search space.
        seed: the job's seed.
        warmup_steps: length of the warm-up.
        warmup_prob: probability of the largest path at step 0.
        warmup_schedule: ``linear`` (decays to 0 at ``warmup_steps``) or ``constant``.
        sandwich: train the largest, the smallest and ``sandwich_random`` paths each step.
        sandwich_random: sampled paths per sandwich step.
        fair_operators: deal operators round-robin over seeded permutations.

    Example::

        sampler = PathSampler(SearchSpace.preset("nasrec-full"), seed=2018, warmup_steps=1000)
        arch = sampler(step=17)   # the same on every rank and after a restart
        largest, smallest, *rest = PathSampler(space, sandwich=True).paths(17)
    """

    space: SearchSpace
    seed: int = 2018
    warmup_steps: int = 0
    warmup_prob: float = 1.0
    warmup_schedule: WarmupSchedule = "linear"
    sandwich: bool = False
    sandwich_random: int = 2
    fair_operators: bool = False

    def full_probability(self, step: int) -> float:
        """The probability that a sampled path of ``step`` is the largest path."""
        if self.warmup_steps <= 0 or step >= self.warmup_steps:
            return 0.0
        if self.warmup_schedule == "constant":
            return self.warmup_prob
        return self.warmup_prob * (1.0 - step / self.warmup_steps)

    @property
    def paths_per_step(self) -> int:
        """How many paths a step trains."""
        return 2 + self.sandwich_random if self.sandwich else 1

    def _sampled(self, step: int, rng: random.Random) -> Architecture:
        if rng.random() < self.full_probability(step):
            return largest_path(self.space, rng)
        return self.space.sample(rng)

    def paths(self, step: int) -> list[Architecture]:
        """The paths trained at ``step``: ``[sampled]``, or with ``sandwich``
        ``[largest, smallest, sampled...]``."""
        if not self.sandwich:
            archs = [self._sampled(step, random.Random(f"{self.seed}:{step}"))]
        else:
            archs = [
                largest_path(self.space, random.Random(f"{self.seed}:{step}:largest")),
                smallest_path(self.space, random.Random(f"{self.seed}:{step}:smallest")),
            ]
            archs += [
                self._sampled(step, random.Random(f"{self.seed}:{step}:{k}"))
                for k in range(self.sandwich_random)
            ]
        if self.fair_operators:
            n = len(archs)
            archs = [self._fair(a, step * n + j) for j, a in enumerate(archs)]
        return archs

    def __call__(self, step: int) -> Architecture:
        """The first path of ``step`` (the only one without ``sandwich``)."""
        return self.paths(step)[0]

    def fair_operator(self, kind: str, block: int, draw: int) -> str:
        """The operator of ``block``'s ``kind`` (``dense`` or ``sparse``) path at draw
        ``draw``: position ``draw % k`` of round ``draw // k``'s seeded permutation."""
        ops = self.space.dense_ops if kind == "dense" else self.space.sparse_ops
        order = list(ops)
        random.Random(f"{self.seed}:fair:{kind}:{block}:{draw // len(ops)}").shuffle(order)
        return order[draw % len(ops)]

    def _fair(self, arch: Architecture, draw: int) -> Architecture:
        return Architecture(
            tuple(
                dataclasses.replace(
                    b,
                    dense_op=self.fair_operator("dense", i, draw),
                    sparse_op=self.fair_operator("sparse", i, draw),
                )
                for i, b in enumerate(arch.blocks)
            ),
            arch.head_tokens,
        )


def largest_path(space: SearchSpace, rng: random.Random) -> Architecture:
    """The widest subnet with uniformly drawn operators: every width at its maximum, each block
    reading as many earlier outputs as allowed (chosen uniformly), both interaction bits on."""
    return _extreme_path(space, rng, largest=True)


def smallest_path(
    space: SearchSpace, rng: random.Random, raw_inputs_only: bool = False
) -> Architecture:
    """The narrowest subnet with uniformly drawn operators: every width at its minimum, each
    block reading one earlier output per path (chosen uniformly), interaction bits off.

    With ``raw_inputs_only`` every block reads only the raw inputs (output 0), so only the last
    block reaches the logit: the fewest FLOPs its operators allow.

    Example::

        arch = smallest_path(SearchSpace.preset("nasrec-small"), random.Random(0))
    """
    return _extreme_path(space, rng, largest=False, raw_inputs_only=raw_inputs_only)


def _extreme_path(
    space: SearchSpace, rng: random.Random, largest: bool, raw_inputs_only: bool = False
) -> Architecture:
    def inputs(i: int, count: int) -> tuple[int, ...]:
        if raw_inputs_only:
            return (0,)
        return tuple(sorted(rng.sample(range(i + 1), count)))

    blocks = []
    for i in range(space.num_blocks):
        base = space.sample_block(i, rng)
        count = min(i + 1, space.max_inputs) if largest else 1
        bits = space.interaction_bits and largest
        blocks.append(
            BlockConfig(
                dense_op=base.dense_op,
                sparse_op=base.sparse_op,
                dense_dim=max(space.dense_dims) if largest else min(space.dense_dims),
                sparse_tokens=max(space.sparse_tokens) if largest else min(space.sparse_tokens),
                dense_inputs=inputs(i, count),
                sparse_inputs=inputs(i, count),
                dense_to_sparse=bits,
                sparse_to_dense=bits,
                weight_bits=base.weight_bits,
                activation_bits=base.activation_bits,
            )
        )
    # The largest path reads the most the head allows; the smallest the least.
    head = max(space.head_tokens) if largest else min(space.head_tokens)
    return Architecture(tuple(blocks), head)
