"""The ``prune`` stage: prune a trained NASRec model to FLOPs targets, fine-tune, evaluate, and
compare with the searched architectures of the same FLOPs.

Each target is reached in ``steps`` pruning steps whose FLOPs fall linearly from where the last
target ended (the first from the unpruned model); after each step the model is fine-tuned with
the final training's recipe (:func:`torchrec_nas.stages.train.train_trial`). With
``method="mask"`` each step first trains the gates of :class:`~torchrec_nas.prune.mask.GatedSubnet`
with the weights (the :class:`~torchrec_nas.runtime.trainer.Trainer`, loss plus L1 penalty).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.datasets.utils import Batch

from torchrec_nas import storage
from torchrec_nas.config import Config
from torchrec_nas.data import DataSpec, DataSplits
from torchrec_nas.hardware.flops import architecture_costs
from torchrec_nas.models import NASRecSubnet
from torchrec_nas.prune.compare import compare_searched, final_results
from torchrec_nas.prune.graph import ChannelGraph, GroupKey
from torchrec_nas.prune.markdown import write_prune_markdown
from torchrec_nas.prune.mask import GatedSubnet
from torchrec_nas.prune.options import PruneOptions
from torchrec_nas.prune.resume import check_resume, schedule
from torchrec_nas.prune.seeds import summarize
from torchrec_nas.prune.select import select_channels
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.callbacks import standard_callbacks
from torchrec_nas.runtime.default import default_runtime
from torchrec_nas.runtime.trainer import Trainer, batches_per_epoch
from torchrec_nas.stages.evaluate import ModelDataMismatch
from torchrec_nas.stages.models import load_model, read_model_file, save_model, spec_differences
from torchrec_nas.stages.spread import aggregate_seeds
from torchrec_nas.stages.train import train_trial
from torchrec_nas.train.checkpoint import write_json_atomic
from torchrec_nas.train.metrics import evaluate


class _Rotated:
    """The batches of ``data`` from batch ``offset`` on, then its first ``offset`` (one epoch
    in all), so that successive trainings read on through the split instead of repeating
    its first batches."""

    def __init__(self, data: Iterable[Batch], offset: int) -> None:
        self.data = data
        self.offset = offset

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Batch]:
        yield from itertools.islice(self.data, self.offset, None)
        yield from itertools.islice(self.data, self.offset)


@dataclass
class _Context:
    cfg: Config
    out: str
    runtime: Runtime
    data: DataSplits
    dense_in: int
    lr: float
    options: PruneOptions
    steps: int  # fine-tuning steps after each pruning step
    base_flops: float
    consumed: int = 0  # training batches read so far by fine-tunings and gate trainings

    def train_data(self, steps: int) -> DataSplits:
        """The data of the next training of ``steps`` steps (continuing through the split)."""
        length = batches_per_epoch(self.data.train)
        offset = self.consumed % length if length else 0
        self.consumed += steps
        if not offset:
            return self.data
        return dataclasses.replace(self.data, train=_Rotated(self.data.train, offset))


def _final_lr(cfg: Config, model_path: str | Path) -> float:
    """The dense learning rate the model's final training chose (``train/results.json``),
    else the config's first."""
    lr = final_results(model_path).get("lr")
    if lr is not None:
        return float(lr)
    return (cfg.train.lr_grid or [cfg.train.optimizer.lr])[0]


def _fresh(ctx: _Context, like: NASRecSubnet, state: dict[str, Any]) -> NASRecSubnet:
    # Training may shard the module it was given in place: rebuild a plain one.
    model = NASRecSubnet.build(like.tables, ctx.dense_in, like.space, like.arch)
    model.load_state_dict(state)
    return model


def _finetune(ctx: _Context, model: NASRecSubnet, steps: int, trial: str) -> NASRecSubnet:
    if steps == 0:
        return model
    cfg = copy.copy(ctx.cfg)
    cfg.train = dataclasses.replace(ctx.cfg.train, steps=steps, checkpoint_every=0, progress=False)
    start = copy.deepcopy(model)
    data = ctx.train_data(steps)
    trained, _ = train_trial(cfg, ctx.out, ctx.runtime, data, trial, lambda: start, ctx.lr, trial)
    return _fresh(ctx, model, ctx.runtime.full_state_dict(trained))


def _train_gates(
    ctx: _Context, model: NASRecSubnet, trial: str
) -> tuple[NASRecSubnet, dict[GroupKey, torch.Tensor]]:
    """Trains the weights and gates of ``model`` under the L1 penalty; returns the trained
    model with its dense gates folded in, and ``|g|`` of every channel."""
    gated = GatedSubnet(ChannelGraph(copy.deepcopy(model), ctx.dense_in))
    loop = dataclasses.replace(
        ctx.cfg.train,
        steps=ctx.options.mask_steps,
        checkpoint_every=0,
        progress=False,
        optimizer=dataclasses.replace(ctx.cfg.train.optimizer, lr=ctx.lr),
    )
    placed, opt = ctx.runtime.prepare(gated, loop.optimizer, ctx.options.mask_steps, ctx.cfg)
    l1 = ctx.options.mask_l1

    def loss(batch: Batch, step: int) -> torch.Tensor:
        logits = placed(batch)
        bce = F.binary_cross_entropy_with_logits(logits, batch.labels.float())
        return bce + l1 * gated.penalty().to(bce.device)

    callbacks = standard_callbacks(loop, storage.join(ctx.out, trial), None, ctx.runtime.is_primary)
    trainer = Trainer(
        placed, opt, loop, lambda b, _: placed(b), None, trial, callbacks, ctx.runtime, loss
    )
    trainer.fit(ctx.train_data(ctx.options.mask_steps).train, None)
    state = ctx.runtime.full_state_dict(placed)
    trained = _fresh(ctx, model, {k[6:]: v for k, v in state.items() if k.startswith("model.")})
    regated = GatedSubnet(ChannelGraph(trained, ctx.dense_in))
    regated.gates.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("gates.")})
    scores = regated.scores()
    return regated.fold_and_remove(), scores


def prune_step(
    ctx: _Context, model: NASRecSubnet, method: str, target_flops: float, trial: str
) -> NASRecSubnet:
    """One pruning step: rank the channels (magnitude, or trained gates), remove the fewest
    that bring the model to ``target_flops``, rebuild it smaller."""
    if method == "mask":
        model, gates = _train_gates(ctx, model, trial + "/gates")
        graph = ChannelGraph(model, ctx.dense_in)
        # Gates the task left at the penalty's common drift tie: magnitude breaks the ties.
        magnitude = graph.importance()
        scores = {
            k: g + 1e-3 * magnitude[k] / magnitude[k].mean().clamp_min(1e-12)
            for k, g in gates.items()
        }
        keep = select_channels(graph, scores, target_flops, normalize=False)
    else:
        graph = ChannelGraph(model, ctx.dense_in)
        keep = select_channels(graph, graph.importance(), target_flops)
    return graph.rebuild(keep)


def _test(ctx: _Context, model: nn.Module) -> dict[str, float]:
    placed = ctx.runtime.place(copy.deepcopy(model).eval(), ctx.cfg).eval()
    result = evaluate(placed, ctx.runtime.share(ctx.data.test, None), None, ctx.runtime.device)
    return {"auc": result.auc, "logloss": result.logloss}


def _quantized(ctx: _Context, model: NASRecSubnet) -> dict[str, Any]:
    from torchrec_nas.stages.export import InferenceModel, quantize_embeddings, table_bytes

    cpu = copy.deepcopy(model).cpu().eval()
    floating = InferenceModel(cpu)
    quantized = quantize_embeddings(floating, ctx.options.quantize)  # type: ignore[arg-type]

    def forward(batch: Batch) -> torch.Tensor:
        logits: torch.Tensor = quantized(batch.dense_features, batch.sparse_features)
        return logits

    with torch.no_grad():
        test = evaluate(forward, ctx.runtime.share(ctx.data.test, None), None, None)
    return {
        "dtype": ctx.options.quantize,
        "table_bytes": table_bytes(floating),
        "quantized_table_bytes": table_bytes(quantized),
        "test": {"auc": test.auc, "logloss": test.logloss},
    }


def describe(ctx: _Context, model: NASRecSubnet) -> dict[str, Any]:
    """FLOPs, dense parameters and the PIM estimate of ``model``, its test metrics, and
    (with ``quantize``) the same model with quantized tables."""
    costs = architecture_costs(
        model.arch, model.space, ctx.dense_in, model.tables, hardware=ctx.options.hardware
    )
    with torch.no_grad():
        entry: dict[str, Any] = {
            "flops": costs.pop("flops"),
            "params": costs.pop("params"),
            "pim": costs,
            "test": _test(ctx, model),
        }
    if ctx.options.quantize:
        entry["quantized"] = _quantized(ctx, model)
    return entry


def _start(ctx: _Context, seed: int, prefix: str) -> int:
    """The first training batch of ``seed``'s fine-tunings: the split's first for the
    single-seed layout, else spread over the split by the seed (golden-ratio steps)."""
    length = batches_per_epoch(ctx.data.train)
    return int(((seed * 0.6180339887498949) % 1.0) * length) if prefix and length else 0


def _prune_seed(
    ctx: _Context,
    base: NASRecSubnet,
    seed: int,
    prefix: str,
    model_path: str | Path,
    spec: dict[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Every method's pruned models of one seed (trials and models under ``prefix``) and the
    control (``None`` without fine-tuning)."""
    options, steps, base_flops = ctx.options, ctx.steps, ctx.base_flops
    entries = []
    for method in options.methods:
        torch.manual_seed(seed)
        model, fraction = copy.deepcopy(base).train(), 1.0
        ctx.consumed = _start(ctx, seed, prefix)  # every method (and the control) reads alike
        for target in options.targets:
            start = time.perf_counter()
            for k in range(1, options.steps + 1):
                step_fraction = fraction + (target - fraction) * k / options.steps
                trial = f"{prefix}{method}/{round(100 * target)}/step{k}"
                model = prune_step(ctx, model, method, step_fraction * base_flops, trial)
                model = _finetune(ctx, model, steps, trial)
            fraction = target
            seconds = time.perf_counter() - start
            entry = {"method": method, "target": target, "seed": seed, **describe(ctx, model)}
            entry["flops_fraction"] = entry["flops"] / base_flops
            entry["seconds"] = seconds
            entry["architecture"] = model.arch.to_dict()
            name = f"{prefix}model_{method}_{round(100 * target)}.pt"
            meta = {"spec": spec, "options": {}, "pruned_from": str(model_path)}
            save_model(model.cpu(), storage.join(ctx.out, name), **meta)
            model.to(ctx.runtime.device)
            entry["model_file"] = name
            entries.append(entry)
    if not steps:
        return entries, None
    # The control: the unpruned model fine-tuned as often as the last target's models.
    control = copy.deepcopy(base).train()
    ctx.consumed = _start(ctx, seed, prefix)
    rounds = len(options.targets) * options.steps
    for k in range(1, rounds + 1):
        control = _finetune(ctx, control, steps, f"{prefix}control/step{k}")
    return entries, {"finetune_rounds": rounds, "seed": seed, **describe(ctx, control)}


def run_prune(
    cfg: Config,
    model_path: str | Path,
    out: str | Path,
    options: PruneOptions,
    runtime: Runtime | None = None,
    data: DataSplits | None = None,
) -> dict[str, Any]:
    """Prunes the model at ``model_path`` to each of ``options.targets`` with each method;
    writes ``out/model_<method>_<pct>.pt`` (loadable by ``load_model``, exportable by
    ``export``), ``out/prune.json`` and ``out/prune.md`` (with ``prune_auc_flops.png``).

    Each method's targets are reached one after the other, each continuing from the previous
    target's model. A control, the unpruned model fine-tuned as many times as the last
    target's models, separates the effect of pruning from that of the extra training.
    Fine-tunings checkpoint under ``out`` like final training, so a rerun with the same
    schedule resumes (another is refused: use a fresh ``out``). With several ``options.seeds``
    every seed repeats all of it under ``out/seed_<s>/`` (its fine-tunings starting at its
    own batch of the training split); ``summary`` holds the mean and std of test metrics per
    method and target.

    Args:
        cfg: the config whose data and final-training recipe are used.
        model_path: a ``model_nasrec.pt`` written by ``train``.
        out: the output directory.
        options: targets, methods and schedule.
        runtime: one process (default).
        data: the data (default: built from ``cfg.data``).

    Raises:
        ValueError: a target outside ``(0, 1)``, an unknown method, a model that is not a
            NASRec model or cannot reach a target, data that do not fit the model, or an
            ``out`` that holds a run with another schedule (:mod:`torchrec_nas.prune.resume`).
        FileNotFoundError: no model file at ``model_path``.
        CheckpointError: the file is not a model written by ``train``.

    Example::

        run_prune(cfg, "runs/demo/train/model_nasrec.pt", "runs/demo/prune",
                  PruneOptions(targets=[0.75, 0.5, 0.25], methods=["magnitude", "mask"]))
    """
    options.validate()
    state = read_model_file(model_path)
    if state["kind"] != "nasrec":
        raise ValueError(
            f"{model_path}: a {state['kind']!r} model cannot be pruned here; give a "
            "model_nasrec.pt written by `torchrec-nas train`"
        )
    spec = DataSpec.from_dict(state["spec"])
    runtime = runtime or default_runtime(cfg)
    data = data or runtime.data(cfg)
    diffs = spec_differences(spec, data.spec)
    if diffs:
        raise ModelDataMismatch(f"{model_path}: the model does not fit the config's data: {diffs}")
    out = str(out)
    storage.makedirs(out)
    base = load_model(model_path)
    assert isinstance(base, NASRecSubnet)
    dense_in = len(spec.dense_names)
    graph = ChannelGraph(base, dense_in)
    base_flops = graph.flops()
    # An unreachable target fails now, not after the first targets' training.
    select_channels(graph, graph.importance(), options.targets[-1] * base_flops)
    steps = options.finetune_steps
    if steps is None:
        total = cfg.train.total_steps(batches_per_epoch(data.train))
        steps = max(1, total // options.steps)
    lr = options.finetune_lr or _final_lr(cfg, model_path) / 4
    check_resume(out, schedule(model_path, options, steps, lr))
    ctx = _Context(cfg, out, runtime, data, dense_in, lr, options, steps, base_flops)
    seeds = options.seeds or [cfg.seed]
    result: dict[str, Any] = {
        "model": str(model_path),
        "finetune_steps": steps,
        "finetune_lr": lr,
        "steps": options.steps,
        "seeds": seeds,
        "base": {"architecture": base.arch.to_dict(), **describe(ctx, base)},
        "pruned": [],
    }
    controls = []
    for seed in seeds:
        # One seed equal to the config's keeps the single-seed layout and batches.
        prefix = "" if seeds == [cfg.seed] else f"seed_{seed}/"
        pruned, control = _prune_seed(ctx, base, seed, prefix, model_path, spec.to_dict())
        result["pruned"] += pruned
        if control is not None:
            controls.append(control)
    if controls:
        result["control"] = {**controls[0], "seeds": [c["seed"] for c in controls]}
        result["control"]["test_seeds"] = aggregate_seeds([c["test"] for c in controls])
    result["summary"] = summarize(result["pruned"])
    result["searched"] = compare_searched(
        cfg, model_path, out, base_flops, options, result, runtime, data
    )
    write_json_atomic(storage.join(out, "prune.json"), result)  # non-finite floats: null
    write_prune_markdown(result, out)
    return result
