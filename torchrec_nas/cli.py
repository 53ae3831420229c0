"""The ``torchrec-nas`` command: thin wrappers over :mod:`torchrec_nas.stages`.

Every subcommand takes ``--config FILE.yaml`` (defaults to the embedded demo config) and
``--out DIR``; results are files under ``--out``. Both may be fsspec URLs
(``--out s3://bucket/run`` with ``s3fs`` installed); input data must be local. A failure is one line on stderr: exit 2 for
a bad config, file or argument, 1 for a diverged training, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
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
        s.add_argument(
            "--out", default="runs/demo", help="output directory or fsspec URL (s3://b/run)"
        )
        s.add_argument("--quiet", action="store_true", help="no progress bars")
        return s

    chance_help = "search even when the supernet is at chance (search.allow_chance)"
    d = add("demo", "the whole pipeline: supernet, search, training with baselines, report")
    d.add_argument("--allow-chance", action="store_true", help=chance_help)
    add("supernet", "train the weight-sharing supernet (writes supernet.pt)")
    s = add("search", "search architectures with the trained supernet (writes best_arch.json)")
    s.add_argument("--allow-chance", action="store_true", help=chance_help)
    t = add("train", "train an architecture from scratch beside the DLRM/DCN baselines")
    t.add_argument("--arch", help="architecture JSON (default: OUT/best_arch.json)")
    t.add_argument("--no-baselines", action="store_true", help="train only the architecture")
    t.add_argument(
        "--baselines-only",
        action="store_true",
        help="train only the configured baselines (DLRM, DCN-v2), no architecture needed",
    )
    t.add_argument("--embedding-dims", help="embedding_dims.json: also train mixed widths")
    add("embedding-search", "search one embedding width per feature (writes embedding_dims.json)")
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
        choices=["sharing", "kendall", "ranking", "ablation", "search", "seeds", "codesign"],
        help="run one measurement (codesign: bit-width search energy, needs bit_choices)",
    )
    show = sub.add_parser("show", help="print an architecture block by block (writes nothing)")
    show.add_argument("--arch", required=True, help="architecture JSON")
    show.add_argument("--config", help="check the architecture against this config's space")
    show.add_argument("--out", help="accepted like every command's; show writes nothing")
    add("preprocess", "turn the configured data source into a memory-mapped cache")
    x = sub.add_parser("export", help="write a torch.export program (.pt2) of a trained model")
    x.add_argument("--model", required=True, help="a model_*.pt written by `train`")
    x.add_argument("--out", required=True, help="the .pt2 file to write")
    x.add_argument("--quantize", choices=["int8", "int4"], help="quantize the embedding tables")
    pr = add("prune", "prune a trained model to FLOPs targets, fine-tune, compare with the search")
    pr.set_defaults(out=None)  # default: <run>/prune beside the model's run
    pr.add_argument("--model", required=True, help="a model_nasrec.pt written by `train`")
    pr.add_argument("--target-flops", required=True, help="fraction(s) of FLOPs: 0.5 or 0.75,0.5")
    pr.add_argument("--method", default="magnitude", help="magnitude, mask or magnitude,mask")
    pr.add_argument("--steps", type=int, default=3, help="pruning steps per target")
    pr.add_argument(
        "--finetune-steps", type=int, help="steps after each (default: train's / steps)"
    )
    pr.add_argument("--finetune-lr", type=float, help="default: a quarter of train's lr")
    pr.add_argument("--mask-steps", type=int, default=200, help="gate training steps (mask)")
    pr.add_argument("--mask-l1", type=float, default=3e-3, help="L1 weight on the gates (mask)")
    pr.add_argument("--compare-searched", action="store_true", help="train the searched rivals")
    pr.add_argument("--seeds", help="seeds of fine-tuning and rivals: 1,2,3 (default: config's)")
    pr.add_argument("--sampled-rivals", action="store_true", help="also a sampled rival each")
    pr.add_argument("--rival-steps", help="rivals' training steps: N or equal (default: config's)")
    pr.add_argument("--quantize", choices=["int8", "int4"], help="also score quantized tables")
    pr.add_argument("--hardware", default="isaac", help="PIM preset of the cost estimate")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # FBGEMM logs every library it loads at INFO on the root logger; show ours only.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("torchrec_nas").setLevel(logging.INFO)
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    # Imported here so that `--help` answers at once.
    from torchrec_nas.config import Config
    from torchrec_nas.failures import failure_line
    from torchrec_nas.runlock import RunLock

    try:
        if args.command == "show":  # prints only: imports no torch, writes nothing
            from torchrec_nas.architecture_view import show_text

            print(show_text(args.arch, args.config))
            return 0
        if args.command == "export":  # writes one file, reads no config
            return _export(args)
        if args.command == "prune":  # bad targets or a missing model fail before any write
            args.prune_options = _prune_options(args)
        cfg = Config.load(args.config)
        if args.quiet:
            cfg.supernet.progress = cfg.train.progress = cfg.search.progress = False
        if getattr(args, "embedding_dims", None):
            cfg.train.embedding_dims = args.embedding_dims
        if getattr(args, "allow_chance", False):
            cfg.search.allow_chance = True
        if args.command == "evaluate":  # writes nothing under --out
            return _run(args, cfg)
        with RunLock(args.out):
            return _run(args, cfg)
    except (KeyboardInterrupt, Exception) as e:
        failure = failure_line(f"torchrec-nas {args.command}", e)
        if failure is None:
            raise
        print(failure[1], file=sys.stderr)
        return failure[0]


def _run(args: argparse.Namespace, cfg: object) -> int:
    from torchrec_nas import stages, storage
    from torchrec_nas.config import Config
    from torchrec_nas.runtime.default import default_runtime
    from torchrec_nas.space import Architecture
    from torchrec_nas.train.checkpoint import json_dumps

    assert isinstance(cfg, Config)
    out: str = args.out
    if storage.isfile(out):
        raise ValueError(f"--out {out}: is a file, not a directory")
    storage.makedirs(out)
    runtime = default_runtime(cfg)
    cmd = args.command
    if cmd == "demo":
        from torchrec_nas.report import run_demo

        report = run_demo(cfg, out)
        print(f"report: {report}")
    elif cmd == "supernet":
        from torchrec_nas.report_data import record_data_summary

        data = runtime.data(cfg)
        print(record_data_summary(data, out).to_text())
        print(json_dumps(stages.run_supernet(cfg, out, runtime, data).to_dict()))
    elif cmd == "search":
        print(json_dumps(stages.run_search(cfg, out, runtime)))
    elif cmd == "train":
        if args.baselines_only and (args.arch or args.no_baselines):
            raise ValueError("--baselines-only trains no architecture: drop --arch/--no-baselines")
        if args.baselines_only and not cfg.train.baselines.models:
            raise ValueError("--baselines-only: train.baselines.models is empty in the config")
        arch = None
        if not args.baselines_only:
            arch = Architecture.load(args.arch or storage.join(out, "best_arch.json"))
        if args.no_baselines:
            cfg.train.baselines.models = []
        results = stages.train_final(cfg, out, arch, runtime=runtime)
        print(json_dumps({k: v["test"] for k, v in results.items()}))
    elif cmd == "embedding-search":
        from torchrec_nas.embedding_search.search import run_embedding_search

        cfg.embedding_search.progress = cfg.embedding_search.progress and not args.quiet
        print(json_dumps(run_embedding_search(cfg, out, runtime)["embedding_dims"]))
    elif cmd == "evaluate":
        print(json_dumps(stages.evaluate_saved_model(cfg, args.model, runtime).to_dict()))
    elif cmd == "estimate":
        from torchrec_nas.hardware.estimate import estimate_architecture

        arch = Architecture.load(args.arch)
        text, costs = estimate_architecture(cfg, arch, args.hardware, args.embedding_mode)
        storage.write_text_atomic(storage.join(out, "estimate.json"), json_dumps(costs))
        print(text)
    elif cmd == "prune":
        from torchrec_nas.prune.stage import run_prune

        result = run_prune(cfg, args.model, out, args.prune_options, runtime)
        print(json_dumps({"pruned": result["pruned"], "searched": result["searched"]["rows"]}))
    elif cmd == "bench":
        from torchrec_nas.bench import run_bench

        print(json_dumps(run_bench(cfg, out, args.only)))
    elif cmd == "preprocess":
        from torchrec_nas.data import load_cache, preprocess_main
        from torchrec_nas.report_data import record_data_summary

        # The cache is memory-mapped by the readers: it must be on a local disk.
        cache = storage.local_input(out, "--out")
        result = preprocess_main(cfg.data, cache)
        print(record_data_summary(load_cache(cache), out).to_text())
        print(json_dumps(result))
    return 0


def _prune_options(args: argparse.Namespace) -> object:
    from torchrec_nas import storage
    from torchrec_nas.prune.options import (
        PruneOptions,
        parse_rival_steps,
        parse_seeds,
        parse_targets,
    )

    options = PruneOptions(
        targets=parse_targets(args.target_flops),
        methods=args.method.split(","),
        steps=args.steps,
        finetune_steps=args.finetune_steps,
        finetune_lr=args.finetune_lr,
        mask_steps=args.mask_steps,
        mask_l1=args.mask_l1,
        compare_searched=args.compare_searched,
        seeds=parse_seeds(args.seeds),
        rival_steps=parse_rival_steps(args.rival_steps),
        sampled_rivals=args.sampled_rivals,
        hardware=args.hardware,
        quantize=args.quantize,
    )
    options.validate()
    if not storage.isfile(args.model):
        raise FileNotFoundError(f"--model {args.model}: model file not found")
    args.out = args.out or storage.join(storage.parent(storage.parent(args.model)), "prune")
    return options


def _export(args: argparse.Namespace) -> int:
    from torchrec_nas.stages.export import export_model
    from torchrec_nas.train.checkpoint import json_dumps

    print(json_dumps(export_model(args.model, args.out, args.quantize).to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
