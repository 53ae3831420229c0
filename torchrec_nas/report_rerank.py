"""The report's section on the search's stand-alone stage (``search.rerank``)."""

from __future__ import annotations

import math
from typing import Any


def _num(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def rerank_section(search: dict[str, Any]) -> list[str]:
    """Markdown lines: one table row per stand-alone training of ``search.json``'s
    ``rerank`` rows (where it came from, LayerNorms, validation and test metrics, FLOPs,
    the seeds' mean where confirmed, which was picked) and the candidates left out; no lines
    when the run had no such stage.

    Example::

        lines = rerank_section(json.loads(Path("runs/demo/search.json").read_text()))
    """
    rows = search.get("rerank")
    if not rows:
        return []
    parts = [
        "## Stand-alone stage (`search.rerank`)",
        "",
        "Candidates trained from scratch (one seed; the best few with more where "
        "`confirm_seeds` is set); the pick has the lowest validation logloss (mean over seeds "
        "where confirmed).",
        "",
        "| origin | LayerNorms | head reads tokens | val logloss | seeds' mean | test AUC "
        "| FLOPs/sample | picked |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            continue
        arch = r.get("architecture", {})
        mean = (r.get("val_seeds") or {}).get("mean_logloss")
        parts.append(
            f"| {r['origin']} | {'yes' if r.get('layer_norm', True) else 'no'} | "
            f"{'no' if arch.get('head_tokens') is False else 'yes'} | "
            f"{_num(r['val'].get('logloss'), '.4f')} | {_num(mean, '.4f')} | "
            f"{_num(r['test'].get('auc'), '.4f')} | {_num(r['costs'].get('flops'), ',.0f')} | "
            f"{'**yes**' if r.get('picked') else ''} |"
        )
    parts += [f"- left out: {r['origin']}: {r['skipped']}" for r in rows if "skipped" in r]
    return parts + [""]
