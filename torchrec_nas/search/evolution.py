"""Search strategies: regularized (aging) evolution and random search.

Strategies only produce :class:`~torchrec_nas.space.Architecture` s and read scores; evaluation
and costs are functions passed in. Every candidate goes to an append-only
:class:`~torchrec_nas.search.history.SearchHistory`; a restarted search rebuilds its state from
it and proposes exactly the candidates the killed one would have (each generation's random
numbers come from ``(seed, generation)``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from tqdm import tqdm

from torchrec_nas.progress import progress_bar
from torchrec_nas.search.history import Evaluation, SearchHistory
from torchrec_nas.search.objective import ObjectiveConfig
from torchrec_nas.space import Architecture, SearchSpace
from torchrec_nas.space_widths import Features

Evaluate = Callable[[Architecture], dict[str, float]]
Costs = Callable[[Architecture], dict[str, float]]


@dataclass
class EvolutionConfig:
    """Regularized evolution (defaults: the NASRec reference, 2,048 candidates).

    Args:
        strategy: ``evolution`` or ``random``.
        population: population size (also the size of the random initial population).
        tournament: candidates drawn from the population to pick each parent.
        children: children per generation; as many of the oldest members die.
        generations: generations after the initial population.
        mutations_start: mutations per child in the first generation.
        mutations_end: mutations per child in the last generation (linear in between).
        random_candidates: candidates drawn by random search (``null``: as many as evolution
            would evaluate: population + children x generations).
    """

    strategy: Literal["evolution", "random"] = "evolution"
    population: int = 128
    tournament: int = 64
    children: int = 8
    generations: int = 240
    mutations_start: int = 6
    mutations_end: int = 1
    random_candidates: int | None = None

    def validate(self) -> None:
        if self.population < 1 or self.children < 1 or self.generations < 0:
            raise ValueError("population and children must be >= 1, generations >= 0")
        if not 1 <= self.tournament <= self.population:
            raise ValueError(
                f"tournament ({self.tournament}) must be between 1 and population ({self.population})"
            )
        if self.children > self.population:
            raise ValueError("children must not exceed population")
        if self.mutations_start < 1 or self.mutations_end < 1:
            raise ValueError("mutations_start and mutations_end must be >= 1")

    @property
    def total_candidates(self) -> int:
        if self.strategy == "random" and self.random_candidates is not None:
            return self.random_candidates
        return self.population + self.children * self.generations

    def mutations(self, generation: int) -> int:
        """Mutations per child in ``generation`` (1-based), falling linearly."""
        if self.generations <= 1:
            return self.mutations_start
        frac = (generation - 1) / (self.generations - 1)
        return round(self.mutations_start + frac * (self.mutations_end - self.mutations_start))


class _Runner:
    """Evaluates candidates into the history, reusing scores of seen canonical hashes."""

    def __init__(
        self,
        history: SearchHistory,
        evaluate: Evaluate,
        costs: Costs | None,
        objective: ObjectiveConfig,
        progress: tqdm | None,
    ) -> None:
        self.history = history
        self.evaluate = evaluate
        self.costs = costs
        self.objective = objective
        self.progress = progress

    def run(self, arch: Architecture, generation: int) -> Evaluation:
        h = arch.canonical_hash()
        seen = self.history.lookup(h)
        t0 = time.perf_counter()
        if seen is not None:
            rec = Evaluation(
                len(self.history), generation, arch, h, seen.metrics, seen.costs, seen.score, True
            )
        else:
            costs = self.costs(arch) if self.costs else {}
            metrics = self.evaluate(arch)
            score = self.objective.score(metrics, costs)
            rec = Evaluation(
                len(self.history),
                generation,
                arch,
                h,
                metrics,
                costs,
                score,
                False,
                time.perf_counter() - t0,
            )
        self.history.append(rec)
        if self.progress is not None:
            self.progress.update(1)
            best = self.history.best()
            self.progress.set_postfix(
                gen=generation,
                best=f"{best.score:.5f}",
                evaluated=self.history.evaluated,
                cached=len(self.history) - self.history.evaluated,
            )
        return rec


def _progress_bar(total: int, history: SearchHistory, desc: str, progress: bool) -> tqdm:
    """A candidates bar that starts where a resumed history left off."""
    return progress_bar(total, desc, "cand", initial=len(history), enabled=progress)


class RegularizedEvolution:
    """Aging evolution (Real et al., 2019) as configured in NASRec.

    The population is a queue: each generation draws ``children`` parents, each the best of a
    random ``tournament`` from the population, mutates each, evaluates the children and
    appends them; the ``children`` oldest members leave. So the population is always the last
    ``population`` records of the history, which is what makes resuming exact.

    Args:
        space: the search space.
        cfg: evolution settings.
        seed: the search's seed.
        features: the data's sparse feature names; with ``space.embedding_widths`` every
            initial candidate draws one width per feature and mutations may change them (the
            joint search). Empty: interaction-only, as before.

    Example::

        evo = RegularizedEvolution(space, EvolutionConfig(population=16, tournament=4,
                                                           children=4, generations=10), seed=0)
        best = evo.run(evaluator, SearchHistory("history.jsonl"))
    """

    def __init__(
        self,
        space: SearchSpace,
        cfg: EvolutionConfig,
        seed: int = 2018,
        features: Features = (),
    ) -> None:
        self.space = space
        self.cfg = cfg
        self.seed = seed
        self.rows = dict(features) if isinstance(features, Mapping) else None
        self.features: Features = self.rows if self.rows is not None else tuple(features)

    def initial_population(self) -> list[Architecture]:
        """The random initial population: ``population`` distinct canonical architectures."""
        rng = random.Random(f"{self.seed}:init")
        return list(self.space.enumerate_samples(rng, self.cfg.population, self.features))

    def children(self, population: list[Evaluation], generation: int) -> list[Architecture]:
        """The children of ``generation`` proposed from ``population`` (deterministic)."""
        rng = random.Random(f"{self.seed}:gen:{generation}")
        kids = []
        for _ in range(self.cfg.children):
            contestants = rng.sample(population, min(self.cfg.tournament, len(population)))
            parent = min(contestants, key=lambda r: (r.score, r.index))
            n = self.cfg.mutations(generation)
            kids.append(self.space.mutate(parent.arch, rng, n, self.rows))
        return kids

    def run(
        self,
        evaluate: Evaluate,
        history: SearchHistory,
        costs: Costs | None = None,
        objective: ObjectiveConfig | None = None,
        progress: bool = True,
    ) -> Evaluation:
        """Runs (or resumes) the search to completion and returns the best evaluation."""
        cfg = self.cfg
        bar = _progress_bar(cfg.total_candidates, history, "search", progress)
        runner = _Runner(history, evaluate, costs, objective or ObjectiveConfig(), bar)
        try:
            initial = self.initial_population()
            for arch in initial[len(history) :]:
                runner.run(arch, 0)
            for generation in range(1, cfg.generations + 1):
                start = cfg.population + (generation - 1) * cfg.children
                done = len(history) - start
                if done >= cfg.children:
                    continue
                population = history.records[start - cfg.population : start]
                for arch in self.children(population, generation)[done:]:
                    runner.run(arch, generation)
        finally:
            bar.close()
        return history.best()


class RandomSearch:
    """The baseline strategy: independent uniform samples, scored the same way.

    Args:
        space: the search space.
        candidates: how many to draw.
        seed: the search's seed.
        features: sparse feature names or their rows, to draw widths (see
            :class:`RegularizedEvolution`).
    """

    def __init__(
        self, space: SearchSpace, candidates: int, seed: int = 2018, features: Features = ()
    ) -> None:
        self.space = space
        self.candidates = candidates
        self.seed = seed
        self.features: Features = (
            dict(features) if isinstance(features, Mapping) else tuple(features)
        )

    def run(
        self,
        evaluate: Evaluate,
        history: SearchHistory,
        costs: Costs | None = None,
        objective: ObjectiveConfig | None = None,
        progress: bool = True,
    ) -> Evaluation:
        bar = _progress_bar(self.candidates, history, "random search", progress)
        runner = _Runner(history, evaluate, costs, objective or ObjectiveConfig(), bar)
        try:
            for i in range(len(history), self.candidates):
                rng = random.Random(f"{self.seed}:random:{i}")
                runner.run(self.space.sample(rng, self.features), 0)
        finally:
            bar.close()
        return history.best()


def make_strategy(
    space: SearchSpace, cfg: EvolutionConfig, seed: int, features: Features = ()
) -> RegularizedEvolution | RandomSearch:
    """The strategy the config names; ``features`` (sparse feature names, or ``{feature:
    rows}`` to cap each width at its table's rows) turn on the joint search of embedding
    widths where ``space.embedding_widths`` lists some."""
    if cfg.strategy == "random":
        return RandomSearch(space, cfg.total_candidates, seed, features)
    return RegularizedEvolution(space, cfg, seed, features)
