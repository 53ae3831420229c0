"""The ``torchrec-nas`` command: thin wrappers over :mod:`torchrec_nas.pipeline`.

Every subcommand takes ``--config FILE.yaml`` (defaults to the embedded demo config) and
``--out DIR``; results are files under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="torchrec-nas",
        description="NASRec architecture search on TorchRec: supernet, search, train, costs.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help)
        s.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: demo)")
        s.add_argument("--out", default="runs/demo", help="output directory")
        s.add_argument("--quiet", action="store_true", help="no progress bars")
        return s

    add("demo", "the whole pipeline: supernet, search, training with baselines, report")
    add("supernet", "train the weight-sharing supernet (writes supernet.pt)")
    add("search", "search architectures with the trained supernet (writes best_arch.json)")
    t = add("train", "train an architecture from scratch beside the DLRM/DCN baselines")
    t.add_argument("--arch", help="architecture JSON (default: OUT/best_arch.json)")
    t.add_argument("--no-baselines", action="store_true", help="train only the architecture")
    e = add("evaluate", "evaluate a saved model on the test split")
    e.add_argument("--model", required=True, help="a model_*.pt written by `train`")
    est = add("estimate", "PIM cost of an architecture, layer by layer")
    est.add_argument("--arch", required=True, help="architecture JSON")
    est.add_argument("--hardware", default="isaac", help="isaac, mnsim, neurosim or a YAML file")
    est.add_argument(
        "--embedding-mode", default="near_memory", choices=["near_memory", "in_crossbar"]
    )
    b = add("bench", "throughput and ranking figures (weight-sharing cost, Kendall tau)")
    b.add_argument(
        "--only",
        choices=["sharing", "kendall", "codesign"],
        help="run one measurement (codesign: bit-width search energy, needs bit_choices)",
    )
    add("preprocess", "turn the configured data source into a memory-mapped cache")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # FBGEMM logs every library it loads at INFO on the root logger; show ours only.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("torchrec_nas").setLevel(logging.INFO)
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    # Imported here so that `--help` answers at once.
    from torchrec_nas.config import Config
    from torchrec_nas.config_utils import ConfigError
    from torchrec_nas.runlock import RunLock, RunLockError
    from torchrec_nas.space import ArchitectureError

    try:
        cfg = Config.load(args.config)
        if args.quiet:
            cfg.supernet.progress = cfg.train.progress = cfg.search.progress = False
        if args.command == "evaluate":  # writes nothing under --out
            return _run(args, cfg)
        with RunLock(args.out):
            return _run(args, cfg)
    except (ConfigError, ArchitectureError, FileNotFoundError, ValueError, RunLockError) as e:
        print(f"torchrec-nas {args.command}: error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, cfg: object) -> int:
    from torchrec_nas import pipeline
    from torchrec_nas.config import Config
    from torchrec_nas.space import Architecture

    assert isinstance(cfg, Config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = args.command
    if cmd == "demo":
        from torchrec_nas.report import run_demo

        report = run_demo(cfg, out)
        print(f"report: {report}")
    elif cmd == "supernet":
        result = pipeline.run_supernet(cfg, out)
        print(json.dumps(result.to_dict(), indent=2))
    elif cmd == "search":
        print(json.dumps(pipeline.run_search(cfg, out), indent=2))
    elif cmd == "train":
        arch_path = Path(args.arch) if args.arch else out / "best_arch.json"
        arch = Architecture.load(arch_path)
        if args.no_baselines:
            cfg.train.baselines.models = []
        results = pipeline.train_final(cfg, out, arch)
        print(json.dumps({k: v["test"] for k, v in results.items()}, indent=2))
    elif cmd == "evaluate":
        from torchrec_nas.data import build_data
        from torchrec_nas.train.metrics import evaluate

        model = pipeline.load_model(args.model)
        data = build_data(cfg.data, cfg.seed)
        print(json.dumps(evaluate(model, data.test).to_dict(), indent=2))
    elif cmd == "estimate":
        from torchrec_nas.hardware.estimate import estimate_architecture

        arch = Architecture.load(args.arch)
        text, costs = estimate_architecture(cfg, arch, args.hardware, args.embedding_mode)
        (out / "estimate.json").write_text(json.dumps(costs, indent=2))
        print(text)
    elif cmd == "bench":
        from torchrec_nas.bench import run_bench

        print(json.dumps(run_bench(cfg, out, args.only), indent=2))
    elif cmd == "preprocess":
        from torchrec_nas.data import preprocess_main

        print(json.dumps(preprocess_main(cfg.data, str(out)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
