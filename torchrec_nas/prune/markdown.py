"""``prune.md``: the pruned models' accuracy and costs, the AUC-against-FLOPs plot, and the
comparison with searched architectures of the same FLOPs."""

from __future__ import annotations

import math
from typing import Any

from torchrec_nas import storage
from torchrec_nas.stages.spread import SPREAD_RULE

PLOT = "prune_auc_flops.png"


def _cost_cells(entry: dict[str, Any]) -> list[str]:
    pim = entry.get("pim", {})
    cells = [
        f"{entry['flops']:,.0f}",
        f"{entry['params']:,.0f}",
        f"{entry['test']['auc']:.4f}",
        f"{entry['test']['logloss']:.4f}",
        f"{pim.get('pim_energy', float('nan')) / 1e3:,.1f}",
        f"{pim.get('pim_latency', float('nan')) / 1e3:,.2f}",
        f"{pim.get('pim_area', float('nan')):.3f}",
    ]
    quantized = entry.get("quantized")
    if quantized:
        cells.append(
            f"{quantized['test']['auc']:.4f} "
            f"({quantized['quantized_table_bytes'] / 2**20:.2f} of "
            f"{quantized['table_bytes'] / 2**20:.2f} MiB)"
        )
    return cells


def _or_zero(value: float | None) -> float:
    return 0.0 if value is None or math.isnan(value) else value


def _pm(stats: dict[str, Any]) -> str:
    """``mean ± std`` of a ``{"mean", "std"}`` (the std left out when unknown)."""
    std = stats.get("std")
    if std is None or math.isnan(std):
        return f"{stats['mean']:.4f}"
    return f"{stats['mean']:.4f} ± {std:.4f}"


def _plot(result: dict[str, Any], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    base = result["base"]
    summary = result.get("summary") or []
    for method in dict.fromkeys(r["method"] for r in summary):
        rows = [r for r in summary if r["method"] == method]
        ys = [r["test_seeds"]["auc"]["mean"] for r in rows]
        errs = [_or_zero(r["test_seeds"]["auc"]["std"]) for r in rows]
        ax.errorbar(
            [r["flops"] for r in rows],
            ys,
            yerr=errs,
            marker="o",
            capsize=3,
            label=f"pruned ({method})",
        )
    ax.scatter([base["flops"]], [base["test"]["auc"]], marker="*", s=160, c="k", label="unpruned")
    control = result.get("control")
    if control:
        ax.scatter(
            [control["flops"]],
            [control["test"]["auc"]],
            marker="^",
            c="tab:gray",
            label="unpruned, fine-tuned alike",
        )
    for source, color in (("search", "tab:red"), ("sampled", "tab:purple")):
        rivals = [
            c
            for r in result["searched"]["rows"]
            for c in (r.get("rivals") or ([r["candidate"]] if r["candidate"] else []))
            if c.get("test") and c.get("source", "search") == source
        ]
        if rivals:
            ax.errorbar(
                [c["flops"] for c in rivals],
                [c["test_seeds"]["auc"]["mean"] for c in rivals],
                yerr=[_or_zero(c["test_seeds"]["auc"]["std"]) for c in rivals],
                fmt="s",
                c=color,
                capsize=3,
                label=f"{source} rival (trained)",
            )
    ax.set_xlabel("FLOPs per sample")
    ax.set_ylabel("test AUC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    with storage.local_file_for_writing(path) as local:
        fig.savefig(str(local), dpi=110)
    plt.close(fig)
    return True


def prune_markdown(result: dict[str, Any], plot: bool) -> str:
    """The Markdown section of a ``prune`` result (see :func:`run_prune`)."""
    quantized = bool(result["base"].get("quantized"))
    head = "| model | FLOPs | params | test AUC | logloss | PIM energy (nJ) | PIM latency (µs) "
    head += "| PIM area (mm²) |"
    head += f" {result['base']['quantized']['dtype']} tables: AUC (MiB) |" if quantized else ""
    rule = "|" + "---|" * (head.count("|") - 1)
    lines = [
        "## Structured pruning",
        "",
        f"Model `{result['model']}`, {result['steps']} pruning steps per target, "
        f"{result['finetune_steps']} fine-tuning steps after each (dense lr "
        f"{result['finetune_lr']:g}); seeds {', '.join(map(str, result.get('seeds', ['config'])))}"
        " (a seed picks the first training batch of the fine-tunings and initializes the "
        "rivals).",
        "",
        head,
        rule,
        "| unpruned | " + " | ".join(_cost_cells(result["base"])) + " |",
    ]
    control = result.get("control")
    if control:
        label = f"unpruned, fine-tuned {control['finetune_rounds']} times alike"
        lines.append(f"| {label} | " + " | ".join(_cost_cells(control)) + " |")
    for e in result["pruned"]:
        seed = f", seed {e['seed']}" if len(result.get("seeds", [])) > 1 else ""
        label = f"{e['method']} {e['target']:.0%} ({e['flops_fraction']:.1%}, {e['seconds']:.0f} s{seed})"
        lines.append(f"| {label} | " + " | ".join(_cost_cells(e)) + " |")
    lines += ["", "Mean ± std over seeds:", "", *_summary_lines(result)]
    if plot:
        lines += [f"![test AUC against FLOPs]({PLOT})"]
    searched = result["searched"]
    lines += ["", "### Against the searched architecture of the same FLOPs", ""]
    if not searched["found"]:
        lines.append(f"No search history at `{searched['history']}`.")
        if not any(r["candidate"] for r in searched["rows"]):
            return "\n".join(lines) + "\n"
    lines += [
        "Rival: the best-scored searched candidate at or below the target; where the search "
        "has none (or with `--sampled-rivals`, as well), a sampled architecture of the space "
        "(how it was chosen is said per row). "
        "Wins beyond the spread: " + SPREAD_RULE + " on test AUC.",
        "",
        "| target | rival | chosen as | its FLOPs | its steps | its test AUC | pruned test AUC "
        "| difference | beyond spread: verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary = {(r["method"], r["target"]): r for r in result.get("summary", [])}
    for row in searched["rows"]:
        rivals = row.get("rivals") or ([row["candidate"]] if row["candidate"] else [])
        if not rivals:
            lines.append(f"| {row['target']:.0%} | none at or below | | | | | | | |")
        for cand in rivals:
            lines += _rival_lines(row["target"], cand, summary)
    return "\n".join(lines) + "\n"


def _rival_lines(
    target: float, cand: dict[str, Any], summary: dict[tuple[str, float], Any]
) -> list[str]:
    """One line per method comparing ``cand`` with the pruned models of ``target``."""
    auc = _pm(cand["test_seeds"]["auc"]) if cand.get("test") else "not trained"
    lines = []
    for method, verdict in (cand.get("verdict") or {"": None}).items():
        mine = summary.get((method, target))
        pruned = f"{method} {_pm(mine['test_seeds']['auc'])}" if mine else ""
        diff = f"{verdict['difference']:+.4f}" if verdict else ""
        call = (
            f"{'yes' if verdict['beyond_spread'] else 'no'}: {verdict['verdict']}"
            if verdict
            else ""
        )
        lines.append(
            f"| {target:.0%} | `{cand['hash'][:12]}` ({cand.get('source', 'search')}) "
            f"| {cand.get('how', '')} | {cand['flops']:,.0f} | {cand.get('steps', '')} "
            f"| {auc} | {pruned} | {diff} | {call} |"
        )
    return lines


def _summary_lines(result: dict[str, Any]) -> list[str]:
    """The mean ± std table per method and target."""
    lines = [
        "| method | target | mean FLOPs | seeds | test AUC | test logloss |",
        "|---|---|---|---|---|---|",
    ]
    control = result.get("control")
    if control and "test_seeds" in control:
        lines.append(
            f"| unpruned, fine-tuned alike | | {control['flops']:,.0f} | {len(control['seeds'])} "
            f"| {_pm(control['test_seeds']['auc'])} | {_pm(control['test_seeds']['logloss'])} |"
        )
    for r in result.get("summary", []):
        lines.append(
            f"| {r['method']} | {r['target']:.0%} | {r['flops']:,.0f} | {len(r['seeds'])} "
            f"| {_pm(r['test_seeds']['auc'])} | {_pm(r['test_seeds']['logloss'])} |"
        )
    return lines + [""]


def write_prune_markdown(result: dict[str, Any], out: str) -> str:
    """Writes ``out/prune.md`` and its plot; returns the Markdown path."""
    plotted = _plot(result, storage.join(out, PLOT))
    path = storage.join(out, "prune.md")
    storage.write_text_atomic(path, prune_markdown(result, plotted))
    return path
