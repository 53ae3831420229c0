"""The typed configuration of a torchrec_nas run, loaded from YAML and validated.

Every section has defaults that work; a YAML file overrides what it names. Unknown fields,
wrong types and bad values fail at load time with ``FILE: section.field: what is wrong``.

Example YAML::

    seed: 2018
    data: {source: synthetic, batch_size: 512}
    space: {preset: nasrec-small, dense_dims: [16, 32, 64, 128]}
    supernet: {epochs: 1, optimizer: {lr: 0.12}}
    search: {population: 32, tournament: 8, children: 8, generations: 10,
             finetune: {steps: 50}}
    train: {epochs: 1, baselines: [dlrm, dcn]}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from torchrec_nas import storage
from torchrec_nas.config_utils import ConfigError, from_mapping, load_yaml, to_mapping
from torchrec_nas.data import DataConfig
from torchrec_nas.data.config import check_local_inputs
from torchrec_nas.distributed.config import DistributedConfig
from torchrec_nas.embedding_search.config import EmbeddingSearchConfig
from torchrec_nas.search.config import FinetuneConfig, RerankConfig
from torchrec_nas.search.evolution import EvolutionConfig
from torchrec_nas.search.objective import ObjectiveConfig
from torchrec_nas.space import SearchSpace
from torchrec_nas.train.config import LoopConfig


@dataclass
class SupernetConfig(LoopConfig):
    """Supernet training: the loop settings, the budget, and how paths are sampled.

    The budget: ``steps`` when set; else ``epochs`` passes over the training split when set;
    else (the default, ``epochs: null``) it follows the data: one pass over the training rows,
    at least ``min_steps`` steps. One pass over many rows ranks subnets better than repeated
    epochs over few, over which the supernet memorizes its shared embeddings.

    Args:
        epochs: passes over the training split (``null``: the budget follows the data).
        min_steps: the fewest steps of a budget that follows the data.
        path_warmup_fraction: share of the steps during which a sampled path is replaced by
            the largest path with probability ``path_warmup_prob`` (decaying linearly to 0
            with ``path_warmup_schedule: linear``, held with ``constant``).
        path_warmup_prob: that probability at step 0.
        path_warmup_schedule: ``linear`` or ``constant``; a longer warm-up of the full path
            is ``path_warmup_fraction: 0.5`` with ``constant``, for example.
        sandwich: each step trains the largest path, the smallest path and
            ``sandwich_random`` sampled paths, their losses summed into one backward and one
            optimizer step (BigNAS's sandwich rule); the reported training loss is that sum.
        sandwich_random: sampled paths per sandwich step.
        distill: in-place distillation (needs ``sandwich``): the other paths learn the
            largest path's detached probability, mixed with the label.
        distill_weight: the weight of that soft target (``1 - distill_weight``: the label's).
        fair_operators: deal each block's operators round-robin over seeded permutations, so
            that every operator of a block is trained equally often.
        chance_ne: the supernet is at chance when the validation normalized entropy of its
            probe path (the fixed largest path) is at least this; ``search`` then refuses
            unless ``search.allow_chance``.
    """

    epochs: float | None = None  # type: ignore[assignment]
    epochs_may_be_null: ClassVar[bool] = True
    min_steps: int = 500
    path_warmup_fraction: float = 0.1
    path_warmup_prob: float = 1.0
    path_warmup_schedule: Literal["linear", "constant"] = "linear"
    sandwich: bool = False
    sandwich_random: int = 2
    distill: bool = False
    distill_weight: float = 0.5
    fair_operators: bool = False
    chance_ne: float = 0.99

    def validate(self) -> None:
        super().validate()
        if self.min_steps < 1:
            raise ValueError(f"min_steps must be at least 1, got {self.min_steps}")
        if not 0.0 <= self.path_warmup_fraction <= 1.0:
            raise ValueError("path_warmup_fraction must be in [0, 1]")
        if not 0.0 <= self.path_warmup_prob <= 1.0:
            raise ValueError("path_warmup_prob must be in [0, 1]")
        if self.sandwich_random < 0:
            raise ValueError(f"sandwich_random must be >= 0, got {self.sandwich_random}")
        if self.distill and not self.sandwich:
            raise ValueError("distill needs sandwich: true (the largest path is the teacher)")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        if not 0.0 < self.chance_ne:
            raise ValueError(f"chance_ne must be positive, got {self.chance_ne}")

    def total_steps(self, batches_per_epoch: int | None) -> int:
        """Length of the run: ``steps``, ``epochs`` passes, or ``max(min_steps, one pass)``."""
        if self.steps is not None:
            return self.steps
        if not batches_per_epoch:
            raise ValueError(
                "the training split's length is unknown: set `supernet.steps` in the config"
            )
        if self.epochs is not None:
            return max(1, int(self.epochs * batches_per_epoch))
        return max(self.min_steps, batches_per_epoch)


@dataclass
class SearchConfig(EvolutionConfig):
    """The search: strategy settings, candidate scoring, objective and constraints.

    Args:
        allow_chance: search even when the supernet is at chance (see
            :class:`SupernetConfig`'s ``chance_ne``); the CLI's ``--allow-chance``.
        rerank: short stand-alone training of the best few candidates before the pick
            (:class:`~torchrec_nas.search.config.RerankConfig`; off by default).
    """

    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    progress: bool = True
    allow_chance: bool = False


@dataclass
class BaselineConfig:
    """Hand-designed TorchRec models trained beside the found one.

    Args:
        models: which of ``dlrm``, ``dcn``.
        dense_arch_layer_sizes: DLRM/DCN bottom MLP (the embedding dim is appended if missing).
        over_arch_layer_sizes: top MLP (a final 1 is appended if missing).
        dcn_num_layers: DCN-v2 cross layers.
        dcn_low_rank_dim: DCN-v2 low-rank dimension.
    """

    models: list[str] = field(default_factory=lambda: ["dlrm", "dcn"])
    dense_arch_layer_sizes: list[int] = field(default_factory=lambda: [512, 256])
    over_arch_layer_sizes: list[int] = field(default_factory=lambda: [512, 256])
    dcn_num_layers: int = 3
    dcn_low_rank_dim: int = 64

    def validate(self) -> None:
        bad = [m for m in self.models if m not in ("dlrm", "dcn")]
        if bad:
            raise ValueError(f"models: unknown baseline {bad[0]!r}; known: dlrm, dcn")


@dataclass
class TrainConfig(LoopConfig):
    """Training a found architecture (and the baselines) from scratch on the same budget.

    Args:
        baselines: the hand-designed models trained beside it.
        lr_grid: dense learning rates tried for *every* model (the embedding tables keep
            ``optimizer.sparse_lr``); each model keeps the one with the best validation
            logloss, so no model is judged at a learning rate tuned for another. Empty: only
            ``optimizer.lr``.
        norm_gain_init: initial LayerNorm gain of a NASRec model trained from scratch.
        seeds: initialization seeds; every model trains with each (the learning rate is chosen
            on the first) and ``results.json`` reports mean and spread. Empty: ``[seed]``.
        layer_norm_grid: LayerNorm settings tried for the searched model (``[true, false]``:
            with and without a LayerNorm after each block), chosen on validation together
            with the learning rate. The supernet needs its LayerNorms to train stably; a fixed
            model may train better without them (DCN-v2 does). Empty: the space's
            ``layer_norm``.
        embedding_dims: an ``embedding_dims.json`` of ``embedding-search``: each model is also
            trained with those per-feature widths (``<name>_mixed``); the CLI's
            ``--embedding-dims``.
    """

    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    lr_grid: list[float] = field(default_factory=list)
    norm_gain_init: float = 1.0
    seeds: list[int] = field(default_factory=list)
    layer_norm_grid: list[bool] = field(default_factory=list)
    embedding_dims: str | None = None

    def validate(self) -> None:
        super().validate()
        if any(not (math.isfinite(lr) and lr > 0) for lr in self.lr_grid):
            raise ValueError(f"lr_grid: learning rates must be positive, got {self.lr_grid}")


@dataclass
class BenchConfig:
    """The ``bench`` subcommand's measurements.

    Args:
        sharing_archs: sampled architectures timed for the weight-sharing cost.
        sharing_steps: training steps per architecture in that measurement.
        kendall_subnets: random subnets of the quick rank figure (``--only kendall``).
        kendall_steps: stand-alone training steps per subnet of that figure.
        ranking_subnets: subnets of the ranking benchmark, stratified by FLOPs (at least 2:
            the smallest and the largest path are always among them).
        ranking_pool: sampled architectures the FLOPs strata are cut from.
        ranking_seeds: stand-alone seeds per subnet (the noise ceiling needs 2).
        ranking_max_epochs: cap of a stand-alone training, in epochs (``null``, the default:
            the final-training recipe's length, ``train.steps`` or ``train.epochs``).
        ranking_max_steps: that cap in steps (overrides ``ranking_max_epochs``).
        ranking_eval_every: validate a stand-alone training every this many steps.
        ranking_patience: stop after this many validations without a lower logloss.
        ranking_min_fraction: but not before this share of the cap's steps (a loss that
            rises while the learning rate warms up to its peak does not end a training).
        ranking_eval_batches: validation batches of a stand-alone result (``null``: all).
        ranking_cache: the stand-alone results file (default ``OUT/standalone_cache.jsonl``).
        ablation: the entries of ``--only ablation``, ``{NAME: {dotted.config.path: value}}``;
            each trains a supernet with its overrides and scores the ranking subnets with it.
        search_seeds: search seeds of evolution against random search.
        seeds: training seeds of ``--only seeds`` (final training, mean and spread).
    """

    sharing_archs: int = 8
    sharing_steps: int = 20
    kendall_subnets: int = 12
    kendall_steps: int = 300
    ranking_subnets: int = 24
    ranking_pool: int = 512
    ranking_seeds: int = 2
    ranking_max_epochs: float | None = None
    ranking_max_steps: int | None = None
    ranking_eval_every: int = 50
    ranking_patience: int = 3
    ranking_min_fraction: float = 0.5
    ranking_eval_batches: int | None = None
    ranking_cache: str | None = None
    ablation: dict[str, dict[str, Any]] = field(default_factory=dict)
    search_seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])

    def validate(self) -> None:
        if self.ranking_subnets < 2:
            raise ValueError(f"ranking_subnets must be at least 2, got {self.ranking_subnets}")
        if self.ranking_seeds < 1:
            raise ValueError(f"ranking_seeds must be at least 1, got {self.ranking_seeds}")
        if self.ranking_max_steps is not None and self.ranking_max_steps < 1:
            raise ValueError("ranking_max_steps must be at least 1")
        epochs = self.ranking_max_epochs
        if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
            raise ValueError("ranking_max_epochs must be positive or null")
        if self.ranking_eval_every < 0 or self.ranking_patience < 0:
            raise ValueError("ranking_eval_every and ranking_patience must be >= 0")
        if not 0.0 <= self.ranking_min_fraction < 1.0:
            raise ValueError(
                f"ranking_min_fraction must be in [0, 1), got {self.ranking_min_fraction}"
            )
        if not self.search_seeds or not self.seeds:
            raise ValueError("search_seeds and seeds must not be empty")
        for name, overrides in self.ablation.items():
            if not name or not overrides:
                raise ValueError(f"ablation: entry {name!r} needs a name and overrides")


@dataclass
class Config:
    """A whole run.

    Args:
        seed: seeds data splits, sampling and search.
        device: ``cpu`` or ``cuda``.
        data: the data source.
        space: the search space (``preset:`` plus overrides).
        supernet: supernet training.
        search: the search.
        train: final training of the found architecture and the baselines.
        bench: benchmark settings.
        distributed: sharding and process-group settings of jobs launched with ``torchrun``
            or TorchX (``torchrec_nas.launch``); ignored by one-process runs.
        embedding_search: the embedding-size search (``torchrec-nas embedding-search``).
    """

    seed: int = 2018
    device: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    space: SearchSpace = field(default_factory=lambda: SearchSpace.preset("nasrec-full"))
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    embedding_search: EmbeddingSearchConfig = field(default_factory=EmbeddingSearchConfig)

    @staticmethod
    def from_dict(data: dict[str, Any], where: str = "config") -> Config:
        data = dict(data)
        space_data = data.pop("space", {"preset": "nasrec-full"})
        if not isinstance(space_data, dict):
            raise ConfigError(f"{where}: space: expected a mapping, got {space_data!r}")
        space = SearchSpace.from_mapping(space_data, f"{where}: space")
        cfg = from_mapping(Config, data, f"{where}:")
        return dataclasses.replace(cfg, space=space)

    @staticmethod
    def load(path: str | Path) -> Config:
        """Reads and validates a YAML config file (a local path or URL).

        Raises:
            ConfigError: a bad field, or a memory-mapped input (``criteo_npy``, ``cache``,
                ``data.cache_dir``) at a remote URL.
        """
        cfg = Config.from_dict(load_yaml(path), str(path))
        try:
            cfg.data = data_on_local_disk(cfg.data)
        except ValueError as e:
            raise ConfigError(f"{path}: {e}") from e
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)


#: Data settings that name input files or folders (``file://`` URLs become local paths).
DATA_PATH_FIELDS = ("path", "cache_dir", "kdd12_profile_path")


def data_on_local_disk(data: DataConfig) -> DataConfig:
    """``data`` with its ``file://`` input URLs as local paths, checking that the inputs that
    are memory-mapped are local.

    Text and Parquet inputs may be any fsspec URL (``memory://``, ``s3://``); the
    ``criteo_npy`` and ``cache`` sources' ``path`` and ``cache_dir`` are memory-mapped and
    must be on this machine's disk.

    Raises:
        ValueError: a memory-mapped input is a remote URL; the message names the field.

    Example::

        data_on_local_disk(DataConfig(source="criteo_tsv", path="file:///d/day_0.gz")).path
        # '/d/day_0.gz'
    """
    check_local_inputs(data)
    changes: dict[str, Any] = {}
    for name in DATA_PATH_FIELDS:
        value = getattr(data, name)
        local = storage.local_path(value) if value is not None else None
        if local is not None and str(local) != value:
            changes[name] = str(local)
    return dataclasses.replace(data, **changes) if changes else data
