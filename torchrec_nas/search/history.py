"""The search's append-only record of evaluations, from which a killed search resumes."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.space import Architecture, ArchitectureError
from torchrec_nas.train.checkpoint import json_dumps


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
        seconds: time spent evaluating (kept in memory only: the history file records what
            was computed, which a resumed search reproduces exactly, not how long it took).
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
            metrics={k: math.nan if v is None else float(v) for k, v in d["metrics"].items()},
            costs={k: float(v) for k, v in d.get("costs", {}).items()},
            score=math.inf if score is None else float(score),
            cached=bool(d.get("cached", False)),
        )


class HistoryError(ValueError):
    """A history that cannot be resumed: a malformed line, or one written by another search."""


def _evaluation(data: Any, where: str) -> Evaluation:
    """One history line as an :class:`Evaluation`, or a :class:`HistoryError` naming ``where``."""
    if not isinstance(data, dict):
        raise HistoryError(f"{where}: expected a JSON object, got {type(data).__name__}")
    missing = [
        k for k in ("index", "generation", "hash", "metrics", "architecture") if k not in data
    ]
    if missing:
        raise HistoryError(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        return Evaluation.from_dict(data, where)
    except ArchitectureError as e:
        raise HistoryError(str(e)) from e
    except (TypeError, ValueError, AttributeError) as e:
        raise HistoryError(f"{where}: a field has the wrong type ({e})") from e


class SearchHistory:
    """A JSONL file of :class:`Evaluation` s, one line each, flushed and fsynced per line
    (through :mod:`torchrec_nas.storage`: the file may be at a URL).

    Opening an existing file reads it back (a last line cut off by a crash is dropped), so a
    search that restarts knows everything evaluated so far. With ``provenance`` (see
    :func:`~torchrec_nas.search.provenance.search_provenance`), the history is tied to what
    produced it: a sidecar ``<name>.meta.json`` records it while the history is empty, and
    reopening a non-empty history for another config, seed or supernet raises
    :class:`HistoryError` naming what differs, instead of reusing stale scores.

    Args:
        path: the JSONL file, a local path or URL (``None``: in memory only).
        provenance: named fingerprints of what produced the scores (``config``, ``seed``,
            ``supernet``); ``None``: not checked.

    Example::

        history = SearchHistory("runs/x/history.jsonl", {"seed": "0", "supernet": "sha256:..."})
        history.append(evaluation)
        best = history.best()
    """

    def __init__(
        self, path: str | Path | None = None, provenance: Mapping[str, str] | None = None
    ) -> None:
        self.path = str(path) if path is not None else None
        self.records: list[Evaluation] = []
        self.by_hash: dict[str, Evaluation] = {}
        if self.path is not None and storage.exists(self.path):
            self._read()
        if self.path is not None and provenance is not None:
            self._check_provenance(dict(provenance))

    @property
    def meta_path(self) -> str | None:
        """The sidecar file that records what produced the history."""
        if self.path is None:
            return None
        stem = storage.name(self.path).rsplit(".", 1)[0]
        return storage.join(storage.parent(self.path), stem + ".meta.json")

    def _check_provenance(self, provenance: dict[str, str]) -> None:
        assert self.path is not None and self.meta_path is not None
        meta = self.meta_path
        fresh = f"to start fresh, move or delete {self.path} (or use another output directory)"
        if not self.records:  # nothing to reuse: this search starts the history
            text = json.dumps(provenance, indent=2, sort_keys=True) + "\n"
            storage.write_text_atomic(meta, text)
            return
        if not storage.isfile(meta):
            raise HistoryError(
                f"{self.path}: no {storage.name(meta)} records which search wrote these "
                f"{len(self.records)} candidates, so they cannot be resumed; {fresh}"
            )
        try:
            recorded = json.loads(storage.read_text(meta))
        except json.JSONDecodeError as e:
            raise HistoryError(f"{meta}: not JSON ({e}); {fresh}") from e
        if not isinstance(recorded, dict):
            raise HistoryError(f"{meta}: expected a JSON object; {fresh}")
        differ = sorted(
            k for k in provenance.keys() | recorded.keys() if recorded.get(k) != provenance.get(k)
        )
        if differ:
            raise HistoryError(
                f"{self.path}: written by another search (its {', '.join(differ)} "
                f"{'differs' if len(differ) == 1 else 'differ'} from this run's); {fresh}"
            )

    def _read(self) -> None:
        assert self.path is not None
        lines = storage.read_text(self.path).splitlines()
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{self.path}:{n}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                if n == len(lines):  # cut off mid-write by a crash: drop it and rewrite clean
                    self._rewrite()
                    break
                raise HistoryError(f"{where}: not a JSON record: {e}") from e
            self._add(_evaluation(data, where))

    def _rewrite(self) -> None:
        assert self.path is not None
        text = "".join(json_dumps(r.to_dict(), indent=None) + "\n" for r in self.records)
        storage.write_text_atomic(self.path, text)

    def _add(self, rec: Evaluation) -> None:
        self.records.append(rec)
        self.by_hash.setdefault(rec.arch_hash, rec)

    def append(self, rec: Evaluation) -> None:
        self._add(rec)
        if self.path is not None:
            storage.append_lines(self.path, [json_dumps(rec.to_dict(), indent=None)], sync=True)

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
