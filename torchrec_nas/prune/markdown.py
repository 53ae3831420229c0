"""``prune.md``: the pruned models' accuracy and costs, the AUC-against-FLOPs plot, and the
comparison with searched architectures of the same FLOPs."""

from __future__ import annotations

from typing import Any

from torchrec_nas import storage

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


def _plot(result: dict[str, Any], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    base = result["base"]
    for method in dict.fromkeys(e["method"] for e in result["pruned"]):
        rows = [e for e in result["pruned"] if e["method"] == method]
        xs = [e["flops"] for e in rows]
        ys = [e["test"]["auc"] for e in rows]
        ax.plot(xs, ys, marker="o", label=f"pruned ({method})")
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
    searched = [
        r["candidate"]
        for r in result["searched"]["rows"]
        if r["candidate"] and r["candidate"]["test"]
    ]
    if searched:
        ax.scatter(
            [c["flops"] for c in searched],
            [c["test"]["auc"] for c in searched],
            marker="s",
            c="tab:red",
            label="best searched (trained)",
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
        f"{result['finetune_lr']:g}); one seed.",
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
        label = f"{e['method']} {e['target']:.0%} ({e['flops_fraction']:.1%}, {e['seconds']:.0f} s)"
        lines.append(f"| {label} | " + " | ".join(_cost_cells(e)) + " |")
    if plot:
        lines += ["", f"![test AUC against FLOPs]({PLOT})"]
    searched = result["searched"]
    lines += ["", "### Against the best searched architecture of the same FLOPs", ""]
    if not searched["found"]:
        lines.append(f"No search history at `{searched['history']}`.")
        return "\n".join(lines) + "\n"
    lines += [
        "| target | searched candidate | its FLOPs | its test AUC | pruned test AUC | wins |",
        "|---|---|---|---|---|---|",
    ]
    for row in searched["rows"]:
        cand = row["candidate"]
        pruned = ", ".join(
            f"{e['method']} {e['test']['auc']:.4f}"
            for e in result["pruned"]
            if e["target"] == row["target"]
        )
        if cand is None:
            lines.append(f"| {row['target']:.0%} | none at or below | | | {pruned} | |")
            continue
        test = cand["test"]
        auc = f"{test['auc']:.4f}" if test else "not trained (`--compare-searched`)"
        wins = ", ".join(f"{m}: {w}" for m, w in row.get("winner", {}).items())
        lines.append(
            f"| {row['target']:.0%} | `{cand['hash'][:12]}` | {cand['flops']:,.0f} | {auc} | "
            f"{pruned} | {wins} |"
        )
    return "\n".join(lines) + "\n"


def write_prune_markdown(result: dict[str, Any], out: str) -> str:
    """Writes ``out/prune.md`` and its plot; returns the Markdown path."""
    plotted = _plot(result, storage.join(out, PLOT))
    path = storage.join(out, "prune.md")
    storage.write_text_atomic(path, prune_markdown(result, plotted))
    return path
