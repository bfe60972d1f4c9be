"""Data parallel training: every process holds the whole model and trains on its share of each batch.

``DataParallelTrainer`` is the greedy ``Trainer`` with four changes:

* each training unit (one module and its loss; the whole model when end to end) is wrapped in its
  own ``DistributedDataParallel``, so its gradients are averaged over the processes during the
  backward pass and every process takes the same optimiser step;
* the examples of an epoch are split by ``torch.utils.data.DistributedSampler``;
* ``train.batch_size`` is the *global* batch: each of the P processes takes batch_size / P examples
  (batch_size must be divisible by P), so a config means the same optimisation on any P;
* only rank 0 writes config.yaml, the logs (losses and metrics averaged over the processes) and
  the checkpoints.

Negatives are sampled within each process's batch. Smooth-InfoNCE contrasts a positive with
negatives drawn from the targets at hand; a process only has its own batch_size / P examples, so its
negatives come from those (GIM's sampler: from its own (B/P)·T target rows). Gathering the targets of
all processes would change the loss and cost an all-gather per module and step; we do not. So P
processes with a global batch B optimise the average of P losses, each over B/P examples, which is
not the loss of one process on B examples (fewer, and different, negatives per anchor).

What is exactly equivalent (tests/sim_models/test_distributed.py checks it): P processes with global
batch B end with the parameters of one process that, at every step, splits the same global batch
into P parts by stride (part r = examples r, r+P, r+2P, ... of the batch: what DistributedSampler
gives rank r), computes the losses of part r with generator r (seeded ``rank_seed(seed, r)``; the
reparameterisation noise, negatives and crops of rank r), back-propagates loss_r / P for every part,
and then takes one optimiser step.

Order of examples: the sampler permutes with the seed the single-process Trainer uses for the epoch
(seed·1000003 + unit·10007 + epoch), so P = 1 sees the same batches as ``Trainer``.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from ..architectures import GreedyModel, StageResult
from ..optim_step import optimizer_step
from ..trainer import VAL_SEED_OFFSET, Trainer
from .common import RankZeroWrites
from .env import DistInfo, current

__all__ = ["DataParallelTrainer", "UnitModule", "rank_seed"]


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank r's generator (noise, negatives, crops): rank 0 keeps ``seed``, as one process would."""
    return seed + 1_000_000_007 * rank


class UnitModule(nn.Module):
    """One training unit as one nn.Module, the thing DDP wraps: the unit's stages and losses are its
    submodules (shared with the GreedyModel, not copied), so DDP sees exactly that unit's parameters.

    forward(outs: list of ModuleOutput of the stages before this unit (appended to in place),
            audio (B, 1, L), active: stage indices with a loss to compute, generator) -> list of StageResult.
    Draws from ``generator`` in GreedyModel.losses_for's order: stage m's noise, then its loss's draws.
    """

    def __init__(self, model: GreedyModel, unit):
        super().__init__()
        self.unit = list(unit)
        self.stages = nn.ModuleList([model.stages[m] for m in self.unit])
        self.losses = nn.ModuleList([model.losses[str(m)] for m in self.unit if str(m) in model.losses])
        object.__setattr__(self, "_model", model)  # a plain reference, not a submodule

    def forward(self, outs: list, audio: torch.Tensor, active, generator=None, labels=None) -> list:
        return self._model.run_stages(audio, self.unit, generator, active=active, labels=labels, outs=outs)


class DataParallelTrainer(RankZeroWrites, Trainer):
    """DataParallelTrainer(cfg, dataset, run_dir, progress=True, tensorboard=True, info=None,
    find_unused_parameters=False) -- ``Trainer`` over the processes of an initialised process group.

    info: a DistInfo (default: ``env.current()``; call ``init_distributed()`` first).
    Every rank must hold the same dataset (same length and order); only rank 0 writes to run_dir.
    Checkpoints are the single-process format plus "rank_generators" (one generator state per rank),
    so a run resumes exactly with the same number of processes.
    """

    def __init__(self, cfg, dataset, run_dir, progress: bool = True, tensorboard: bool = True,
                 info: DistInfo | None = None, find_unused_parameters: bool = False, val_dataset=None):
        self.info = info or current()
        P = self.info.world_size
        if cfg.train.batch_size % P:
            raise ValueError(f"train.batch_size={cfg.train.batch_size} is the global batch and must be divisible by "
                             f"the number of processes ({P})")
        if cfg.model.objective != "supervised" and len(dataset) < cfg.train.batch_size:
            raise ValueError(f"data parallel training needs at least train.batch_size={cfg.train.batch_size} "
                             f"examples, got {len(dataset)}")
        if P > 1 and not dist.is_initialized():
            raise RuntimeError("DataParallelTrainer: call sim_models.distributed.init_distributed() first")
        super().__init__(cfg, dataset, run_dir, progress=progress and self.info.is_main,
                         tensorboard=tensorboard and self.info.is_main, val_dataset=val_dataset)
        self.local_batch = cfg.train.batch_size // P
        self.device = self.info.device
        self.model.to(self.device)  # in place: the optimisers keep their parameters
        self.generator = torch.Generator(device=self.device).manual_seed(rank_seed(cfg.train.seed, self.info.rank))
        self.unit_modules = [UnitModule(self.model, u) for u in self.units]
        if P > 1:
            # device_ids=None: the unit already sits on its device and the batch is moved in _collate
            # (DDP would otherwise copy the inputs, and the list of outputs the unit appends to with them).
            self.ddp = [DistributedDataParallel(um, device_ids=None, broadcast_buffers=False,
                                                find_unused_parameters=find_unused_parameters)
                        for um in self.unit_modules]
        else:
            self.ddp = list(self.unit_modules)

    # -- data: DistributedSampler, local batches ----------------------------------------------
    def _batches(self, unit: int, epoch: int) -> list:
        sampler = DistributedSampler(self.dataset, num_replicas=self.info.world_size, rank=self.info.rank,
                                     shuffle=True, seed=self.cfg.train.seed * 1_000_003 + unit * 10_007, drop_last=True)
        sampler.set_epoch(epoch)
        idx, bl = torch.tensor(list(sampler), dtype=torch.long), self.local_batch
        return [idx[i:i + bl] for i in range(0, len(idx) - bl + 1, bl)]

    def _collate(self, idx, dataset=None):
        batch = super()._collate(idx, dataset)
        if isinstance(batch, tuple):
            return tuple(t.to(self.device, non_blocking=True) for t in batch)
        return batch.to(self.device, non_blocking=True)

    # -- one step ------------------------------------------------------------------------------
    def losses_for(self, audio: torch.Tensor, active, labels=None) -> list:
        """GreedyModel.losses_for through the DDP wrappers: units that train run through DDP (their
        gradients get averaged), units before them run frozen under no_grad, later units not at all."""
        active = sorted(active)
        first, last = active[0], active[-1]
        outs, results = [], []
        for u, unit in enumerate(self.units):
            if unit[0] > last:
                break
            trains = torch.is_grad_enabled() and unit[-1] >= first
            runner = self.ddp[u] if trains else self.unit_modules[u]
            with torch.set_grad_enabled(trains):
                results += runner(outs, audio, active, self.generator, labels)
        return results

    def _step(self, batch, active: list, opt_ids: list) -> list:
        audio, labels = batch if isinstance(batch, tuple) else (batch, None)
        results = self.losses_for(audio, active, labels)
        optimizer_step([self.optimizers[i] for i in opt_ids], results)  # DDP averages each unit's gradients
        return results

    def _rows(self, results, unit, epoch) -> list:
        """Log rows with loss, nce, kl and accuracy averaged over the processes (a collective: every rank calls it)."""
        if self.info.world_size > 1 and results:
            stats = torch.stack([torch.stack([r.loss.detach().float().reshape(()),
                                              r.metrics["nce"].float().mean(),
                                              torch.as_tensor(r.metrics["kl"], device=r.loss.device).float().reshape(()),
                                              r.metrics["accuracy"].float().mean()]) for r in results])
            dist.all_reduce(stats)
            stats = stats / self.info.world_size
            results = [StageResult(r.index, s[0], {"nce": s[1:2], "kl": s[2], "accuracy": s[3:4]})
                       for r, s in zip(results, stats)]
        return super()._rows(results, unit, epoch)

    # -- validation: rank 0 alone, on the plain (non-DDP) model: no collective, the same on every rank ----
    def _val_generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.cfg.train.seed + VAL_SEED_OFFSET)

    def _validate(self, active, unit: int, epoch: int) -> list:
        """Rank 0 validates on the whole validation set (every rank holds the same parameters after the
        step); the other ranks skip it and log nothing."""
        if not self.info.is_main:
            return []
        return super()._validate(active, unit, epoch)

    # -- state: rank 0 writes, every rank's generator is kept ---------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()  # the model and optimisers are the same on every rank
        if self.info.world_size > 1:
            gens = [None] * self.info.world_size
            dist.all_gather_object(gens, self.generator.get_state())  # collective: every rank calls save()
            state["rank_generators"] = gens
        return state

    def load_state_dict(self, state: dict):
        gens, P = state.get("rank_generators"), self.info.world_size
        if P > 1 or gens is not None:
            if (gens is None and P > 1) or (gens is not None and len(gens) != P):
                raise ValueError(f"resume: the checkpoint was written by {1 if gens is None else len(gens)} process(es), "
                                 f"this run has {P}; exact resume needs the same number of processes")
            state = dict(state, generator=gens[self.info.rank])
        super().load_state_dict(state)
