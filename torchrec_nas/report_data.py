"""What a run records beside its report: the data summary and the configuration it ran with.

``data_summary.json`` / ``data_summary.md`` describe the data before training (rows and
positive rate per split, skipped rows, per feature its vocabulary or range);
``config.yaml`` holds the whole configuration, and the report lists only the fields that
differ from the defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.config_utils import to_mapping
from torchrec_nas.data.summary import BuiltData, DataSummary, summarize_data
from torchrec_nas.train.checkpoint import write_json_atomic, write_text_atomic

DATA_SUMMARY_JSON = "data_summary.json"
DATA_SUMMARY_MD = "data_summary.md"
CONFIG_YAML = "config.yaml"


def record_data_summary(data: BuiltData, out: str | Path) -> DataSummary:
    """Summarizes ``data`` and writes ``data_summary.json`` and ``data_summary.md`` in ``out``.

    Args:
        data: what ``build_data`` (or a runtime's ``data``) returned, or a loaded cache.
        out: the run's directory.

    Example::

        summary = record_data_summary(runtime.data(cfg), "runs/demo")
        print(summary.to_text())
    """
    summary = summarize_data(data)
    write_json_atomic(storage.join(out, DATA_SUMMARY_JSON), summary.to_dict())
    write_text_atomic(storage.join(out, DATA_SUMMARY_MD), summary.to_markdown())
    return summary


def config_differences(cfg: Config) -> list[tuple[str, Any]]:
    """``(dotted.field, value)`` of every setting of ``cfg`` that differs from the defaults."""
    changed: list[tuple[str, Any]] = []

    def walk(prefix: str, value: Any, default: Any) -> None:
        if isinstance(value, dict) and isinstance(default, dict):
            for key in value:
                walk(f"{prefix}.{key}" if prefix else key, value[key], default.get(key))
        elif value != default:
            changed.append((prefix, value))

    walk("", to_mapping(cfg), to_mapping(Config()))
    return changed


def record_config(cfg: Config, out: str | Path) -> list[str]:
    """Writes the whole configuration to ``config.yaml`` in ``out``; returns the report's lines
    about it: a link and a table of the fields that differ from the defaults."""
    text = yaml.safe_dump(to_mapping(cfg), sort_keys=False)
    write_text_atomic(storage.join(out, CONFIG_YAML), text)
    lines = [
        "## Configuration",
        "",
        f"The whole configuration: [{CONFIG_YAML}]({CONFIG_YAML}).",
        "",
    ]
    changed = config_differences(cfg)
    if not changed:
        return lines + ["Every field has its default value.", ""]
    lines += ["| field (differs from the default) | value |", "|---|---|"]
    for name, value in changed:
        shown = json.dumps(value) if not isinstance(value, str) else value
        lines.append(f"| `{name}` | `{shown}` |")
    return lines + [""]


def data_section(out: str | Path) -> list[str]:
    """The report's data section, from ``data_summary.md`` (empty if there is none)."""
    path = storage.join(out, DATA_SUMMARY_MD)
    if not storage.isfile(path):
        return []
    return ["## Data", "", storage.read_text(path).rstrip(), ""]
