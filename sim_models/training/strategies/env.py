"""The process group: read torchrun's environment, pick the backend and the device, tear down.

torchrun (``torch.distributed.run``) starts one process per device and sets, in each, RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. ``init_distributed`` reads them (the
``env://`` rendezvous) and chooses

* backend: NCCL when CUDA is available (one GPU per process: cuda:LOCAL_RANK), else gloo (CPU);
  an explicit ``backend`` argument wins ("gloo" forces CPU even on a GPU machine);
* device:  cuda:LOCAL_RANK for NCCL, cpu for gloo.

Nothing here touches CUDA at import time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "env_world_size", "init_distributed", "current", "is_main_process", "shutdown"]

BACKENDS = ("nccl", "gloo")


@dataclass(frozen=True)
class DistInfo:
    """rank / world_size: this process among all; local_rank: among this node's; device: where it computes."""
    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """WORLD_SIZE as set by torchrun (1 when not started by torchrun)."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"environment variable WORLD_SIZE must be an int, got {raw!r}") from None
    if n < 1:
        raise ValueError(f"environment variable WORLD_SIZE must be >= 1, got {n}")
    return n


def _env_int(name: str) -> int:
    if name not in os.environ:
        raise RuntimeError(f"distributed training needs the environment variable {name} (start the command with "
                           f"torchrun, e.g. `torchrun --nproc_per_node=2 -m sim_models.cli train ...`)")
    return int(os.environ[name])


_INFO: DistInfo | None = None


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by the environment (idempotent) and return this process's DistInfo.

    backend: None (NCCL if CUDA is available, else gloo) | "nccl" | "gloo".
    timeout_s: how long a collective may wait for the other processes before failing (no silent hang).
    """
    global _INFO
    if _INFO is not None and dist.is_initialized():
        return _INFO
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be None or one of {BACKENDS}, got {backend!r}")
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), int(os.environ.get("LOCAL_RANK", "0"))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise RuntimeError("backend='nccl' needs CUDA; use backend='gloo' on CPU")
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local} but this node has {torch.cuda.device_count()} GPU(s): start at "
                               f"most one process per GPU (--nproc_per_node)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
    _INFO = DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, backend=backend,
                     device=device)
    return _INFO


def current() -> DistInfo:
    """This process's DistInfo; a single process (rank 0 of 1, CPU) when no group was initialised."""
    if _INFO is not None and dist.is_initialized():
        return _INFO
    return DistInfo(rank=0, world_size=1, local_rank=0, backend="none", device=torch.device("cpu"))


def is_main_process() -> bool:
    """True on rank 0, and in a plain single-process run."""
    return current().is_main


def shutdown():
    """Leave the process group (a no-op when none was initialised)."""
    global _INFO
    if dist.is_initialized():
        dist.destroy_process_group()
    _INFO = None
