"""PIM estimator and stats inside TorchRec's real sharding planner, on the CPU."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
from torchrec.distributed.planner.enumerators import EmbeddingEnumerator
from torchrec.distributed.planner.shard_estimators import (
    EmbeddingPerfEstimator,
    EmbeddingStorageEstimator,
)
from torchrec.distributed.planner.stats import EmbeddingStats
from torchrec.distributed.planner.types import Perf, Shard, ShardingOption
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from torchrec_nas.hardware.pim import PIMCostModel, PIMHardware
from torchrec_nas.hardware.planner import (
    PIMShardEstimator,
    PIMStats,
    pim_perf,
    pim_sharding_planner,
    shard_pim_cost,
)

BATCH_SIZE = 64


def _ebc() -> EmbeddingBagCollection:
    tables = [
        EmbeddingBagConfig(
            name=f"table_{i}",
            embedding_dim=dim,
            num_embeddings=rows,
            feature_names=[f"feature_{i}"],
        )
        for i, (rows, dim) in enumerate([(1000, 16), (50_000, 32), (4096, 16), (200, 64)])
    ]
    return EmbeddingBagCollection(tables=tables, device=torch.device("meta"))


@pytest.fixture
def topology() -> Topology:
    return Topology(world_size=2, compute_device="cpu")


def _enumerate(topology: Topology, estimators: list) -> list:  # type: ignore[type-arg]
    enumerator = EmbeddingEnumerator(topology=topology, batch_size=BATCH_SIZE, estimator=estimators)
    return enumerator.enumerate(_ebc(), [EmbeddingBagCollectionSharder()])


def test_pim_estimator_changes_perf_and_keeps_comms(topology: Topology) -> None:
    options = _enumerate(
        topology, [EmbeddingPerfEstimator(topology), EmbeddingStorageEstimator(topology)]
    )
    assert options
    before = copy.deepcopy(options)
    PIMShardEstimator(topology, "isaac").estimate(options)
    changed = 0
    for old_option, new_option in zip(before, options):
        for old, new in zip(old_option.shards, new_option.shards):
            assert new.perf is not None and old.perf is not None
            assert new.perf.fwd_compute > 0
            assert new.perf.fwd_comms == old.perf.fwd_comms
            assert new.perf.bwd_comms == old.perf.bwd_comms
            changed += new.perf.fwd_compute != old.perf.fwd_compute
    assert changed == sum(len(option.shards) for option in options)


def _option(sharding_type: str, shard_rows: list[int]) -> ShardingOption:
    ebc = _ebc()
    shards, offset = [], 0
    for rows in shard_rows:
        shards.append(Shard(size=[rows, 32], offset=[offset, 0]))
        offset += rows
    return ShardingOption(
        name="table_1",
        tensor=torch.empty(50_000, 32, device="meta"),
        module=("ebc", ebc),
        input_lengths=[4.0],
        batch_size=BATCH_SIZE,
        sharding_type=sharding_type,
        partition_by="uniform",
        compute_kernel="fused",
        shards=shards,
    )


def test_shard_cost_rules() -> None:
    model = PIMCostModel(PIMHardware.preset("mnsim"))
    table_wise = _option("table_wise", [50_000])
    row_wise = _option("row_wise", [25_000, 25_000])
    data_parallel = _option("data_parallel", [50_000, 50_000])
    whole = shard_pim_cost(model, table_wise, table_wise.shards[0], world_size=2)
    assert whole.samples == 2 * BATCH_SIZE  # a sharded table serves the global batch
    assert whole.lookups_per_sample == 4.0
    assert whole.energy_pj > 0 and whole.latency_ns > 0
    half = shard_pim_cost(model, row_wise, row_wise.shards[0], world_size=2)
    assert half.lookups_per_sample == 2.0  # half the rows receive half the lookups
    assert half.energy_pj < whole.energy_pj
    replica = shard_pim_cost(model, data_parallel, data_parallel.shards[0], world_size=2)
    assert replica.samples == BATCH_SIZE  # a replica serves its rank's batch only


def test_pim_perf_mapping() -> None:
    alone = pim_perf(2.0, None)
    assert (alone.fwd_compute, alone.bwd_compute, alone.fwd_comms) == (2.0, 0.0, 0.0)
    torchrec = Perf(fwd_compute=1.0, fwd_comms=0.5, bwd_compute=2.0, bwd_comms=0.7)
    mapped = pim_perf(3.0, torchrec)
    assert mapped.fwd_compute == 3.0 and mapped.bwd_compute == 6.0
    assert (mapped.fwd_comms, mapped.bwd_comms) == (0.5, 0.7)


@pytest.mark.parametrize("embedding_mode", ["near_memory", "in_crossbar"])
def test_real_planner_with_pim_stats(
    topology: Topology, tmp_path: Path, embedding_mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pim_stats = PIMStats("isaac", out_path=tmp_path, embedding_mode=embedding_mode)  # type: ignore[arg-type]
    enumerator = EmbeddingEnumerator(
        topology=topology,
        batch_size=BATCH_SIZE,
        estimator=[
            EmbeddingPerfEstimator(topology),
            EmbeddingStorageEstimator(topology),
            PIMShardEstimator(topology, "isaac", embedding_mode=embedding_mode),  # type: ignore[arg-type]
        ],
    )
    planner = EmbeddingShardingPlanner(
        topology=topology,
        batch_size=BATCH_SIZE,
        enumerator=enumerator,
        stats=[EmbeddingStats(), pim_stats],
    )
    plan = planner.plan(_ebc(), sharders=[EmbeddingBagCollectionSharder()])
    assert plan.plan

    assert [rank.rank for rank in pim_stats.ranks] == [0, 1]
    placed = [rank for rank in pim_stats.ranks if rank.shards > 0]
    assert placed and all(rank.energy_pj > 0 and rank.latency_ns > 0 for rank in placed)
    if embedding_mode == "in_crossbar":
        assert sum(rank.crossbars for rank in pim_stats.ranks) > 0
    tables = {table for rank in pim_stats.ranks for table in rank.tables}
    assert tables == {"table_0", "table_1", "table_2", "table_3"}

    table_lines = [line for line in pim_stats.table.splitlines() if line.startswith("| ")]
    assert len(table_lines) == 1 + 2 + 1  # header, one row per rank, total
    assert "PIM cost of the sharding plan" in capsys.readouterr().out
    saved = json.loads((tmp_path / "pim_stats.json").read_text())
    assert len(saved["ranks"]) == 2 and saved["hardware"] == "isaac"
    assert (tmp_path / "pim_stats.md").read_text().startswith("PIM cost")


def test_pim_sharding_planner_helper(topology: Topology) -> None:
    planner = pim_sharding_planner(topology, "neurosim", batch_size=BATCH_SIZE, print_table=False)
    plan = planner.plan(_ebc(), sharders=[EmbeddingBagCollectionSharder()])
    assert plan.plan
