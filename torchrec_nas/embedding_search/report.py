"""``embedding_search.md``: the chosen widths per feature and the candidates' parameters
against their score, with the numbers behind them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from torchrec_nas import storage


def _save_figure(fig: Any, path: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    storage.write_bytes_atomic(path, buf.getvalue())


def plot_widths(summary: dict[str, Any], runs: list[dict[str, Any]], path: str) -> None:
    """Bars: the chosen width per feature; markers: each seed's policy pick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = summary["embedding_dims"]
    names = list(dims)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(names)), 3.2))
    ax.bar(range(len(names)), [dims[n] for n in names], color="#9bb7d4", label="chosen")
    for k, r in enumerate(runs):
        ys = [r["policy"]["widths"][n] for n in names]
        ax.scatter([i + 0.12 * (k - 1) for i in range(len(names))], ys, s=12,
                   label=f"seed {r['seed']}")  # fmt: skip
    ax.axhline(summary["uniform"]["width"], color="gray", ls="--", lw=1, label="uniform")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("embedding width")
    ax.legend(fontsize=7, ncol=5)
    _save_figure(fig, path)
    plt.close(fig)


def plot_candidates(
    summary: dict[str, Any],
    runs: list[dict[str, Any]],
    scored: list[tuple[int, float]],
    path: str,
) -> None:
    """Scatter: embedding parameters against validation score of every scored candidate
    (grey), evolution's candidates, the policy picks, the uniform model and the budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    if scored:
        xs, ys = [p for p, _ in scored], [v for _, v in scored]
        ax.scatter(xs, ys, s=3, color="0.75", alpha=0.5, label="scored (policy draws)")
    for r in runs:
        cands = r["evolution_candidates"]
        ax.scatter([c["params"] for c in cands], [c["score"] for c in cands], s=6, alpha=0.5,
                   label=f"evolution seed {r['seed']}")  # fmt: skip
    for r in runs:
        p = r["policy"]
        score = p["auc"] if summary["score"] == "auc" else -p["logloss"]
        ax.scatter([p["params"]], [score], marker="*", s=90, label=f"policy seed {r['seed']}")
    u = summary["uniform"]
    u_score = u["auc"] if summary["score"] == "auc" else -u["logloss"]
    ax.scatter([u["params"]], [u_score], marker="s", color="black", label="uniform")
    ax.axvline(summary["budget"], color="red", ls="--", lw=1, label="budget")
    ax.set_xlabel("embedding parameters (tables + projections)")
    ax.set_ylabel(f"validation {'AUC' if summary['score'] == 'auc' else '-logloss'}")
    ax.legend(fontsize=6)
    _save_figure(fig, path)
    plt.close(fig)


def _shares_text(a: dict[str, Any]) -> str:
    nan = float("nan")
    return (
        f"{a['identical_share']:.0%} identical, {a['within_one_step_share']:.0%} within one step"
        f" ({a.get('identical_weighted_share', nan):.0%} and "
        f"{a.get('within_one_step_weighted_share', nan):.0%} of the rows)"
    )


def agreement_line(agree: dict[str, Any], capped: bool, whose: str = "the policy's widths") -> str:
    """The agreement across seeds in words: over all features, how many have a single
    allowed width (they agree by construction), and over the others.

    Example::

        agreement_line(summary["agreement"], summary["cap_at_rows"])
    """
    n = agree.get("feature_count", len(agree.get("features", {})))
    text = f"Agreement of {whose} across {agree['runs']} seeds, over all {n} features: "
    text += _shares_text(agree) + "."
    single = agree.get("single_choice_features")
    multi = agree.get("multi_choice")
    if single is not None and multi is not None:
        why = " (widths capped at the table's rows)" if capped else ""
        text += f" {single} of {n} features have a single allowed width{why}"
        if multi["feature_count"]:
            text += f"; over the {multi['feature_count']} with a choice: {_shares_text(multi)}."
        else:
            text += "."
    return text


def write_report(
    out: str | Path,
    summary: dict[str, Any],
    runs: list[dict[str, Any]],
    scored: list[tuple[int, float]] | None = None,
) -> str:
    """Writes ``embedding_search.md`` and its two figures under ``out``; returns its path.

    Args:
        out: the output directory.
        summary: what ``embedding_search.json`` holds.
        runs: stage 2's runs, one per seed.
        scored: ``(params, score)`` of every candidate scored.
    """
    out = str(out)
    plot_widths(summary, runs, storage.join(out, "embedding_widths.png"))
    plot_candidates(summary, runs, scored or [], storage.join(out, "embedding_candidates.png"))
    u = summary["uniform"]
    agree = summary["agreement"]
    shrunk = [r for r in summary["seeds"] if "pick" in r.get("shrink", {})]
    lines = [
        "# Embedding-size search",
        "",
        f"Chosen widths (policy{', shrunk' if shrunk else ''}, seed {summary['chosen_seed']}): "
        f"{summary['params']:,} embedding parameters, "
        f"{summary['params_ratio_to_uniform']:.1%} of the uniform width-{u['width']} model "
        f"({u['params']:,}); budget {summary['budget']:,}.",
        "",
        "| pick | seed | params | val AUC | val logloss | reward |",
        "|---|---|---|---|---|---|",
        f"| uniform {u['width']} | - | {u['params']:,} | {u['auc']:.4f} | {u['logloss']:.4f} "
        f"| {u['reward']:.4f} |",
    ]
    for r in summary["seeds"]:
        shrink = r.get("shrink", {})
        kinds = [("policy", r["policy"]), ("evolution", r["evolution"])]
        if "pick" in shrink:
            kinds[:1] = [("policy, before shrink", shrink["pick"]), ("policy, shrunk", r["policy"])]
        for kind, p in kinds:
            lines.append(
                f"| {kind} | {r['seed']} | {p['params']:,} | {p['auc']:.4f} | "
                f"{p['logloss']:.4f} | {p['reward']:.4f} |"
            )
    capped = summary.get("cap_at_rows", False)
    if shrunk:
        k = shrunk[0]["shrink"]["k"]
        kept = sum(s["kept"] for r in shrunk for s in r["shrink"]["steps"])
        lines += [
            "",
            f"Each seed's policy pick shrunk by the standard-error rule (k = {k}): per "
            f"feature, largest tables first, the smallest width whose validation "
            f"{'AUC' if summary['score'] == 'auc' else 'logloss'} is within {k} paired "
            f"standard errors of the pick's ({kept} steps kept over {len(shrunk)} seeds).",
            "",
            agreement_line(summary["agreement_before_shrink"], capped, "the policy's picks"),
            "",
            agreement_line(agree, capped, "the shrunk picks"),
            "",
        ]
    else:
        lines += ["", agreement_line(agree, capped), ""]
    lines += [
        "![width per feature](embedding_widths.png)",
        "",
        "![parameters against reward](embedding_candidates.png)",
        "",
    ]
    path = storage.join(out, "embedding_search.md")
    storage.write_text_atomic(path, "\n".join(lines))
    return path
