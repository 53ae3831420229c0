"""The demo pipeline and its Markdown report with figures."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torchrec_nas import storage
from torchrec_nas.architecture_view import architecture_section
from torchrec_nas.config import Config
from torchrec_nas.report_data import data_section, record_config, record_data_summary
from torchrec_nas.report_rerank import rerank_section
from torchrec_nas.search.history import SearchHistory
from torchrec_nas.space import Architecture
from torchrec_nas.stages.spread import SPREAD_RULE
from torchrec_nas.train.checkpoint import write_text_atomic


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    if not storage.exists(path):
        return []
    return [json.loads(line) for line in storage.read_text(path).splitlines() if line.strip()]


def _plot_training(log: list[dict[str, Any]], out_png: str, title: str) -> bool:
    points = [(r["step"], r["loss_ema"]) for r in log if "loss_ema" in r]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points])
    ax.set_xlabel("step")
    ax.set_ylabel("training logloss (EMA)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with storage.open_file(out_png, "wb") as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)
    return True


def _plot_search(history: SearchHistory, out_png: str) -> bool:
    scores = [r.score for r in history]
    if not scores:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best, running = math.inf, []
    for s in scores:
        best = min(best, s)
        running.append(best)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    finite = [(i, s) for i, s in enumerate(scores) if math.isfinite(s)]
    ax.scatter([p[0] for p in finite], [p[1] for p in finite], s=6, alpha=0.5, label="candidate")
    ax.plot(range(len(running)), running, color="C3", label="best so far")
    ax.set_xlabel("candidate")
    ax.set_ylabel("objective (validation logloss)")
    ax.set_title("search progress")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with storage.open_file(out_png, "wb") as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)
    return True


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"
    return str(v)


def describe_architecture(arch: Architecture) -> str:
    """A Markdown table of an architecture's blocks."""
    lines = [
        "| block | dense op | width | dense inputs | sparse op | tokens | sparse inputs | d→s | s→d |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    from torchrec_nas.space import liveness

    for i, (b, lv) in enumerate(zip(arch.blocks, liveness(arch))):
        note = "" if lv.alive else " (dead)"
        lines.append(
            f"| {i}{note} | {b.dense_op} | {b.dense_dim} | {list(b.dense_inputs)} | {b.sparse_op} "
            f"| {b.sparse_tokens} | {list(b.sparse_inputs)} | {int(b.dense_to_sparse)} "
            f"| {int(b.sparse_to_dense)} |"
        )
    return "\n".join(lines)


def _pareto_section(cfg: Config, history: SearchHistory, out: str) -> list[str]:
    """Pareto plots of validation logloss against each cost the search recorded."""
    from torchrec_nas.search.pareto import pareto_front, plot_pareto

    records = [r.to_dict() for r in history if not r.cached and math.isfinite(r.score)]
    if not records:
        return []
    y = cfg.search.objective.pareto[0]
    xs = [x for x in cfg.search.objective.pareto[1:]]
    if "pim_energy" in records[0]["costs"] and "pim_energy" not in xs:
        xs.append("pim_energy")
    if cfg.space.embedding_widths and "memory_bytes" not in xs:  # the joint search
        xs.append("memory_bytes")
    parts: list[str] = []
    for x in xs:
        png = f"pareto_{x}.png"
        with storage.local_file_for_writing(storage.join(out, png)) as local_png:
            plot_pareto(records, x=x, y=y, out_png=local_png, title=f"{y} against {x}")
        front = pareto_front(records, [y, x])
        parts += [
            f"### Pareto front: {y} against {x} ({len(front)} of {len(records)} candidates)",
            "",
        ]
        parts += [f"| hash | {y} | {x} |", "|---|---|---|"]
        for r in sorted(front, key=lambda r: r["costs"].get(x, r["metrics"].get(x, 0.0))):
            xv = r["costs"].get(x, r["metrics"].get(x))
            yv = r["metrics"].get(y, r["costs"].get(y))
            parts.append(f"| `{r['hash']}` | {_fmt(yv)} | {_fmt(xv)} |")
        parts += ["", f"![Pareto front]({png})", ""]
    return parts


def write_report(cfg: Config, out: str | Path) -> str:
    """Writes ``report.md`` (and its PNG figures) from what the stages left under ``out``
    (a local path or URL); returns the report's path."""
    out = str(out)
    parts = ["# torchrec_nas report", ""]
    parts += data_section(out)
    supernet = (
        json.loads(storage.read_text(storage.join(out, "supernet.json")))
        if storage.exists(storage.join(out, "supernet.json"))
        else None
    )
    if supernet:
        parts += [
            "## Supernet training",
            f"- steps: {supernet['steps']}, rows/s: {_fmt(supernet['rows_per_second'])}, "
            f"final loss: {_fmt(supernet['final_loss'])}",
        ]
        if supernet.get("val"):
            v = supernet["val"]
            parts.append(
                f"- validation of a fixed wide path: logloss {_fmt(v['logloss'])}, AUC {_fmt(v['auc'])}"
            )
        if "probe_ne" in supernet:
            verdict = "**at chance**" if supernet.get("at_chance") else "learned"
            parts.append(
                "- normalized entropy, its classifier refit as a candidate's, of that path: "
                f"{_fmt(supernet['probe_ne'])} ({verdict})"
            )
        if supernet.get("chance_message"):
            parts.append(f"- **Supernet at chance:** {supernet['chance_message']}")
        if _plot_training(
            _read_jsonl(storage.join(out, "supernet", "train_log.jsonl")),
            storage.join(out, "supernet_loss.png"),
            "supernet",
        ):
            parts += ["", "![supernet loss](supernet_loss.png)"]
        parts.append("")
    history_path = storage.join(out, "history.jsonl")
    history = SearchHistory(history_path) if storage.exists(history_path) else None
    search_path = storage.join(out, "search.json")
    search: dict[str, Any] = {}
    if storage.exists(search_path):
        search = json.loads(storage.read_text(search_path))
    warning = search.get("warning")
    if history is not None and len(history):
        best = history.best()
        parts += ["## Search"]
        if warning:
            parts += [f"- **Warning:** {warning}"]
        parts += [
            f"- strategy: {cfg.search.strategy}; candidates: {len(history)}; evaluated: "
            f"{history.evaluated}; skipped as already seen (canonical hash): "
            f"{len(history) - history.evaluated}",
            f"- best: `{best.arch_hash}`, validation logloss {best.metrics.get('logloss', math.nan):.4f}, "
            f"AUC {best.metrics.get('auc', math.nan):.4f}, {best.costs.get('flops', math.nan):,.0f} FLOPs/sample",
            "",
        ]
        pick = best.arch
        if search.get("rerank") and "best" in search:
            pick = Architecture.from_dict(search["best"]["architecture"], "search.json")
            parts += [
                f"- picked by the stand-alone stage (below): `{search['best']['hash']}`"
                + ("" if pick.layer_norm else ", without LayerNorms"),
                "",
            ]
        parts += architecture_section(pick, out, cfg.space)
        parts += [
            "",
            describe_architecture(pick),
            "",
        ]
        if _plot_search(history, storage.join(out, "search.png")):
            parts += ["![search progress](search.png)", ""]
        parts += _pareto_section(cfg, history, out)
        parts += rerank_section(search)
    results_path = storage.join(out, "train", "results.json")
    if storage.exists(results_path):
        results = json.loads(storage.read_text(results_path))
        parts += [
            "## Trained from scratch on the same data and budget (test split)",
            "",
            "| model | test logloss | test AUC | NE | FLOPs/sample | dense params | chosen lr "
            "| train rows/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, r in results.items():
            t = r["test"]
            parts.append(
                f"| {name} | {_fmt(t['logloss'])} | {_fmt(t['auc'])} | {_fmt(t['ne'])} | "
                f"{_fmt(r['flops'])} | {_fmt(r['params'])} | {_fmt(r.get('lr'))} | "
                f"{_fmt(r['train']['rows_per_second'])} |"
            )
        parts.append("")
        parts += seeds_section(results)
    prune_md = storage.join(out, "prune", "prune.md")
    if storage.exists(prune_md):  # written by `torchrec-nas prune` (default --out OUT/prune)
        text = storage.read_text(prune_md).replace("](prune_", "](prune/prune_")
        parts += [text, "(from [prune/prune.md](prune/prune.md))", ""]
    parts += record_config(cfg, out)
    path = storage.join(out, "report.md")
    write_text_atomic(path, "\n".join(parts))
    return path


def _pm(stat: dict[str, Any] | None) -> str:
    if not stat:
        return "-"
    return f"{_fmt(stat.get('mean'))} ± {_fmt(stat.get('std'))}"


def seeds_section(results: dict[str, Any]) -> list[str]:
    """Mean ± std of test AUC and logloss over ``train.seeds`` and, for the searched model,
    whether each difference from a baseline is larger than the spread (nothing with one
    seed)."""
    rows = {n: r for n, r in results.items() if len(r.get("seeds", [])) > 1 and "test_seeds" in r}
    if not rows:
        return []
    seeds = ", ".join(str(s["seed"]) for s in next(iter(rows.values()))["seeds"])
    parts = [
        f"### Over seeds {seeds} (test split, mean ± sample std)",
        "",
        "| model | test AUC | test logloss |",
        "|---|---|---|",
    ]
    for name, r in rows.items():
        ts = r["test_seeds"]
        parts.append(f"| {name} | {_pm(ts.get('auc'))} | {_pm(ts.get('logloss'))} |")
    parts.append("")
    versus = results.get("nasrec", {}).get("versus_baselines", {})
    for name, cmp in versus.items():
        words = []
        for metric in ("auc", "logloss"):
            c = cmp[metric]
            verdict = "larger than" if c["beyond_spread"] else "within"
            words.append(f"{metric} {c['difference']:+.4f} ({verdict} the spread)")
        parts.append(f"- nasrec against {name}: " + "; ".join(words))
    if versus:
        parts += ["", f"A difference is larger than the spread when {SPREAD_RULE}.", ""]
    return parts


def run_demo(cfg: Config, out: str | Path) -> str:
    """Supernet, search, final training with baselines, report: the whole pipeline.

    Each stage resumes from what an earlier, killed run left under ``out``.
    """
    from torchrec_nas.runtime.default import default_runtime
    from torchrec_nas.stages import run_search, run_supernet, train_final

    runtime = default_runtime(cfg)
    data = runtime.data(cfg)
    if runtime.is_primary:
        print(record_data_summary(data, out).to_text())
    if not storage.exists(storage.join(out, "supernet.pt")):
        run_supernet(cfg, out, runtime, data)
    summary = run_search(cfg, out, runtime, data)
    arch = Architecture.from_dict(summary["best"]["architecture"])
    if not storage.exists(storage.join(out, "train", "results.json")):
        train_final(cfg, out, arch, data, runtime)
    return write_report(cfg, out)
