"""``EmbeddingSizeSearch``: both stages of the embedding-size search and their outputs.

Writes under ``out``: ``embedding_dims.json`` (``{feature: width}``), ``embedding_history.jsonl``
(the policy's choices, a line per seed and step), ``embedding_search.json`` (parameters
against the uniform model, agreement across seeds, evolution's pick against the policy's) and
``embedding_search.md`` with its figures; the stages' own files go to ``embedding_search/``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSplits
from torchrec_nas.embedding_search.dims import agreement, embedding_params, resolve_budget
from torchrec_nas.embedding_search.policy import WidthPolicy, evolve_widths, fit_to_budget
from torchrec_nas.embedding_search.report import write_report
from torchrec_nas.embedding_search.scoring import WidthObjective, WidthScorer
from torchrec_nas.embedding_search.shrink import PairedScores, one_se_shrink
from torchrec_nas.embedding_search.stage1 import (
    STAGE_DIR,
    load_embedding_supernet,
    run_embedding_supernet,
    stage_widths,
)
from torchrec_nas.progress import progress_bar
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.default import default_runtime
from torchrec_nas.train.checkpoint import write_json_atomic, write_text_atomic


class EmbeddingSizeSearch:
    """AdaS&S on a TorchRec model: stage 1 trains the embedding supernet, stage 2 searches a
    width per feature under the budget with a REINFORCE policy (one run per
    ``embedding_search.seeds``) and with regularized evolution.

    With ``embedding_search.shrink`` on, each seed's policy pick is then shrunk by the
    one-standard-error rule (:func:`~torchrec_nas.embedding_search.shrink.one_se_shrink`):
    per feature, the smallest width whose validation score is within ``k`` paired standard
    errors of the pick's. The chosen widths are those of the seed whose policy pick has the
    highest reward (shrunk when on); ``agreement`` is over the final picks and
    ``agreement_before_shrink`` over the policy's own. With
    ``embedding_search.cap_at_rows`` each feature's widths stop at its table's rows
    (:func:`~torchrec_nas.space_widths.width_cap`), in both stages.
    Stage 1 resumes from its checkpoints; stage 2 replays from its score cache, so a killed
    run resumes to the same result.

    Args:
        cfg: the run's config (``embedding_search:`` section).
        out: the output directory (a local path or URL).
        runtime: one process or a rank of a sharded job (default: as the other stages).
        data: this rank's data (default: built from ``cfg.data``).

    Example::

        search = EmbeddingSizeSearch(Config.load("configs/demo.yaml"), "runs/emb")
        result = search.run()
        result["embedding_dims"]   # {"cat_0": 8, ...}
    """

    def __init__(
        self,
        cfg: Config,
        out: str | Path,
        runtime: Runtime | None = None,
        data: DataSplits | None = None,
    ) -> None:
        self.cfg = cfg
        self.out = str(out)
        self.runtime = runtime or default_runtime(cfg)
        self.data = data or self.runtime.data(cfg)
        spec = self.data.spec
        self.rows = dict(zip(spec.sparse_names, spec.num_embeddings))
        self.token_width = cfg.space.embedding_dim
        es = cfg.embedding_search
        #: Each feature's widths in both stages: capped at its rows, or every width.
        self.allowed = stage_widths(cfg, spec)
        self.budget = resolve_budget(
            es.budget, self.rows, es.widths, self.token_width, self.allowed
        )
        self._shrink_scorer: WidthScorer | None = None

    def train_supernet(self) -> dict[str, Any]:
        """Stage 1 (every rank); returns ``embedding_search/supernet.json``'s summary."""
        return run_embedding_supernet(self.cfg, self.out, self.runtime, self.data)

    def objective(self) -> WidthObjective:
        """The reward on the trained supernet's fixed validation batches."""
        es = self.cfg.embedding_search
        model = load_embedding_supernet(self.cfg, self.data.spec, self.out)
        model = model.to(self.runtime.device)
        cache = storage.join(self.out, STAGE_DIR, "scores.jsonl")
        scorer = WidthScorer(model, self.data.val, es.val_batches, cache, self.runtime.device)
        return WidthObjective(
            scorer,
            self.rows,
            self.token_width,
            self.budget,
            es.score,
            es.penalty,
            es.size_weight,
        )

    def paired_scores(self, objective: WidthObjective) -> PairedScores:
        """The shrink rule's paired comparisons: on stage 2's scorer, or on
        ``shrink.val_batches`` batches of their own (cached in a file of their own)."""
        es = self.cfg.embedding_search
        n = es.shrink.val_batches
        if n is None:
            scorer, name = objective.scorer, "shrink.jsonl"
        else:
            if self._shrink_scorer is None:
                model = objective.scorer.model
                self._shrink_scorer = WidthScorer(
                    model, self.data.val, n, None, self.runtime.device
                )
            scorer, name = self._shrink_scorer, f"shrink-{n}.jsonl"
        return PairedScores(scorer, es.score, storage.join(self.out, STAGE_DIR, name))

    def search(self, objective: WidthObjective, seed: int) -> dict[str, Any]:
        """Stage 2 for one seed: the policy's steps and pick, and evolution's pick."""
        es = self.cfg.embedding_search
        features = list(self.rows)
        policy = WidthPolicy(
            features,
            es.widths,
            es.policy_lr,
            es.baseline_decay,
            es.policy_samples,
            seed,
            self.allowed,
        )
        bar = progress_bar(es.policy_steps, f"policy seed {seed}", "step", enabled=es.progress)
        steps = []
        try:
            for k in range(es.policy_steps):
                steps.append(policy.step(k, objective))
                bar.update(1)
        finally:
            bar.close()
        pick = policy.pick()
        if objective.params(pick) > self.budget:
            # The most likely choice may lie over the budget: take the best drawn one within.
            feasible = [
                (r, s)
                for st in steps
                for r, s in zip(st.rewards, st.samples)
                if objective.params(s) <= self.budget
            ]
            if feasible:
                pick = max(feasible, key=lambda rs: rs[0])[1]
        policy_result: dict[str, Any] = {"widths": pick, **objective.describe(pick)}
        shrink: dict[str, Any] = {"enabled": es.shrink.enabled}
        if es.shrink.enabled:
            paired = self.paired_scores(objective)
            shrunk, tried = one_se_shrink(
                pick, paired, self.rows, self.token_width, self.allowed, es.shrink.k
            )
            shrink.update(k=es.shrink.k, pick=policy_result, steps=tried)
            policy_result = {"widths": shrunk, **objective.describe(shrunk)}

        def repair(dims: dict[str, int], rng: random.Random) -> dict[str, int]:
            return fit_to_budget(dims, es.widths, objective.params, self.budget, rng)

        evolution = evolve_widths(
            features, es.widths, es.evolution, objective, seed, repair, self.allowed
        )
        best = max(evolution, key=lambda c: (c.reward, -c.index))
        return {
            "seed": seed,
            "policy": policy_result,
            "shrink": shrink,
            "evolution": {"widths": best.widths, **objective.describe(best.widths)},
            "history": [{"seed": seed, **s.to_dict()} for s in steps],
            "evolution_candidates": [
                {
                    "widths": c.widths,
                    "reward": c.reward,
                    "score": objective.score(c.widths),
                    "params": objective.params(c.widths),
                }
                for c in evolution
            ],
        }

    def run(self) -> dict[str, Any]:
        """Both stages and the outputs; returns what ``embedding_search.json`` holds plus
        ``embedding_dims``."""
        stage1 = self.train_supernet()
        result: dict[str, Any] = {}
        if self.runtime.is_primary:
            result = self._stage2(stage1)
        result = self.runtime.broadcast(result)
        self.runtime.barrier()
        return result

    def _stage2(self, stage1: dict[str, Any]) -> dict[str, Any]:
        es = self.cfg.embedding_search
        objective = self.objective()
        runs = [self.search(objective, s) for s in es.seeds]
        # The seed whose policy found the highest reward (before the shrink, which trades
        # reward within the noise for parameters).
        best = max(runs, key=lambda r: r["shrink"].get("pick", r["policy"])["reward"])
        dims = best["policy"]["widths"]
        uniform = {f: self.token_width for f in self.rows}
        uniform_params = embedding_params(uniform, self.rows, self.token_width)
        summary = {
            "chosen_seed": best["seed"],
            "embedding_dims": dims,
            "params": objective.params(dims),
            "uniform": {"width": self.token_width, **objective.describe(uniform)},
            "params_ratio_to_uniform": objective.params(dims) / uniform_params,
            "budget": self.budget,
            "score": es.score,
            "widths": sorted(es.widths),
            "cap_at_rows": es.cap_at_rows,
            "allowed_widths": {f: list(ws) for f, ws in self.allowed.items()},
            "seeds": [{k: r[k] for k in ("seed", "policy", "shrink", "evolution")} for r in runs],
            # Also weighted by table rows (the share of the uniform model's parameters), and
            # over the features with more than one allowed width; after the shrink when on.
            "agreement": agreement(
                [r["policy"]["widths"] for r in runs], es.widths, self.rows, self.allowed
            ),
            "agreement_before_shrink": agreement(
                [r["shrink"].get("pick", r["policy"])["widths"] for r in runs],
                es.widths,
                self.rows,
                self.allowed,
            ),
            "evolution_agreement": agreement(
                [r["evolution"]["widths"] for r in runs], es.widths, self.rows, self.allowed
            ),
            "candidates_scored": len(objective.scorer.cache),
            "stage1": stage1,
        }
        write_json_atomic(storage.join(self.out, "embedding_dims.json"), dims)
        lines = [json.dumps(h) for r in runs for h in r["history"]]
        write_text_atomic(
            storage.join(self.out, "embedding_history.jsonl"), "\n".join(lines) + "\n"
        )
        write_json_atomic(storage.join(self.out, "embedding_search.json"), summary)
        scored = [
            (objective.params(d), objective.score(d))
            for d in map(json.loads, objective.scorer.cache)
        ]
        write_report(self.out, summary, runs, scored)
        return summary


def run_embedding_search(
    cfg: Config, out: str | Path, runtime: Runtime | None = None
) -> dict[str, Any]:
    """``torchrec-nas embedding-search``: :meth:`EmbeddingSizeSearch.run`.

    Example::

        run_embedding_search(Config.load("configs/demo.yaml"), "runs/emb")
    """
    return EmbeddingSizeSearch(cfg, out, runtime).run()
