"""Training across processes and devices with torchrun (torch.distributed). See docs/distributed.md.

    torchrun --nproc_per_node=P -m sim_models.cli train --config tiny --data D --out R [--parallel data|module]

Both are strategies (sim_models/strategy.py) the one ``Trainer`` loop calls: ``DataParallelStrategy`` and
``ModuleParallelStrategy``; ``DataParallelTrainer`` / ``ModuleParallelTrainer`` are the Trainer with one.

* data parallel (``data_parallel.DataParallelTrainer``): every process holds the model, each
  training unit is wrapped in DistributedDataParallel, a DistributedSampler splits the examples,
  train.batch_size is the global batch, negatives are sampled within each process's batch.
* module parallel (``module_parallel.ModuleParallelTrainer``): each process trains a contiguous
  group of modules and sends its last module's detached output forward; no gradient flows back.

Backend: NCCL on GPUs (one per process, cuda:LOCAL_RANK), gloo on CPU (``env.init_distributed``).
Only rank 0 logs and writes checkpoints.
"""
from __future__ import annotations

from .env import DistInfo, current, env_world_size, init_distributed, is_main_process, shutdown

__all__ = ["DistInfo", "current", "env_world_size", "init_distributed", "is_main_process", "shutdown",
           "make_trainer", "PARALLEL_KINDS"]

PARALLEL_KINDS = ("data", "module")


def make_trainer(cfg, dataset, run_dir, progress: bool = True, parallel: str = "data", backend: str | None = None,
                 tensorboard: bool = True, val_dataset=None):
    """The Trainer for this process: the plain single-process ``Trainer`` unless torchrun started more
    than one process (WORLD_SIZE > 1); then join the process group and return a DataParallelTrainer
    (parallel="data") or a ModuleParallelTrainer (parallel="module"). val_dataset: see Trainer."""
    from ..trainer import Trainer
    if parallel not in PARALLEL_KINDS:
        raise ValueError(f"parallel must be one of {PARALLEL_KINDS}, got {parallel!r}")
    if env_world_size() == 1:
        return Trainer(cfg, dataset, run_dir, progress=progress, tensorboard=tensorboard, val_dataset=val_dataset)
    info = init_distributed(backend)
    if parallel == "data":
        from .data_parallel import DataParallelTrainer
        return DataParallelTrainer(cfg, dataset, run_dir, progress=progress, tensorboard=tensorboard, info=info,
                                   val_dataset=val_dataset)
    from .module_parallel import ModuleParallelTrainer
    return ModuleParallelTrainer(cfg, dataset, run_dir, progress=progress, tensorboard=tensorboard, info=info,
                                 val_dataset=val_dataset)
