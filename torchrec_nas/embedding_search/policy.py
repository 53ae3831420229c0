"""Stage 2's strategies over width choices ``{feature: width}``: a REINFORCE policy and
regularized evolution. Both only propose choices and read rewards; the reward is a function
passed in (see :mod:`torchrec_nas.embedding_search.scoring`), so they run on a toy reward too.

Every random draw comes from ``(seed, step)``, and the policy's update is deterministic, so a
run replayed with the same rewards (cached scores after a kill) makes the same choices.

Each feature may have its own choices (``allowed``, for example capped at its table's rows by
:func:`~torchrec_nas.space_widths.allowed_widths`): a prefix of the sorted candidates. Without
``allowed`` every feature has every width, and every draw is as it was before caps existed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from torchrec_nas.search.evolution import EvolutionConfig
from torchrec_nas.space_widths import step_width

#: ``reward(widths) -> float``; higher is better.
Reward = Callable[[dict[str, int]], float]

#: Each feature's width choices (a feature not named has every candidate).
Allowed = Mapping[str, Sequence[int]]


def feature_choices(
    features: Sequence[str], widths: Sequence[int], allowed: Allowed | None
) -> dict[str, list[int]]:
    """Each feature's sorted choices: ``allowed[f]`` where given, else all ``widths``."""
    allowed = allowed or {}
    return {f: sorted(allowed.get(f, widths)) for f in features}


@dataclass
class PolicyStep:
    """One REINFORCE step: the drawn choices, their rewards, the baseline before the update,
    and the policy's most likely choice after it."""

    step: int
    samples: list[dict[str, int]]
    rewards: list[float]
    baseline: float
    pick: dict[str, int]
    entropy: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "rewards": self.rewards,
            "mean_reward": sum(self.rewards) / len(self.rewards),
            "baseline": self.baseline,
            "pick": self.pick,
            "entropy": self.entropy,
        }


class WidthPolicy:
    """One categorical distribution per feature over its own widths, trained by REINFORCE
    with a moving-average baseline (Williams, 1992).

    Each step draws ``samples`` choices ``a_k`` from ``softmax(theta)`` (the logits of a
    feature's disallowed widths at ``-inf``, so they have no mass and no gradient), and ascends
    ``mean_k (R(a_k) - b) * sum_f log p_f(a_k[f])`` with Adam at ``lr``; then
    ``b <- decay * b + (1 - decay) * mean_k R(a_k)`` (``b`` starts at the first step's mean
    reward). The pick is each feature's most likely width.

    Args:
        feature_names: the features.
        widths: the candidate widths.
        lr: Adam's learning rate on the logits.
        baseline_decay: the baseline's decay.
        samples: choices drawn per step.
        seed: the run's seed.
        allowed: each feature's own choices, a subset of ``widths`` (default: all).

    Example::

        policy = WidthPolicy(["a", "b"], [4, 8, 16], lr=0.1, allowed={"a": [4, 8]})
        for k in range(100):
            policy.step(k, reward)
        policy.pick()   # {"a": 8, "b": 16}
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        widths: Sequence[int],
        lr: float = 0.1,
        baseline_decay: float = 0.9,
        samples: int = 8,
        seed: int = 0,
        allowed: Allowed | None = None,
    ) -> None:
        self.feature_names = list(feature_names)
        self.widths = sorted(widths)
        self.choices = feature_choices(self.feature_names, self.widths, allowed)
        for f, ws in self.choices.items():
            if not ws or not set(ws) <= set(self.widths):
                raise ValueError(f"WidthPolicy: feature {f!r}: choices {ws} not among {widths}")
        self.mask = torch.tensor(
            [[w in self.choices[f] for w in self.widths] for f in self.feature_names],
            dtype=torch.bool,
        ).reshape(len(self.feature_names), len(self.widths))
        self.baseline_decay = baseline_decay
        self.samples = samples
        self.seed = seed
        self.logits = torch.zeros(len(self.feature_names), len(self.widths), requires_grad=True)
        self.optimizer = torch.optim.Adam([self.logits], lr=lr)
        self.baseline: float | None = None

    def masked_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` with each feature's disallowed widths at ``-inf``."""
        return logits.masked_fill(~self.mask, -torch.inf)

    def probabilities(self) -> torch.Tensor:
        """``[F, W]`` (zero at a feature's disallowed widths)."""
        return torch.softmax(self.masked_logits(self.logits.detach()), dim=1)

    def pick(self) -> dict[str, int]:
        """Each feature's most likely width (the smaller on a tie)."""
        index = self.probabilities().argmax(dim=1).tolist()
        return {f: self.widths[i] for f, i in zip(self.feature_names, index)}

    def step(self, step: int, reward: Reward) -> PolicyStep:
        """Draws, scores and updates once."""
        g = torch.Generator().manual_seed(hash_seed(self.seed, step))
        probs = self.probabilities()
        drawn = torch.multinomial(probs, self.samples, replacement=True, generator=g)  # [F, K]
        samples = [
            {f: self.widths[int(drawn[i, k])] for i, f in enumerate(self.feature_names)}
            for k in range(self.samples)
        ]
        rewards = [float(reward(s)) for s in samples]
        mean = sum(rewards) / len(rewards)
        baseline = mean if self.baseline is None else self.baseline
        advantage = torch.tensor(rewards) - baseline
        log_p = torch.log_softmax(self.masked_logits(self.logits), dim=1)
        log_p = log_p.gather(1, drawn).sum(dim=0)  # [K]
        loss = -(advantage * log_p).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * mean
        p = self.probabilities()
        entropy = float(-(p * p.clamp_min(1e-12).log()).sum(dim=1).mean())
        return PolicyStep(step, samples, rewards, baseline, self.pick(), entropy)


def hash_seed(seed: int, step: int) -> int:
    """A 63-bit seed of ``(seed, step)`` that does not depend on Python's hash salt."""
    return random.Random(f"{seed}:policy:{step}").getrandbits(63)


@dataclass
class WidthCandidate:
    """A width choice scored by evolution, in the order evaluated."""

    index: int
    generation: int
    widths: dict[str, int]
    reward: float
    extra: dict[str, Any] = field(default_factory=dict)


def mutate_widths(
    widths: dict[str, int],
    choices: Sequence[int],
    rng: random.Random,
    mutations: int,
    allowed: Allowed | None = None,
) -> dict[str, int]:
    """``widths`` with ``mutations`` features moved one step up or down their sorted choices
    (``allowed[f]`` where given, else ``choices``); only features with two or more choices
    are drawn, and a width outside a feature's choices moves to its widest."""
    own = feature_choices(sorted(widths), choices, allowed)
    child = dict(widths)
    movable = sorted(f for f in child if len(own[f]) > 1)
    for f in rng.sample(movable, min(mutations, len(movable))):
        ordered = own[f]
        child[f] = step_width(child[f], ordered, rng) if child[f] in ordered else ordered[-1]
    return child


def fit_to_budget(
    dims: dict[str, int],
    choices: Sequence[int],
    cost: Callable[[dict[str, int]], int],
    budget: int,
    rng: random.Random,
) -> dict[str, int]:
    """``dims`` with random features stepped down one width at a time until ``cost`` is
    within ``budget`` (or every feature is at the smallest width)."""
    ordered = sorted(choices)
    dims = dict(dims)
    while cost(dims) > budget:
        wider = sorted(f for f, w in dims.items() if w > ordered[0])
        if not wider:
            break
        f = rng.choice(wider)
        dims[f] = ordered[ordered.index(dims[f]) - 1]
    return dims


#: ``repair(widths, rng) -> widths`` applied to the random initial population.
Repair = Callable[[dict[str, int], random.Random], dict[str, int]]


def evolve_widths(
    feature_names: Sequence[str],
    widths: Sequence[int],
    cfg: EvolutionConfig,
    reward: Reward,
    seed: int = 0,
    repair: Repair | None = None,
    allowed: Allowed | None = None,
) -> list[WidthCandidate]:
    """Regularized (aging) evolution (Real et al., 2019) over width choices: a random
    population (each member passed through ``repair``, for example
    :func:`fit_to_budget`), then each generation ``children`` parents, each the best of a
    random ``tournament``, mutated by ``cfg.mutations(generation)`` one-step moves; as many
    of the oldest die. Every draw and move stays within each feature's ``allowed`` widths
    (default: all ``widths``). Returns every candidate in the order evaluated.

    Example::

        history = evolve_widths(["a"], [4, 8], EvolutionConfig(population=4, tournament=2,
                                children=2, generations=3), reward, seed=1)
        best = max(history, key=lambda c: c.reward)
    """
    own = feature_choices(feature_names, widths, allowed)
    rng = random.Random(f"{seed}:evolution:init")
    history: list[WidthCandidate] = []
    for _ in range(cfg.population):
        dims = {f: rng.choice(own[f]) for f in feature_names}
        if repair is not None:
            dims = repair(dims, rng)
        history.append(WidthCandidate(len(history), 0, dims, float(reward(dims))))
    population = list(history)
    for generation in range(1, cfg.generations + 1):
        rng = random.Random(f"{seed}:evolution:{generation}")
        kids: list[WidthCandidate] = []
        for _ in range(cfg.children):
            contestants = rng.sample(population, min(cfg.tournament, len(population)))
            parent = max(contestants, key=lambda c: (c.reward, -c.index))
            n = cfg.mutations(generation)
            dims = mutate_widths(parent.widths, widths, rng, n, allowed)
            kids.append(
                WidthCandidate(len(history) + len(kids), generation, dims, float(reward(dims)))
            )
        history.extend(kids)
        population = population[len(kids) :] + kids
    return history
