"""Small batches and tables for tests that do not need a data source."""

from __future__ import annotations

from pathlib import Path

import torch
from torchrec.datasets.utils import Batch
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from torchrec_nas.architecture import Architecture

NAMES = [f"c{i}" for i in range(5)]


def tiny_tables(num_features: int = 5, rows: int = 50, dim: int = 16) -> list[EmbeddingBagConfig]:
    return [
        EmbeddingBagConfig(
            name=f"t_c{i}", embedding_dim=dim, num_embeddings=rows, feature_names=[f"c{i}"]
        )
        for i in range(num_features)
    ]


def random_batch(
    batch_size: int = 8, num_dense: int = 4, num_features: int = 5, rows: int = 50, seed: int = 0
) -> Batch:
    g = torch.Generator().manual_seed(seed)
    keys = [f"c{i}" for i in range(num_features)]
    ids = torch.randint(0, rows, (batch_size * num_features,), generator=g)
    kjt = KeyedJaggedTensor.from_lengths_sync(
        keys=keys, values=ids, lengths=torch.ones(batch_size * num_features, dtype=torch.int32)
    )
    labels = torch.randint(0, 2, (batch_size,), generator=g).float()
    return Batch(torch.randn(batch_size, num_dense, generator=g), kjt, labels)


def train_tiny_run(root: Path, config: str, arch: Architecture) -> tuple[Path, Path]:
    """Writes ``config`` and ``arch`` under ``root`` and runs ``train --arch`` into
    ``root/run``; returns the config file and the run directory."""
    from torchrec_nas.cli import main

    (root / "tiny.yaml").write_text(config)
    (root / "arch.json").write_text(arch.to_json())
    argv = ["train", "--config", str(root / "tiny.yaml"), "--out", str(root / "run")]
    assert main([*argv, "--arch", str(root / "arch.json"), "--quiet"]) == 0
    return root / "tiny.yaml", root / "run"


#: A tiny embedding-size search (both stages in seconds) on 5 synthetic features.
EMBEDDING_SEARCH_TINY = """
seed: 7
data:
  batch_size: 64
  synthetic: {rows: 4000, num_dense: 4, num_sparse: 5, cardinalities: [4, 6, 300, 300, 300]}
space: {preset: nasrec-small, num_blocks: 3, dense_dims: [16, 32], sparse_tokens: [16]}
train:
  baselines: {models: [dlrm], dense_arch_layer_sizes: [32], over_arch_layer_sizes: [32]}
embedding_search:
  steps: 12
  eval_batches: 1
  progress: false
  widths: [4, 8, 16, 32]
  budget: 0.8
  val_batches: 2
  policy_steps: 6
  policy_samples: 4
  evolution: {population: 4, tournament: 2, children: 2, generations: 2}
  seeds: [1, 2]
"""


def config_error_line(root: Path, text: str) -> tuple[Path, str]:
    """Writes ``text`` as ``root/bad.yaml``, loads it and returns the path and the one-line
    :class:`ConfigError` it must raise."""
    import pytest

    from torchrec_nas.config import Config
    from torchrec_nas.config_utils import ConfigError

    path = root / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        Config.load(path)
    line = str(e.value)
    assert "\n" not in line
    return path, line
