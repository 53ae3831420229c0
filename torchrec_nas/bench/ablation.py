"""Supernet ablations on the ranking benchmark (``bench --only ablation``).

Each entry of ``bench.ablation`` (``{NAME: {dotted.path: value, ...}}``) is a set of config
overrides applied to the run's config mapping before validation. For each, a supernet is
trained under ``OUT/ablation/NAME`` and the ranking benchmark's subnets are scored with it against the
cached stand-alone results (trained once, shared by every option).

Run as a module::

    python -m torchrec_nas.bench.ablation --config configs/demo.yaml --out runs/demo \\
        --set sandwich:supernet.sandwich=true --set long:supernet.steps=2000
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from torchrec_nas import storage
from torchrec_nas.bench.ranking import ranking_benchmark, standalone_side, supernet_train_seconds
from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError
from torchrec_nas.data import DataSplits
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.stages import run_supernet
from torchrec_nas.train.checkpoint import write_json_atomic, write_text_atomic


def apply_overrides(mapping: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a config mapping with each ``dotted.path: value`` of ``overrides`` set.

    Example::

        apply_overrides(cfg.to_dict(), {"supernet.steps": 2000})["supernet"]["steps"]   # 2000
    """
    out = dict(mapping)
    for path, value in overrides.items():
        keys = path.strip().split(".")
        node = out
        for key in keys[:-1]:
            child = node.get(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"ablation: {path}: {key!r} is not a section")
            node[key] = dict(child)
            node = node[key]
        node[keys[-1]] = value
    return out


def parse_set(options: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``NAME:dotted.path=value`` options (value read as YAML) as ``{NAME: {path: value}}``;
    several options may name the same entry.

    Example::

        parse_set(["sandwich:supernet.sandwich=true"])   # {"sandwich": {"supernet.sandwich": True}}
    """
    entries: dict[str, dict[str, Any]] = {}
    for option in options:
        name, sep, assignment = option.partition(":")
        path, eq, text = assignment.partition("=")
        if not (sep and eq and name.strip() and path.strip()):
            raise ConfigError(f"ablation: {option!r} is not `NAME:dotted.path=value`")
        entries.setdefault(name.strip(), {})[path.strip()] = yaml.safe_load(text)
    return entries


def entry_dir(name: str) -> str:
    """A directory name for an entry (``sandwich rule`` -> ``sandwich-rule``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "entry"


def run_ablation(
    cfg: Config, data: DataSplits, out: str | Path, entries: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The ranking benchmark's figures for the run's config (``baseline``, scored with
    ``OUT/supernet.pt``, trained if missing) and for each entry (a supernet trained under
    ``OUT/ablation/NAME`` with the entry's overrides applied to the config mapping before
    validation). Every row scores the same subnets against the same stand-alone results (the
    run's config's recipe and cache).
    """
    side = standalone_side(cfg, data, out)
    variants: list[tuple[str, dict[str, Any], Config, str]] = [("baseline", {}, cfg, str(out))]
    for name, overrides in entries.items():
        where = f"ablation {name}"
        variant = Config.from_dict(apply_overrides(cfg.to_dict(), overrides), where)
        variants.append(
            (name, dict(overrides), variant, storage.join(out, "ablation", entry_dir(name)))
        )
    rows = []
    for name, overrides, variant, root in variants:
        supernet = storage.join(root, "supernet.pt")
        if not storage.exists(supernet):
            run_supernet(variant, root, LocalRuntime(variant.device), data)
        seconds = supernet_train_seconds(supernet)
        r = ranking_benchmark(variant, data, root, supernet, side)
        rows.append(
            {
                "option": name,
                "overrides": overrides,
                "kendall_tau": r["kendall_tau"],
                "noise_ceiling": r["noise_ceiling"],
                "tau_over_ceiling": r["tau_over_ceiling"],
                "spearman": r["spearman"],
                "best_in_top_quarter": r["best_in_top_quarter"],
                "supernet_seconds": seconds,
                "scoring_seconds": r["supernet_scoring_seconds"],
            }
        )
    return {"subnets": len(side["archs"]), "rows": rows}


def ablation_markdown(result: dict[str, Any]) -> str:
    """The ablation as a Markdown table."""

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = [
        "| option | Kendall tau | tau / ceiling | Spearman | best in top quarter "
        "| supernet s | scoring s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['option']} | {f(r['kendall_tau'], '.3f')} | {f(r['tau_over_ceiling'], '.2f')} "
            f"| {f(r['spearman'], '.3f')} | {'yes' if r['best_in_top_quarter'] else 'no'} "
            f"| {f(r['supernet_seconds'], '.0f')} | {f(r['scoring_seconds'], '.0f')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torchrec_nas.bench.ablation")
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--set",
        dest="entries",
        action="append",
        default=[],
        help="NAME:dotted.path=value (value as YAML); repeat for more overrides or entries "
        "(default: the config's bench.ablation)",
    )
    args = parser.parse_args(argv)
    cfg = Config.load(args.config)
    data = LocalRuntime(cfg.device).data(cfg)
    result = run_ablation(cfg, data, args.out, parse_set(args.entries) or cfg.bench.ablation)
    write_json_atomic(storage.join(args.out, "bench_ablation.json"), result)
    markdown = ablation_markdown(result)
    write_text_atomic(storage.join(args.out, "bench_ablation.md"), markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
