"""Kill a run at random points and check that it resumes to the uninterrupted result.

A command (``torchrec-nas demo``, ``embedding-search``, a ``torchrun`` job, ...) runs once
undisturbed into ``OUT/whole``, then again into ``OUT/killed`` where each attempt is killed with
SIGKILL (its whole process group: a launcher and its ranks) after a random delay, and rerun
until one attempt finishes. The result files of the two directories are compared field by
field, ignoring what measures time (``seconds``, ``rows_per_second``, ...) and where a run
resumed from. ``OUT/kill_resume.json`` keeps the kills, their delays and every difference.

Example::

    python -m torchrec_nas.bench.kill_resume --out runs/kill --max-delay 20 \\
        --files best_arch.json,train/results.json -- \\
        torchrec-nas demo --config tiny.yaml --quiet
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Fields that measure time or record where a run resumed from: they differ between a killed
#: and an uninterrupted run by design.
VOLATILE_SUFFIXES = ("seconds", "per_second", "per_minute", "resumed_from", "_s")


def stable(value: Any) -> Any:
    """``value`` without the fields named by :data:`VOLATILE_SUFFIXES`, recursively."""
    if isinstance(value, dict):
        return {
            k: stable(v)
            for k, v in value.items()
            if not any(k.endswith(s) for s in VOLATILE_SUFFIXES)
        }
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Every place where ``a`` and ``b`` differ, as ``path: a vs b`` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}/{k}: only in {'whole' if k in a else 'killed'}")
            else:
                out += differences(a[k], b[k], f"{where}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = [f"{where}: {len(a)} items vs {len(b)}"] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{where}[{i}]")
        return out
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


@dataclass
class KillReport:
    """What :func:`kill_and_compare` did and found.

    Args:
        command: the command, with ``{out}`` filled in for the killed run.
        delays: seconds after which each killed attempt was killed.
        finished_after: seconds the last (finishing) attempt ran.
        differences: ``file/path: whole vs killed`` for every differing field.
    """

    command: list[str]
    delays: list[float] = field(default_factory=list)
    finished_after: float = 0.0
    differences: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences


def run_once(command: list[str], log: Path, timeout: float | None) -> int | None:
    """Runs ``command`` in its own process group; kills the group after ``timeout`` seconds.
    Returns its exit status, or ``None`` when it was killed."""
    with log.open("a") as f:
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None


def kill_and_compare(
    command: Sequence[str],
    out: Path,
    files: Sequence[str],
    max_delay: float,
    seed: int = 0,
    min_delay: float = 1.0,
    max_kills: int = 100,
) -> KillReport:
    """Runs ``command`` (``{out}`` in it stands for the output directory) undisturbed, then
    killed at random points until it finishes, and compares ``files`` (JSON, relative to the
    output directory) of the two runs.

    Raises:
        RuntimeError: a run exits with an error, does not finish within ``max_kills``, or
            leaves one of ``files`` unwritten or not JSON.
    """
    rng = random.Random(seed)
    whole, killed = out / "whole", out / "killed"
    out.mkdir(parents=True, exist_ok=True)

    def filled(d: Path) -> list[str]:
        return [part.replace("{out}", str(d)) for part in command]

    if not all((whole / f).is_file() for f in files):
        rc = run_once(filled(whole), out / "whole.log", None)
        if rc != 0:
            raise RuntimeError(f"the uninterrupted run failed ({rc}); see {out / 'whole.log'}")
    report = KillReport(filled(killed))
    for _ in range(max_kills):
        delay = rng.uniform(min_delay, max_delay)
        t0 = time.perf_counter()
        rc = run_once(report.command, out / "killed.log", delay)
        if rc is None:
            report.delays.append(round(delay, 2))
            continue
        if rc != 0:
            raise RuntimeError(f"a resumed run failed ({rc}); see {out / 'killed.log'}")
        report.finished_after = round(time.perf_counter() - t0, 2)
        break
    else:
        raise RuntimeError(f"no attempt finished within {max_kills} kills; raise --max-delay")
    for name in files:
        a, b = _result(whole / name), _result(killed / name)
        report.differences += differences(stable(a), stable(b), name)
    return report


def _result(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RuntimeError(f"{path}: the run wrote no such result; check --files") from None
    except json.JSONDecodeError as e:
        raise RuntimeError(f"{path}: not JSON ({e})") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torchrec_nas.bench.kill_resume")
    parser.add_argument("--out", type=Path, required=True, help="where both runs go")
    parser.add_argument("--files", required=True, help="comma-separated JSON results to compare")
    parser.add_argument("--max-delay", type=float, required=True, help="longest time to a kill")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("command", nargs="+", help="the command; --out {out} is added")
    args = parser.parse_args(argv)
    command = [*args.command, "--out", "{out}"]
    try:
        report = kill_and_compare(
            command, args.out, args.files.split(","), args.max_delay, args.seed
        )
    except RuntimeError as e:
        print(f"kill_resume: error: {e}", file=sys.stderr)
        return 2
    summary = {**asdict(report), "kills": len(report.delays), "identical": report.identical}
    (args.out / "kill_resume.json").write_text(json.dumps(summary, indent=2) + "\n")
    for line in report.differences[:20]:
        print(line)
    verdict = "identical" if report.identical else f"{len(report.differences)} differences"
    print(f"{len(report.delays)} kills, then finished: {verdict}")
    return 0 if report.identical else 1


if __name__ == "__main__":
    sys.exit(main())
