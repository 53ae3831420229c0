"""Re-ranking the search's best candidates by short stand-alone training (``search.rerank``).

The supernet's scores decide which few candidates are worth a closer look; a short training of
each from scratch, with the final-training recipe and early stopping, decides which of them is
picked. See :class:`~torchrec_nas.search.config.RerankConfig`.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.architecture import Architecture, ArchitectureError, liveness
from torchrec_nas.baseline_archs import dcn_architecture, dlrm_architecture
from torchrec_nas.config import Config
from torchrec_nas.data import DataSpec, DataSplits
from torchrec_nas.hardware.flops import architecture_costs
from torchrec_nas.progress import progress_bar
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.trainer import batches_per_epoch
from torchrec_nas.search.history import Evaluation, SearchHistory
from torchrec_nas.train.standalone import StandaloneTrainer, standalone_loop


def top_candidates(history: SearchHistory, k: int) -> list[Evaluation]:
    """The ``k`` distinct architectures with the lowest finite scores (within the budgets),
    best first; ties keep the history's order."""
    seen: set[str] = set()
    ranked: list[Evaluation] = []
    for rec in sorted(history, key=lambda r: (r.score, r.index)):
        if not math.isfinite(rec.score) or rec.arch_hash in seen:
            continue
        seen.add(rec.arch_hash)
        ranked.append(rec)
        if len(ranked) == k:
            break
    return ranked


def check_rerank(cfg: Config, out: str | Path, runtime: Runtime) -> Path:
    """The local directory re-ranking caches in; raises ``ValueError`` naming
    ``search.rerank`` where it cannot run (several ranks, a remote ``out``). The search calls
    it before scoring anything, so a bad setting costs no search time."""
    if runtime.world_size > 1:
        raise ValueError(
            "search.rerank: re-ranking trains in one process; set top_k: 0, or run `torchrec-nas "
            "search` in one process on this output once the distributed supernet is trained"
        )
    local = storage.local_path(out)
    if local is None:
        raise ValueError(f"search.rerank: {out} is not a local directory; set top_k: 0")
    return local


@dataclass
class _Candidate:
    """One architecture the stage trains, and where it came from."""

    arch: Architecture
    origin: str  # "supernet", "baseline:<name>" or "local:<round>"
    evaluation: Evaluation | None = None  # the supernet's, for its candidates
    supernet_rank: int | None = None


def baseline_architecture(cfg: Config, name: str) -> Architecture:
    """Baseline ``name`` (``dlrm`` or ``dcn``) as an architecture of ``cfg.space`` at
    ``train.baselines``' sizes, without LayerNorms (the baseline's own function).

    Raises:
        ArchitectureError: the space cannot hold it (naming what is missing).
    """
    make = dlrm_architecture if name == "dlrm" else dcn_architecture
    sizes = cfg.train.baselines
    arch = make(
        cfg.space, sizes.dense_arch_layer_sizes, sizes.over_arch_layer_sizes, layer_norm=False
    )
    cfg.space.validate(arch)
    return arch


def objective_costs(cfg: Config, spec: DataSpec) -> Callable[[Architecture], dict[str, float]]:
    """The search's cost model: an architecture's costs on ``spec``'s features and tables at
    ``search.objective``'s hardware and embedding mode (what budgets and objectives name).

    Example::

        costs = objective_costs(cfg, data.spec)
        costs(arch)["flops"]
    """
    tables = spec.tables(cfg.space.embedding_dim)
    dense_in = len(spec.dense_names)
    objective = cfg.search.objective

    def costs(arch: Architecture) -> dict[str, float]:
        return architecture_costs(
            arch, cfg.space, dense_in, tables, objective.hardware, objective.embedding_mode
        )

    return costs


def resolve_budgets(cfg: Config, costs: Callable[[Architecture], dict[str, float]]) -> Config:
    """``cfg`` with every budget that names a baseline (``flops: dcn``) replaced by that
    baseline's cost (see :func:`baseline_architecture`).

    Raises:
        ValueError: naming the budget, when the space cannot hold the baseline.

    Example::

        cfg = resolve_budgets(cfg, costs)   # budgets: {flops: dcn} -> {flops: 631872.0}
    """
    objective = cfg.search.objective
    budgets: dict[str, float | str] = {}
    for name, limit in objective.budgets.items():
        if isinstance(limit, str):
            try:
                limit = costs(baseline_architecture(cfg, limit))[name]
            except ArchitectureError as e:
                raise ValueError(f"search.objective.budgets.{name}: {limit}: {e}") from e
        budgets[name] = limit
    objective = dataclasses.replace(objective, budgets=budgets)
    return dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, objective=objective))


def baseline_candidates(
    cfg: Config, costs: Callable[[Architecture], dict[str, float]]
) -> list[tuple[str, Architecture | None, str]]:
    """``search.rerank.baselines`` as architectures of the space, without LayerNorms:
    ``(name, architecture or None, why it is left out)`` for each (not in the space, or over
    a cost budget)."""
    out: list[tuple[str, Architecture | None, str]] = []
    for name in cfg.search.rerank.baselines:
        try:
            arch = baseline_architecture(cfg, name)
        except ArchitectureError as e:
            out.append((name, None, f"not an architecture of the space: {e}"))
            continue
        over = cfg.search.objective.over_budget(costs(arch))
        out.append((name, None, over) if over else (name, arch, ""))
    return out


def rerank(
    cfg: Config,
    out: str | Path,
    runtime: Runtime,
    data: DataSplits,
    history: SearchHistory,
    costs: Callable[[Architecture], dict[str, float]],
) -> tuple[Evaluation, list[dict[str, Any]]]:
    """Trains the stage's candidates stand-alone (``search.rerank``: the supernet's
    ``top_k``, the ``baselines``, each under every ``layer_norm`` value, then
    ``local_rounds`` of hill climbing) and returns the one with the lowest validation
    logloss, with one row per training (origin, supernet score, stand-alone validation and
    test metrics, costs, seconds).

    Args:
        cfg: the run's config (``search.rerank``, and ``train``'s optimizer).
        out: the run's directory; the cache is ``out/rerank_cache.jsonl`` (local paths only).
        runtime: one process.
        data: the data splits.
        history: the finished search's history.
        costs: the search's cost model (the budgets constrain baselines and mutants).

    Raises:
        ValueError: when no candidate fits the budgets, the run is distributed, or ``out`` is
            not a local directory.

    Example::

        best, rows = rerank(cfg, "runs/demo", LocalRuntime("cpu"), data, history, costs)
    """
    rr = cfg.search.rerank
    local = check_rerank(cfg, out, runtime)
    pool = [
        _Candidate(rec.arch, "supernet", rec, rank + 1)
        for rank, rec in enumerate(top_candidates(history, rr.top_k))
    ]
    skipped = []
    for name, arch, why in baseline_candidates(cfg, costs):
        if arch is None:
            skipped.append({"origin": f"baseline:{name}", "skipped": why, "picked": False})
        else:
            pool.append(_Candidate(arch, f"baseline:{name}"))
    if not pool:
        raise ValueError("search.rerank: no candidate fits search.objective.budgets")
    loop = standalone_loop(
        cfg, batches_per_epoch(data.train), rr.epochs, rr.eval_every, rr.patience, rr.min_fraction
    )
    trainer = StandaloneTrainer(cfg, data, runtime, local / "rerank_cache.jsonl", loop)
    seed = cfg.seed if rr.seed is None else rr.seed
    norms = rr.layer_norm if cfg.space.layer_norm else [False]
    rows: list[dict[str, Any]] = []
    trained: dict[str, tuple[_Candidate, dict[str, Any]]] = {}
    # The most trainings the stage can run (duplicates and a spent neighbourhood run fewer).
    total = len(pool) * len(norms) + rr.local_rounds * rr.local_children
    total += (rr.confirm_top + len(rr.baselines)) * rr.confirm_seeds
    bar = progress_bar(total, "stand-alone", "model", enabled=cfg.search.progress)

    def fit(arch: Architecture, s: int) -> dict[str, Any]:
        result = trainer(arch, s)
        bar.update(1)
        return result

    def train(cand: _Candidate) -> None:
        h = cand.arch.canonical_hash()
        if h in trained:
            return
        result = fit(cand.arch, seed)
        trained[h] = (cand, result)
        rows.append(_row(cand, h, result, costs))
        best = min(r["val"]["logloss"] for _, r in trained.values())
        bar.set_postfix(origin=cand.origin, val_logloss=f"{best:.4f}", refresh=False)

    for cand in pool:
        for norm in norms:
            train(dataclasses.replace(cand, arch=dataclasses.replace(cand.arch, layer_norm=norm)))
    for r in range(rr.local_rounds):
        parent = _best(trained)
        rng = random.Random(f"{seed}:local:{r}")
        for _ in range(rr.local_children):
            child = _mutant(cfg, parent.arch, rng, set(trained), costs)
            if child is None:
                break  # the neighbourhood within the budgets is exhausted
            train(_Candidate(child, f"local:{r + 1}"))
    pick = _confirm(rr.confirm_top, rr.confirm_seeds, seed, trained, rows, fit)
    bar.close()
    for row in rows:
        row["picked"] = row["hash"] == pick.arch.canonical_hash()
    return _evaluation(pick, trained, costs), rows + skipped


def _confirm(
    top: int,
    extra_seeds: int,
    seed: int,
    trained: dict[str, tuple[_Candidate, dict[str, Any]]],
    rows: list[dict[str, Any]],
    trainer: Callable[[Architecture, int], dict[str, Any]],
) -> _Candidate:
    """The pick: the best single-seed candidate or, with ``extra_seeds``, the lowest mean
    validation logloss of the ``top`` best and of each baseline's best (the reference a
    searched model has to beat) after each trains with seeds ``seed + 1`` to
    ``seed + extra_seeds`` too (their rows get ``val_seeds``: the seeds' mean and values,
    and for searched models the ``margin`` over the best baseline's mean with its
    ``standard_error``). A searched model replaces the best baseline only by a margin larger
    than that standard error; otherwise the baseline is the pick."""
    if not extra_seeds or top < 1:
        return _best(trained)
    ranked = sorted(trained.items(), key=lambda kv: kv[1][1]["val"]["logloss"])
    items = ranked[:top]
    for origin in dict.fromkeys(c.origin for c, _ in trained.values()):
        if origin.startswith("baseline:"):
            base_item = next(kv for kv in ranked if kv[1][0].origin == origin)
            if base_item not in items:
                items.append(base_item)
    losses: dict[str, list[float]] = {}
    for h, (cand, first) in items:
        losses[h] = [first["val"]["logloss"]]
        losses[h] += [
            trainer(cand.arch, seed + k)["val"]["logloss"] for k in range(1, extra_seeds + 1)
        ]
    means = {h: statistics.fmean(v) for h, v in losses.items()}
    # Ties keep the single-seed order.
    pick = min(range(len(items)), key=lambda i: (means[items[i][0]], i))
    references = [h for h, (c, _) in items if c.origin.startswith("baseline:")]
    reference = min(references, key=lambda h: means[h]) if references else None
    for h, _ in items:
        row = next(r for r in rows if r["hash"] == h)
        row["val_seeds"] = {"mean_logloss": means[h], "logloss": losses[h]}
        if reference is not None and h not in references:
            # The margin over the best baseline and its standard error over the seeds.
            se = math.sqrt(
                (statistics.variance(losses[h]) + statistics.variance(losses[reference]))
                / len(losses[h])
            )
            row["val_seeds"].update(margin=means[reference] - means[h], standard_error=se)
    chosen = items[pick][0]
    if reference is not None and chosen not in references:
        vs = next(r for r in rows if r["hash"] == chosen)["val_seeds"]
        if vs["margin"] <= vs["standard_error"]:
            return trained[reference][0]  # no candidate beats the baseline beyond its noise
    return items[pick][1][0]


def _best(trained: dict[str, tuple[_Candidate, dict[str, Any]]]) -> _Candidate:
    # Lowest validation logloss; ties keep the training order.
    items = list(trained.values())
    i = min(range(len(items)), key=lambda k: (items[k][1]["val"]["logloss"], k))
    return items[i][0]


def _mutant(
    cfg: Config,
    parent: Architecture,
    rng: random.Random,
    seen: set[str],
    costs: Callable[[Architecture], dict[str, float]],
) -> Architecture | None:
    """A mutation of one or two genes of ``parent``, within the budgets and not yet trained
    (it keeps ``parent``'s ``layer_norm``); ``None`` after 200 draws without one.

    A mutant over a budget is repaired rather than dropped: a randomly chosen live block's
    dense width steps down to the next narrower choice until it fits (at most 8 steps), so a
    move that costs more (a gating layer for a plain one) can be paid for elsewhere."""
    over_budget = cfg.search.objective.over_budget
    for _ in range(200):
        child: Architecture | None = cfg.space.mutate(parent, rng, rng.choice((1, 2)))
        for _step in range(9):
            if child is None or not over_budget(costs(child)):
                break
            child = _narrower(cfg, child, rng)
        else:
            continue  # still over the budget after 8 narrower steps
        if child is not None and child.canonical_hash() not in seen:
            return child
    return None


def _narrower(cfg: Config, arch: Architecture, rng: random.Random) -> Architecture | None:
    """``arch`` with one random live block's dense width one choice narrower (``None`` when
    every live block is at the narrowest)."""
    dims = sorted(cfg.space.dense_dims)
    live = liveness(arch)
    options = [
        i
        for i, b in enumerate(arch.blocks)
        if live[i].dense_op and b.dense_dim in dims and dims.index(b.dense_dim) > 0
    ]
    if not options:
        return None
    i = rng.choice(options)
    blocks = list(arch.blocks)
    blocks[i] = dataclasses.replace(blocks[i], dense_dim=dims[dims.index(blocks[i].dense_dim) - 1])
    return dataclasses.replace(arch, blocks=tuple(blocks))


def _row(
    cand: _Candidate,
    h: str,
    result: dict[str, Any],
    costs: Callable[[Architecture], dict[str, float]],
) -> dict[str, Any]:
    rec = cand.evaluation
    return {
        "hash": h,
        "origin": cand.origin,
        "layer_norm": cand.arch.layer_norm,
        "supernet_rank": cand.supernet_rank,
        "supernet_score": rec.score if rec is not None else None,
        "supernet_metrics": rec.metrics if rec is not None else None,
        "val": result["val"],
        "test": result["test"],
        "steps": result["steps"],
        "seconds": result["seconds"],
        "costs": rec.costs if rec is not None else costs(cand.arch),
        "architecture": cand.arch.to_dict(),
    }


def _evaluation(
    pick: _Candidate,
    trained: dict[str, tuple[_Candidate, dict[str, Any]]],
    costs: Callable[[Architecture], dict[str, float]],
) -> Evaluation:
    """The pick as an :class:`Evaluation`: the supernet's record (with the pick's
    ``layer_norm``) for its candidates; for baselines and mutants, index -1 and the
    stand-alone validation metrics as the score."""
    h = pick.arch.canonical_hash()
    result = trained[h][1]
    if pick.evaluation is not None:
        return dataclasses.replace(pick.evaluation, arch=pick.arch, arch_hash=h)
    val = {k: float(v) for k, v in result["val"].items() if isinstance(v, (int, float))}
    return Evaluation(
        index=-1,
        generation=-1,
        arch=pick.arch,
        arch_hash=h,
        metrics=val,
        costs=costs(pick.arch),
        score=val["logloss"],
    )
