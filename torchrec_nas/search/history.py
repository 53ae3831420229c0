"""The search's append-only record of evaluations, from which a killed search resumes."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchrec_nas.space import Architecture


@dataclass
class Evaluation:
    """One evaluated (or cache-hit) candidate.

    Args:
        index: position in the history.
        generation: the generation that proposed it (0: the initial population).
        arch: the architecture.
        arch_hash: its canonical hash.
        metrics: what the evaluator measured (``logloss``, ``auc``, ...).
        costs: what the cost models said (``flops``, ``params``, ``pim_energy``, ...).
        score: the objective value (lower is better; ``inf`` for infeasible).
        cached: the canonical hash had been evaluated before, so nothing was run.
        seconds: time spent evaluating.
    """

    index: int
    generation: int
    arch: Architecture
    arch_hash: str
    metrics: dict[str, float]
    costs: dict[str, float] = field(default_factory=dict)
    score: float = math.inf
    cached: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "generation": self.generation,
            "hash": self.arch_hash,
            "score": self.score if math.isfinite(self.score) else None,
            "metrics": self.metrics,
            "costs": self.costs,
            "cached": self.cached,
            "seconds": round(self.seconds, 4),
            "architecture": self.arch.to_dict(),
        }

    @staticmethod
    def from_dict(d: dict[str, Any], where: str) -> Evaluation:
        score = d.get("score")
        return Evaluation(
            index=int(d["index"]),
            generation=int(d["generation"]),
            arch=Architecture.from_dict(d["architecture"], where),
            arch_hash=str(d["hash"]),
            metrics={k: float(v) for k, v in d["metrics"].items()},
            costs={k: float(v) for k, v in d.get("costs", {}).items()},
            score=math.inf if score is None else float(score),
            cached=bool(d.get("cached", False)),
            seconds=float(d.get("seconds", 0.0)),
        )


class SearchHistory:
    """A JSONL file of :class:`Evaluation` s, one line each, flushed and fsynced per line.

    Opening an existing file reads it back (a last line cut off by a crash is dropped), so a
    search that restarts knows everything evaluated so far.

    Args:
        path: the JSONL file (``None``: in memory only).

    Example::

        history = SearchHistory("runs/x/history.jsonl")
        history.append(evaluation)
        best = history.best()
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.records: list[Evaluation] = []
        self.by_hash: dict[str, Evaluation] = {}
        if self.path is not None and self.path.exists():
            self._read()

    def _read(self) -> None:
        assert self.path is not None
        lines = self.path.read_text().splitlines()
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = Evaluation.from_dict(json.loads(line), f"{self.path}:{n}")
            except json.JSONDecodeError as e:
                if n == len(lines):  # cut off mid-write by a crash: drop it and rewrite clean
                    self._rewrite()
                    break
                raise ValueError(f"{self.path}:{n}: not a JSON record: {e}") from e
            self._add(rec)

    def _rewrite(self) -> None:
        assert self.path is not None
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in self.records))
        os.replace(tmp, self.path)

    def _add(self, rec: Evaluation) -> None:
        self.records.append(rec)
        self.by_hash.setdefault(rec.arch_hash, rec)

    def append(self, rec: Evaluation) -> None:
        self._add(rec)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(rec.to_dict()) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Evaluation]:
        return iter(self.records)

    def lookup(self, arch_hash: str) -> Evaluation | None:
        return self.by_hash.get(arch_hash)

    def best(self) -> Evaluation:
        if not self.records:
            raise ValueError("the search history is empty")
        return min(self.records, key=lambda r: r.score)

    @property
    def evaluated(self) -> int:
        """Candidates actually evaluated (cache hits excluded)."""
        return sum(not r.cached for r in self.records)
