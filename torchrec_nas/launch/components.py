"""TorchX components of torchrec_nas: the supernet, search and final-training stages as
distributed jobs, built on ``torchx.components.dist.ddp`` (``torchrun`` on every node, one
process per GPU or per CPU slot, running :mod:`torchrec_nas.launch.main`).

The same component runs on a laptop and on a cluster; only the scheduler changes::

    torchx run -s local_cwd torchrec_nas/launch/components.py:supernet \\
        --nproc_per_node 2 --config configs/distributed-demo.yaml --out runs/dist
    torchx run -s kubernetes -cfg queue=default,namespace=default \\
        torchrec_nas/launch/components.py:supernet --image <your image> \\
        --nnodes 2 --nproc_per_node 8 --gpu 8 --config configs/nasrec-criteo.yaml \\
        --out s3://bucket/runs/criteo
    torchx run -s slurm -cfg partition=gpu,time=12:00:00 \\
        torchrec_nas/launch/components.py:supernet --nnodes 4 --nproc_per_node 8 --gpu 8 \\
        --config configs/nasrec-criteo.yaml --out /shared/runs/criteo

``--out`` must be visible to every rank (a shared file system, or an fsspec URL for
checkpoints through ``distributed.checkpoint_dir``). A job restarted by the scheduler
(``--max_retries``) resumes from its last sharded checkpoint.
"""

# TorchX reads the annotations of a component to build its command line; it understands the
# typing module's Optional/Dict/List, so those stay here.
# ruff: noqa: UP006, UP007, UP035, UP045

from typing import Dict, List, Optional

import torchx
import torchx.specs as specs
from torchx.components import dist

MODULE = "torchrec_nas.launch.main"


def _stage(
    stage: str,
    config: str,
    out: str,
    nnodes: int,
    nproc_per_node: int,
    image: str,
    cpu: int,
    gpu: int,
    memMB: int,
    h: Optional[str],
    env: Optional[Dict[str, str]],
    max_retries: int,
    rdzv_port: int,
    mounts: Optional[List[str]],
    extra: List[str],
) -> specs.AppDef:
    args = [stage, "--config", config, "--out", out, *extra]
    app = dist.ddp(
        *args,
        m=MODULE,
        image=image,
        name=f"torchrec-nas-{stage}",
        h=h,
        cpu=cpu,
        gpu=gpu,
        memMB=memMB,
        j=f"{nnodes}x{nproc_per_node}",
        env={"OMP_NUM_THREADS": "1", **(env or {})},
        max_retries=max_retries,
        rdzv_port=rdzv_port,
        mounts=mounts,
    )
    return app


def supernet(
    config: str = "configs/distributed-demo.yaml",
    out: str = "runs/distributed",
    nnodes: int = 1,
    nproc_per_node: int = 2,
    image: str = torchx.IMAGE,
    cpu: int = 2,
    gpu: int = 0,
    memMB: int = 8192,
    h: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    max_retries: int = 0,
    rdzv_port: int = 29500,
    mounts: Optional[List[str]] = None,
    quiet: bool = False,
) -> specs.AppDef:
    """Trains the NASRec supernet with its embedding tables sharded by TorchRec.

    Args:
        config: YAML config (its ``data.batch_size`` is the global batch)
        out: output directory shared by all ranks
        nnodes: number of hosts
        nproc_per_node: processes per host (one per GPU, or CPU processes)
        image: container image (local_cwd: ignored, runs in the current directory)
        cpu: CPUs per host
        gpu: GPUs per host
        memMB: memory per host in MB
        h: a registered named resource (instead of cpu/gpu/memMB)
        env: extra environment variables
        max_retries: restarts allowed by the scheduler (the job resumes from its checkpoint)
        rdzv_port: rendezvous port on the first host (multi-host jobs)
        mounts: mounts for container schedulers (type=bind,src=...,dst=...)
        quiet: no progress bars
    """
    extra = ["--quiet"] if quiet else []
    return _stage(
        "supernet", config, out, nnodes, nproc_per_node, image, cpu, gpu, memMB, h, env,
        max_retries, rdzv_port, mounts, extra,
    )  # fmt: skip


def search(
    config: str = "configs/distributed-demo.yaml",
    out: str = "runs/distributed",
    nnodes: int = 1,
    nproc_per_node: int = 2,
    image: str = torchx.IMAGE,
    cpu: int = 2,
    gpu: int = 0,
    memMB: int = 8192,
    h: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    max_retries: int = 0,
    rdzv_port: int = 29500,
    mounts: Optional[List[str]] = None,
    quiet: bool = False,
) -> specs.AppDef:
    """Searches architectures with the trained supernet, candidates scored on all ranks' data.

    Args:
        config: YAML config
        out: output directory with the supernet (writes history.jsonl, best_arch.json)
        nnodes: number of hosts
        nproc_per_node: processes per host
        image: container image
        cpu: CPUs per host
        gpu: GPUs per host
        memMB: memory per host in MB
        h: a registered named resource
        env: extra environment variables
        max_retries: restarts allowed (the search resumes from history.jsonl)
        rdzv_port: rendezvous port on the first host
        mounts: mounts for container schedulers
        quiet: no progress bars
    """
    extra = ["--quiet"] if quiet else []
    return _stage(
        "search", config, out, nnodes, nproc_per_node, image, cpu, gpu, memMB, h, env,
        max_retries, rdzv_port, mounts, extra,
    )  # fmt: skip


def train(
    config: str = "configs/distributed-demo.yaml",
    out: str = "runs/distributed",
    arch: Optional[str] = None,
    baselines: bool = True,
    nnodes: int = 1,
    nproc_per_node: int = 2,
    image: str = torchx.IMAGE,
    cpu: int = 2,
    gpu: int = 0,
    memMB: int = 8192,
    h: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    max_retries: int = 0,
    rdzv_port: int = 29500,
    mounts: Optional[List[str]] = None,
    quiet: bool = False,
) -> specs.AppDef:
    """Trains the found architecture from scratch beside the DLRM/DCN baselines, sharded.

    Args:
        config: YAML config
        out: output directory (reads best_arch.json unless arch is given)
        arch: architecture JSON file
        baselines: also train the configured baselines
        nnodes: number of hosts
        nproc_per_node: processes per host
        image: container image
        cpu: CPUs per host
        gpu: GPUs per host
        memMB: memory per host in MB
        h: a registered named resource
        env: extra environment variables
        max_retries: restarts allowed (training resumes from its checkpoint)
        rdzv_port: rendezvous port on the first host
        mounts: mounts for container schedulers
        quiet: no progress bars
    """
    extra = ["--quiet"] if quiet else []
    if arch:
        extra += ["--arch", arch]
    if not baselines:
        extra.append("--no-baselines")
    return _stage(
        "train", config, out, nnodes, nproc_per_node, image, cpu, gpu, memMB, h, env,
        max_retries, rdzv_port, mounts, extra,
    )  # fmt: skip
