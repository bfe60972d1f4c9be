"""How the one ``Trainer`` loop runs on this process: strategy objects, in the manner of Lightning's strategies.

The Trainer (sim_models/training/trainer.py) owns the loop, the model, the optimisers and the position; a
strategy decides what differs between a single process, data parallel and module parallel runs (one file each
in this folder). A strategy reads the trainer it is given and never writes its attributes: what it decides
(the device, the generator) it returns.

    setup(model, units, cfg) -> Placement(device, generator)   model placement and wrappers; returns the device
                                     it owns and the generator of the noise / negatives / crops seeded there
    batches(trainer, unit, epoch)    index tensors of this process's batches in an epoch
    collate(trainer, idx, dataset)   the batch: audio (B, L) [, labels (B,)] on the device
    step(trainer, batch, active, opt_ids) -> StageResults (one optimiser step), built from three parts:
        losses(trainer, batch, active, generator)   the forward of this process's stages (also validation's),
                                                    called under ``trainer.precision.autocast()`` (train.autocast)
        step_optimizers(trainer, opt_ids)           the optimisers this process steps
        end_batch(generator)                        what finishes a batch (module parallel: the pipeline's sends)
    reduce_results(results)          the results to log (averaged over processes for data parallel)
    gather_rows(rows)                the log rows this process writes (every rank's, on rank 0)
    validates()                      whether this process computes validation losses
    val_losses(trainer, batch, active, generator) -> StageResults (``losses`` and ``end_batch``, no gradient)
    state_dict(trainer) / loaded_state(trainer, state)   the checkpoint in the single-process format
    writes_files / barrier() / first_bad_step(watch)     which rank writes; waiting; agreeing on NaN/inf

``SingleProcessStrategy`` is the plain run on ``train.device``; a new way of running is one subclass in a file
of its own plus its line in ``STRATEGIES`` (sim_models/training/launch.py), which `sim train --parallel` reads.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from sim_models.config import DEVICES
from sim_models.training.optim_step import optimizer_step

__all__ = ["SingleProcessStrategy", "Placement", "resolve_device", "split_batch"]


class Placement(NamedTuple):
    """What ``Strategy.setup`` returns: the device this process trains on and the generator seeded there."""
    device: torch.device
    generator: torch.Generator


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a torch.device: "auto" -> cuda when available, else cpu; "cpu"; "cuda" (refused,
    naming train.device, when CUDA is not available)."""
    if name not in DEVICES:
        raise ValueError(f"train.device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device='cuda', but this torch sees no CUDA device (torch.cuda.is_available() is "
                         "False); use train.device=cpu or train.device=auto")
    return torch.device(name)


def split_batch(batch) -> tuple:
    """(audio (B, L), labels (B,) or None) of a collated batch: audio alone, or an (audio, labels) pair."""
    return batch if isinstance(batch, tuple) else (batch, None)


class SingleProcessStrategy:
    """One process on ``cfg.train.device``: the model, the batches and the generators of the noise, negatives
    and crops live there (the order of examples is drawn on the CPU, the same on any device)."""

    writes_files = True  # config, logs, checkpoints, failure.json

    def device_for(self, cfg) -> torch.device:
        return resolve_device(cfg.train.device)

    def setup(self, model, units: list, cfg) -> Placement:
        """Called once by Trainer.__init__: ``model`` (built on the CPU from the seed) moves to the device in place
        (the optimisers keep their parameters). Returns the device and the generator seeded there.
        units: the model's training units (stage index lists); cfg: the run's Config."""
        device = self.device_for(cfg)
        model.to(device)
        return Placement(device, torch.Generator(device=device).manual_seed(self.generator_seed(cfg)))

    def generator_seed(self, cfg) -> int:
        """The seed of this process's generator (noise, negatives, crops): ``train.seed``."""
        return cfg.train.seed

    # -- data ----------------------------------------------------------------------------------
    def batches(self, trainer, unit: int, epoch: int) -> list:
        """randperm of the examples with a generator seeded (seed, unit, epoch); the last partial batch dropped."""
        n, bs = len(trainer.dataset), trainer.cfg.train.batch_size
        g = torch.Generator().manual_seed(trainer.cfg.train.seed * 1_000_003 + unit * 10_007 + epoch)
        perm = torch.randperm(n, generator=g)
        if n < bs:
            return [perm]
        return [perm[i:i + bs] for i in range(0, n - bs + 1, bs)]

    def collate(self, trainer, idx, dataset):
        """The batch of examples ``idx``: audio (B, L), or (audio (B, L), labels (B,)) for labelled items."""
        items = [dataset[int(i)] for i in idx]
        if isinstance(items[0], (tuple, list)):
            batch = torch.stack([a for a, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items])
            return tuple(t.to(trainer.device) for t in batch)
        return torch.stack(items).to(trainer.device)

    # -- one step ------------------------------------------------------------------------------
    def step(self, trainer, batch, active: list, opt_ids: list) -> list:
        """One optimiser step: the forward of this process's stages (``losses``), the backward and step of the
        optimisers it holds (``step_optimizers``), then ``end_batch``. Returns this process's StageResults."""
        with trainer.precision.autocast():  # train.autocast: the forward and losses only (mixed_precision.py)
            results = self.losses(trainer, batch, active, trainer.generator)
        # the backward and the optimiser steps outside autocast; module m's loss only reaches module m
        optimizer_step(self.step_optimizers(trainer, opt_ids), results, scaler=trainer.precision.scaler)
        self.end_batch(trainer.generator)
        return results

    def losses(self, trainer, batch, active: list, generator) -> list:
        """StageResults of the stages in ``active`` that this process computes on ``batch`` (with a gradient
        unless called under no_grad), their draws from ``generator``. The forward both training and validation run."""
        audio, labels = split_batch(batch)
        return trainer.model.losses_for(audio, active, generator, labels)

    def step_optimizers(self, trainer, opt_ids: list) -> list:
        """The optimisers a step on the training units ``opt_ids`` zeroes and steps on this process."""
        return [trainer.optimizers[i] for i in opt_ids]

    def end_batch(self, generator) -> None:
        """Called after each batch's losses (and step): nothing to finish in one process."""

    def reduce_results(self, results: list) -> list:
        return results

    def gather_rows(self, rows: list) -> list:
        return rows

    # -- validation ----------------------------------------------------------------------------
    def validates(self) -> bool:
        return True

    @torch.no_grad()
    def val_losses(self, trainer, batch, active, generator) -> list:
        """StageResults of one validation batch: the training forward (``losses``, under the same autocast as
        training's) without a gradient or a step."""
        with trainer.precision.autocast():
            results = self.losses(trainer, batch, active, generator)
        self.end_batch(generator)
        return results

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self, trainer) -> dict:
        return trainer.process_state_dict()

    def loaded_state(self, trainer, state: dict) -> dict:
        """The state this process loads from a checkpoint (the single-process format)."""
        return state

    # -- processes -----------------------------------------------------------------------------
    def barrier(self) -> None:
        """Wait for the other processes (after a checkpoint write); nothing to wait for in one process."""

    def first_bad_step(self, watch):
        """The first step with a NaN / inf loss (agreed over the processes when distributed), or None."""
        return watch.first_bad_step()
