"""Starting a training run: the one launcher every command uses, and the Trainer for this process.

    run = prepare_run(cfg, data, run_dir, ...)   # a Launch: .trainer, .resumed
    summary = run.fit()

opens the data (a `sim data` folder: its train split, and its test split as the validation set; any folder
of audio files: those files, no validation), builds the Trainer for this process (``make_trainer``),
resumes from RUN_DIR/checkpoint.pt when asked (``resume=None``: when there is one), trains, and records the
data path in RUN_DIR/run_info.json once the run folder holds a checkpoint (a run refused before its first
step leaves nothing behind; a failed run can still be evaluated). `sim train`, `sim demo`, `sim reproduce`
and `sim tune-beta` all start their runs here.

``make_trainer`` returns the plain single-process ``Trainer`` unless torchrun started more than one process
(WORLD_SIZE > 1); then it joins the process group and returns the Trainer with the strategy named by
``parallel`` from ``PARALLEL`` (docs/distributed.md)::

    torchrun --nproc_per_node=P -m sim_models.cli train --config tiny --data D --out R [--parallel data|module]

* "data" (``DataParallelTrainer``): every process holds the model, each training unit is wrapped in
  DistributedDataParallel, a DistributedSampler splits the examples, train.batch_size is the global batch.
* "module" (``ModuleParallelTrainer``): each process trains a contiguous group of stages and sends its last
  stage's detached output forward; no gradient flows back.

Backend: NCCL on GPUs (one per process, cuda:LOCAL_RANK), gloo on CPU (``strategies.env.init_distributed``).
Only rank 0 logs and writes checkpoints. A new way of running is one strategy file in strategies/ plus its
entry in ``PARALLEL`` (the CLI's ``--parallel`` choices).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from sim_models.data.datasets import open_dataset
from sim_models.rundir.checkpoint import CHECKPOINT_NAME
from sim_models.rundir.run_info import record_data_path
from sim_models.training.strategies.data_parallel import DataParallelStrategy
from sim_models.training.strategies.env import DistInfo, current, env_world_size, init_distributed, is_main_process
from sim_models.training.strategies.module_parallel import ModuleParallelStrategy
from sim_models.training.trainer import Trainer

__all__ = ["Launch", "prepare_run", "make_trainer", "PARALLEL", "DataParallelTrainer", "ModuleParallelTrainer"]


class DataParallelTrainer(Trainer):
    """DataParallelTrainer(cfg, dataset, run_dir, progress=True, tensorboard=True, info=None,
    find_unused_parameters=False) -- the ``Trainer`` with a ``DataParallelStrategy`` over the processes of an
    initialised process group.

    info: a DistInfo (default: ``env.current()``; call ``init_distributed()`` first).
    Every rank must hold the same dataset (same length and order); only rank 0 writes to run_dir.
    Checkpoints are the single-process format plus "rank_generators" (one generator state per rank),
    so a run resumes exactly with the same number of processes.
    """

    def __init__(self, cfg, dataset, run_dir, progress: bool = True, tensorboard: bool = True,
                 info: DistInfo | None = None, find_unused_parameters: bool = False, val_dataset=None):
        strategy = DataParallelStrategy(info or current(), find_unused_parameters)
        strategy.check(cfg, dataset)
        self.info = strategy.info
        super().__init__(cfg, dataset, run_dir, progress=progress and self.info.is_main,
                         tensorboard=tensorboard and self.info.is_main, val_dataset=val_dataset, strategy=strategy)


class ModuleParallelTrainer(Trainer):
    """ModuleParallelTrainer(cfg, dataset, run_dir, progress=True, tensorboard=True, info=None, groups=None):
    the ``Trainer`` with a ``ModuleParallelStrategy``.

    info:   a DistInfo (default ``env.current()``; call ``init_distributed()`` first), world_size >= 2.
    groups: training-unit indices per rank, contiguous and in order (default ``split_units``).
    Only rank 0 reads audio, logs (the rows of every module, gathered) and writes checkpoints.
    """

    def __init__(self, cfg, dataset, run_dir, progress: bool = True, tensorboard: bool = True,
                 info: DistInfo | None = None, groups=None, val_dataset=None):
        strategy = ModuleParallelStrategy(info or current(), groups)
        strategy.check(cfg)
        self.info = strategy.info
        super().__init__(cfg, dataset, run_dir, progress=progress and self.info.is_main,
                         tensorboard=tensorboard and self.info.is_main, val_dataset=val_dataset, strategy=strategy)


PARALLEL = {"data": DataParallelTrainer, "module": ModuleParallelTrainer}  # --parallel under torchrun


def make_trainer(cfg, dataset, run_dir, progress: bool = True, parallel: str = "data", backend: str | None = None,
                 tensorboard: bool = True, val_dataset=None) -> Trainer:
    """The Trainer for this process: the plain single-process ``Trainer`` unless torchrun started more
    than one process (WORLD_SIZE > 1); then join the process group and return ``PARALLEL[parallel]``.
    val_dataset: see Trainer. ValueError for a ``parallel`` not in ``PARALLEL``."""
    if parallel not in PARALLEL:
        raise ValueError(f"parallel must be one of {tuple(PARALLEL)}, got {parallel!r}")
    if env_world_size() == 1:
        return Trainer(cfg, dataset, run_dir, progress=progress, tensorboard=tensorboard, val_dataset=val_dataset)
    info = init_distributed(backend)
    return PARALLEL[parallel](cfg, dataset, run_dir, progress=progress, tensorboard=tensorboard, info=info,
                              val_dataset=val_dataset)


@dataclass
class Launch:
    """A run ready to train (``prepare_run``): its trainer, whether it resumes, and ``fit()``.

    fit() -> ``Trainer.fit``'s summary dict; the data path is recorded by ``recorded_by`` (rank 0 only) once the
    run folder holds a checkpoint, also when training fails (a failure to record it only warns)."""
    trainer: Trainer
    resumed: bool
    data: Path
    recorded_by: str

    def fit(self) -> dict:
        try:
            return self.trainer.fit(resume=self.resumed)
        finally:
            if is_main_process() and (self.trainer.dir / CHECKPOINT_NAME).exists():
                _record_data(self.trainer.dir, self.data, self.recorded_by)


def prepare_run(cfg, data, run_dir, *, resume: bool | None = None, recorded_by: str = "sim train",
                progress: bool = True, parallel: str = "data", tensorboard: bool = True,
                validate: bool = True) -> Launch:
    """The run of ``cfg`` on ``data`` (a `sim data` folder or a folder of audio files) in ``run_dir``, ready to fit.

    resume: True = continue from RUN_DIR/checkpoint.pt (``fit`` raises FileNotFoundError without one), False =
    start anew, None = resume when the checkpoint exists. validate: the test split of a `sim data` folder is the
    validation set (epoch-end validation loss; ``train.validate``). The commands print their line between this
    and ``Launch.fit()``."""
    train = open_dataset(data, "train", cfg.data.sample_rate, cfg.data.length)
    val = (open_dataset(data, "test", cfg.data.sample_rate, cfg.data.length)
           if validate and hasattr(train, "syllables") else None)
    resumed = (Path(run_dir) / CHECKPOINT_NAME).is_file() if resume is None else resume
    trainer = make_trainer(cfg, train, run_dir, progress=progress, parallel=parallel, tensorboard=tensorboard,
                           val_dataset=val)
    return Launch(trainer, resumed, Path(data), recorded_by)


def _record_data(run_dir: Path, data, by: str) -> None:
    """RUN_DIR/run_info.json gets the data path (sim_models/rundir/run_info.py); a failure to write it only warns:
    training then reports its own, clearer error about the run folder."""
    try:
        record_data_path(run_dir, data, by)
    except OSError as e:
        print(f"warning: could not record the data path in {run_dir}: {e}", file=sys.stderr)
