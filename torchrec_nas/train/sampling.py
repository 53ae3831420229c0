"""Which architecture the supernet trains at each step.

The architecture of step ``s`` is a function of ``(seed, s)`` alone, never of process-local
random state, so every rank of a distributed job trains the same subnet at the same step and a
resumed job continues the same sequence.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from torchrec_nas.space import Architecture, BlockConfig, SearchSpace


@dataclass(frozen=True)
class PathSampler:
    """Single-operator any-connection sampling with a full-supernet warm-up.

    During the first ``warmup_steps`` steps, a step trains the *largest* path (every block at
    its widest, with the most inputs and both interaction bits; operators still drawn
    uniformly) with probability ``warmup_prob * (1 - step / warmup_steps)``, decaying linearly
    to 0; other steps train a uniformly sampled subnet.

    Args:
        space: the search space.
        seed: the job's seed.
        warmup_steps: length of the warm-up.
        warmup_prob: probability of the largest path at step 0.

    Example::

        sampler = PathSampler(SearchSpace.preset("nasrec-full"), seed=2018, warmup_steps=1000)
        arch = sampler(step=17)   # the same on every rank and after a restart
    """

    space: SearchSpace
    seed: int = 2018
    warmup_steps: int = 0
    warmup_prob: float = 1.0

    def full_probability(self, step: int) -> float:
        if self.warmup_steps <= 0 or step >= self.warmup_steps:
            return 0.0
        return self.warmup_prob * (1.0 - step / self.warmup_steps)

    def __call__(self, step: int) -> Architecture:
        rng = random.Random(f"{self.seed}:{step}")
        if rng.random() < self.full_probability(step):
            return largest_path(self.space, rng)
        return self.space.sample(rng)


def largest_path(space: SearchSpace, rng: random.Random) -> Architecture:
    """The widest subnet with uniformly drawn operators: every width at its maximum, each block
    reading as many earlier outputs as allowed (chosen uniformly), both interaction bits on."""
    blocks = []
    for i in range(space.num_blocks):
        base = space.sample_block(i, rng)
        count = min(i + 1, space.max_inputs)
        blocks.append(
            BlockConfig(
                dense_op=base.dense_op,
                sparse_op=base.sparse_op,
                dense_dim=space.max_dense_dim,
                sparse_tokens=space.max_sparse_tokens,
                dense_inputs=tuple(sorted(rng.sample(range(i + 1), count))),
                sparse_inputs=tuple(sorted(rng.sample(range(i + 1), count))),
                dense_to_sparse=space.interaction_bits,
                sparse_to_dense=space.interaction_bits,
                weight_bits=base.weight_bits,
                activation_bits=base.activation_bits,
            )
        )
    return Architecture(tuple(blocks))
