"""PIM cost inside TorchRec's sharding planner: a shard estimator and a stats reporter.

:class:`PIMShardEstimator` prices every shard of every sharding option with
:class:`~torchrec_nas.hardware.pim.PIMCostModel` and writes the PIM latency into the shard's
``perf``, so the planner balances ranks by their PIM cost. :class:`PIMStats` reports, for the
plan the planner chose, the PIM energy, latency and crossbars of each rank, prints the table and
saves it as JSON and Markdown.

How PIM latency maps onto TorchRec's ``Perf`` (all in milliseconds, per training/inference
batch): the embedding lookups run on the PIM device, so

* ``fwd_compute`` becomes the PIM latency of the shard's lookups for the batch;
* ``bwd_compute`` becomes the PIM latency times TorchRec's own backward/forward compute ratio
  for that shard (0 for inference estimators, which is where PIM crossbars are used);
* ``fwd_comms``, ``bwd_comms``, ``input_dist_comms`` and ``prefetch_compute`` stay as the
  estimators before this one set them: moving ids and pooled embeddings between ranks does not
  change with the memory technology.

A shard processes the global batch (``batch_size x world_size`` samples) unless the table is
data parallel (``batch_size`` samples); a row-wise shard receives the share of lookups that falls
on its rows (ids assumed uniform); the samples of a batch are processed one after another.

In TorchRec 1.9 the estimators are given to the enumerator, not to the planner itself (all
names from ``torchrec.distributed.planner`` and its ``enumerators``, ``shard_estimators`` and
``stats`` modules)::

    topology = Topology(world_size=2, compute_device="cpu")
    enumerator = EmbeddingEnumerator(
        topology=topology,
        batch_size=512,
        estimator=[
            EmbeddingPerfEstimator(topology),
            EmbeddingStorageEstimator(topology),
            PIMShardEstimator(topology, hardware="isaac"),
        ],
    )
    planner = EmbeddingShardingPlanner(
        topology=topology,
        batch_size=512,
        enumerator=enumerator,
        stats=[EmbeddingStats(), PIMStats("isaac", out_path="runs/plan")],
    )

:func:`pim_sharding_planner` builds exactly that.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torchrec.distributed.planner import EmbeddingShardingPlanner
from torchrec.distributed.planner.enumerators import EmbeddingEnumerator
from torchrec.distributed.planner.shard_estimators import (
    EmbeddingPerfEstimator,
    EmbeddingStorageEstimator,
)
from torchrec.distributed.planner.stats import EmbeddingStats
from torchrec.distributed.planner.types import (
    Enumerator,
    ParameterConstraints,
    Perf,
    PlanDebugStats,
    Shard,
    ShardEstimator,
    ShardingOption,
    Stats,
    StorageReservation,
    Topology,
)
from torchrec.distributed.types import ModuleSharder, ShardingPlan

from torchrec_nas.hardware.layers import EmbeddingLookup
from torchrec_nas.hardware.pim import EmbeddingMode, PIMCostModel, PIMHardware

logger: logging.Logger = logging.getLogger(__name__)

HardwareSpec = str | PIMHardware

_ROW_SPLIT_TYPES = frozenset({"row_wise", "table_row_wise", "grid_shard"})
_DATA_PARALLEL = "data_parallel"
_NS_PER_MS = 1e6


@dataclass(frozen=True)
class ShardPIMCost:
    """PIM cost of one shard for one batch.

    Args:
        table: the sharding option's (table's) name.
        rank: the rank the shard is placed on (``None`` before partitioning).
        samples: samples of the batch the shard serves.
        lookups_per_sample: rows of this shard read per sample.
        energy_pj: energy for the batch.
        latency_ns: latency for the batch.
        crossbars: crossbars the shard occupies (0 for near-memory lookups).
    """

    table: str
    rank: int | None
    samples: int
    lookups_per_sample: float
    energy_pj: float
    latency_ns: float
    crossbars: int


def shard_pim_cost(
    model: PIMCostModel,
    sharding_option: ShardingOption,
    shard: Shard,
    world_size: int,
    embedding_mode: EmbeddingMode = "near_memory",
) -> ShardPIMCost:
    """Prices one shard of a sharding option for one batch (see the module doc for the rules).

    Args:
        model: the PIM cost model.
        sharding_option: the option the shard belongs to.
        shard: the shard (its ``size`` is ``[rows, columns]``).
        world_size: ranks in the topology.
        embedding_mode: ``"near_memory"`` or ``"in_crossbar"``.
    """
    rows, columns = int(shard.size[0]), int(shard.size[1])
    table_rows = max(int(sharding_option.tensor.shape[0]), 1)
    lookups = float(sum(sharding_option.input_lengths))
    if sharding_option.sharding_type in _ROW_SPLIT_TYPES:
        lookups *= rows / table_rows
    samples = sharding_option.batch_size
    if sharding_option.sharding_type != _DATA_PARALLEL:
        samples *= world_size
    lookup = EmbeddingLookup(
        name=sharding_option.name,
        num_embeddings=max(rows, 1),
        embedding_dim=max(columns, 1),
        lookups_per_sample=lookups,
        weight_bits=sharding_option.tensor.element_size() * 8,
    )
    cost = model.layer_cost(lookup, embedding_mode)
    return ShardPIMCost(
        table=sharding_option.name,
        rank=shard.rank,
        samples=samples,
        lookups_per_sample=lookups,
        energy_pj=cost.energy_pj * samples,
        latency_ns=cost.latency_ns * samples,
        crossbars=cost.crossbars,
    )


class PIMShardEstimator(ShardEstimator):
    """Writes the PIM latency of each shard into its ``perf`` (a TorchRec ``ShardEstimator``).

    Put it after TorchRec's ``EmbeddingPerfEstimator`` so the communication terms that one
    computes are kept; alone, it sets only ``fwd_compute``.

    Args:
        topology: the planner's topology.
        hardware: a preset name (``"isaac"``, ``"mnsim"``, ``"neurosim"``), a YAML path or a
            :class:`~torchrec_nas.hardware.pim.PIMHardware`.
        constraints: TorchRec parameter constraints (accepted for the protocol; unused).
        embedding_mode: ``"near_memory"`` or ``"in_crossbar"``.

    Example::

        estimator = PIMShardEstimator(Topology(world_size=2, compute_device="cpu"), "isaac")
        estimator.estimate(sharding_options)  # shard.perf.fwd_compute is now PIM latency (ms)
    """

    def __init__(
        self,
        topology: Topology,
        hardware: HardwareSpec = "isaac",
        constraints: dict[str, ParameterConstraints] | None = None,
        embedding_mode: EmbeddingMode = "near_memory",
    ) -> None:
        self._topology = topology
        self._constraints = constraints
        self.hardware = PIMHardware.resolve(hardware)
        self.embedding_mode: EmbeddingMode = embedding_mode
        self._model = PIMCostModel(self.hardware)

    def estimate(
        self,
        sharding_options: list[ShardingOption],
        sharder_data_map: Any = None,
    ) -> None:
        """Updates every shard's ``perf`` in place (TorchRec's ``ShardEstimator`` protocol)."""
        for sharding_option in sharding_options:
            for shard in sharding_option.shards:
                cost = shard_pim_cost(
                    self._model,
                    sharding_option,
                    shard,
                    self._topology.world_size,
                    self.embedding_mode,
                )
                shard.perf = pim_perf(cost.latency_ns / _NS_PER_MS, shard.perf)


def pim_perf(pim_latency_ms: float, previous: Perf | None) -> Perf:
    """A ``Perf`` whose compute terms are the PIM latency and whose comms are kept."""
    if previous is None:
        return Perf(fwd_compute=pim_latency_ms, fwd_comms=0.0, bwd_compute=0.0, bwd_comms=0.0)
    backward_ratio = (
        previous.bwd_compute / previous.fwd_compute if previous.fwd_compute > 0 else 0.0
    )
    return Perf(
        fwd_compute=pim_latency_ms,
        fwd_comms=previous.fwd_comms,
        bwd_compute=pim_latency_ms * backward_ratio,
        bwd_comms=previous.bwd_comms,
        input_dist_comms=previous.input_dist_comms,
        prefetch_compute=previous.prefetch_compute,
    )


@dataclass(frozen=True)
class RankPIMCost:
    """Per-rank PIM cost of a plan, for one batch (shards on a rank run one after another)."""

    rank: int
    shards: int
    tables: tuple[str, ...]
    energy_pj: float
    latency_ns: float
    crossbars: int


class PIMStats(Stats):
    """Reports the chosen plan's PIM energy, latency and crossbars per rank (a TorchRec
    ``Stats``): logs and prints a table, and saves ``pim_stats.json`` and ``pim_stats.md``.

    Args:
        hardware: a preset name, a YAML path or a :class:`~torchrec_nas.hardware.pim.PIMHardware`.
        out_path: a directory to save the JSON and Markdown into (nothing saved when ``None``).
        embedding_mode: ``"near_memory"`` or ``"in_crossbar"``.
        print_table: also print the table to stdout (it is always logged).

    After planning, :attr:`ranks` holds the :class:`RankPIMCost` rows and :attr:`table` the
    Markdown.

    Example::

        stats = PIMStats("mnsim", out_path="runs/plan")
        planner = EmbeddingShardingPlanner(topology=topology, stats=[EmbeddingStats(), stats])
        planner.plan(module, sharders)
        stats.ranks[0].energy_pj
    """

    def __init__(
        self,
        hardware: HardwareSpec = "isaac",
        out_path: str | Path | None = None,
        embedding_mode: EmbeddingMode = "near_memory",
        print_table: bool = True,
    ) -> None:
        self.hardware = PIMHardware.resolve(hardware)
        self.out_path = Path(out_path) if out_path is not None else None
        self.embedding_mode: EmbeddingMode = embedding_mode
        self.print_table = print_table
        self._model = PIMCostModel(self.hardware)
        self.ranks: list[RankPIMCost] = []
        self.shards: list[ShardPIMCost] = []
        self.table: str = ""

    def log(
        self,
        sharding_plan: ShardingPlan,
        topology: Topology,
        batch_size: int,
        storage_reservation: StorageReservation,
        num_proposals: int,
        num_plans: int,
        run_time: float,
        best_plan: list[ShardingOption],
        constraints: dict[str, ParameterConstraints] | None = None,
        sharders: list[ModuleSharder[nn.Module]] | None = None,
        enumerator: Enumerator | None = None,
        debug: bool = False,
        debug_stats: PlanDebugStats | None = None,
        **kwargs: Any,
    ) -> None:
        """Computes, logs, prints and saves the per-rank table for ``best_plan``."""
        self.shards = [
            shard_pim_cost(self._model, option, shard, topology.world_size, self.embedding_mode)
            for option in best_plan
            for shard in option.shards
        ]
        self.ranks = rank_costs(self.shards, topology.world_size)
        self.table = format_rank_table(self.ranks, self.hardware.name, self.embedding_mode)
        for line in self.table.splitlines():
            logger.info(line)
        if self.print_table:
            print(self.table)
        if self.out_path is not None:
            self.save(self.out_path, batch_size)

    def to_dict(self, batch_size: int | None = None) -> dict[str, Any]:
        return {
            "hardware": self.hardware.name,
            "embedding_mode": self.embedding_mode,
            "batch_size": batch_size,
            "ranks": [asdict(rank) for rank in self.ranks],
            "shards": [asdict(shard) for shard in self.shards],
        }

    def save(self, directory: Path, batch_size: int | None = None) -> tuple[Path, Path]:
        """Writes ``pim_stats.json`` and ``pim_stats.md`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        json_path = directory / "pim_stats.json"
        markdown_path = directory / "pim_stats.md"
        json_path.write_text(json.dumps(self.to_dict(batch_size), indent=2))
        markdown_path.write_text(self.table + "\n")
        return json_path, markdown_path


def rank_costs(shards: Sequence[ShardPIMCost], world_size: int) -> list[RankPIMCost]:
    """Sums shard costs per rank; every rank gets a row, empty or not."""
    result = []
    for rank in range(world_size):
        mine = [shard for shard in shards if shard.rank == rank]
        result.append(
            RankPIMCost(
                rank=rank,
                shards=len(mine),
                tables=tuple(sorted({shard.table for shard in mine})),
                energy_pj=sum(shard.energy_pj for shard in mine),
                latency_ns=sum(shard.latency_ns for shard in mine),
                crossbars=sum(shard.crossbars for shard in mine),
            )
        )
    return result


def format_rank_table(ranks: Sequence[RankPIMCost], hardware: str, embedding_mode: str) -> str:
    """Markdown: one row per rank with energy (µJ), latency (µs) and crossbars per batch."""
    lines = [
        f"PIM cost of the sharding plan on `{hardware}` (embeddings: {embedding_mode}), per batch",
        "",
        "| rank | shards | energy (µJ) | latency (µs) | crossbars | tables |",
        "|---|---|---|---|---|---|",
    ]
    for rank in ranks:
        lines.append(
            f"| {rank.rank} | {rank.shards} | {rank.energy_pj * 1e-6:.3f} "
            f"| {rank.latency_ns * 1e-3:.3f} | {rank.crossbars} | {', '.join(rank.tables)} |"
        )
    lines.append(
        f"| **total** | {sum(r.shards for r in ranks)} "
        f"| {sum(r.energy_pj for r in ranks) * 1e-6:.3f} "
        f"| {max((r.latency_ns for r in ranks), default=0.0) * 1e-3:.3f} (slowest rank) "
        f"| {sum(r.crossbars for r in ranks)} | |"
    )
    return "\n".join(lines)


def pim_sharding_planner(
    topology: Topology,
    hardware: HardwareSpec = "isaac",
    batch_size: int = 512,
    out_path: str | Path | None = None,
    embedding_mode: EmbeddingMode = "near_memory",
    constraints: dict[str, ParameterConstraints] | None = None,
    print_table: bool = True,
) -> EmbeddingShardingPlanner:
    """TorchRec's planner with its own estimators and stats plus the PIM ones.

    Example::

        planner = pim_sharding_planner(Topology(world_size=2, compute_device="cpu"), "isaac")
        plan = planner.plan(ebc, sharders=[EmbeddingBagCollectionSharder()])
    """
    enumerator = EmbeddingEnumerator(
        topology=topology,
        batch_size=batch_size,
        constraints=constraints,
        estimator=[
            EmbeddingPerfEstimator(topology=topology, constraints=constraints),
            EmbeddingStorageEstimator(topology=topology, constraints=constraints),
            PIMShardEstimator(topology, hardware, constraints, embedding_mode),
        ],
    )
    return EmbeddingShardingPlanner(
        topology=topology,
        batch_size=batch_size,
        enumerator=enumerator,
        constraints=constraints,
        stats=[
            EmbeddingStats(),
            PIMStats(hardware, out_path, embedding_mode, print_table=print_table),
        ],
    )
