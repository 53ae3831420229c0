"""Loader throughput: parsing the Criteo TSV into the cache, and iterating ``Batch``es from it.

Run::

    python -m torchrec_nas.data.bench [SAMPLE.tsv] [ROWS]

It replicates the sample (default: the 10k-row Criteo sample) to ``ROWS`` rows in a temporary
directory, preprocesses it into a cache and iterates the cached train split.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from torchrec_nas.data.build import build_data, preprocess
from torchrec_nas.data.config import DataConfig

DEFAULT_SAMPLE = Path("/work/shared/data/criteo_kaggle_sample_10k.tsv")


def replicate(sample: Path, rows: int, out: Path) -> Path:
    """Writes ``sample``'s lines repeated to ``rows`` lines into ``out``."""
    lines = sample.read_bytes().splitlines(keepends=True)
    with open(out, "wb") as f:
        for i in range(0, rows, len(lines)):
            f.write(b"".join(lines[: rows - i]))
    return out


def benchmark_loader(
    sample: str | Path = DEFAULT_SAMPLE,
    rows: int = 200_000,
    batch_size: int = 512,
    epochs: int = 3,
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """Measures parse and iterate throughput.

    Args:
        sample: a Criteo TSV to replicate.
        rows: rows of the replicated file.
        batch_size: batch size of the iteration.
        epochs: passes over the cached train split (the best one counts).
        workdir: where to write the file and cache (a temporary directory if ``None``).

    Returns:
        ``parse_rows_per_s`` (TSV to cache, end to end, wall clock), ``parse_only_rows_per_s``
        (reading and parsing, without id compaction, split and writing),
        ``parse_rows_per_cpu_s`` (rows per second of this process's CPU time, summed over its
        threads: the figure to compare on a machine shared with other work),
        ``iterate_rows_per_s`` / ``iterate_rows_per_cpu_s`` (best epoch over the cached train
        split), sizes and the load average.

    Example::

        print(benchmark_loader(rows=200_000))
    """
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="trnas_bench_"))
    try:
        tsv = replicate(Path(sample), rows, tmp / "criteo.tsv")
        cfg = DataConfig(source="criteo_tsv", path=str(tsv), batch_size=batch_size)
        start, cpu = time.perf_counter(), time.process_time()
        summary = preprocess(cfg, tmp / "cache")
        parse_s = time.perf_counter() - start
        parse_cpu_s = time.process_time() - cpu
        data = build_data(
            DataConfig(source="cache", path=str(tmp / "cache"), batch_size=batch_size)
        )
        best = best_cpu = 0.0
        seen = 0
        for _ in range(epochs):
            start, cpu = time.perf_counter(), time.process_time()
            seen = 0
            for batch in data.train:
                seen += batch.labels.shape[0]
            best = max(best, seen / (time.perf_counter() - start))
            best_cpu = max(best_cpu, seen / max(time.process_time() - cpu, 1e-9))
        return {
            "rows": rows,
            "file_mb": round(tsv.stat().st_size / 2**20, 1),
            "parse_rows_per_s": round(rows / parse_s),
            "parse_only_rows_per_s": round(rows / summary["parse_seconds"]),
            "parse_rows_per_cpu_s": round(rows / parse_cpu_s),
            "iterate_rows_per_s": round(best),
            "iterate_rows_per_cpu_s": round(best_cpu),
            "iterate_rows": seen,
            "batch_size": batch_size,
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    result = benchmark_loader(
        args[0] if args else DEFAULT_SAMPLE, int(args[1]) if len(args) > 1 else 200_000
    )
    print(json.dumps(result, indent=2))
