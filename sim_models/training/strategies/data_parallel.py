"""Data parallel training: every process holds the whole model and trains on its share of each batch.

``DataParallelStrategy`` is the strategy (sim_models/training/strategies/single.py) the one ``Trainer`` calls;
``DataParallelTrainer(...)`` is that Trainer with it. Against a single process it makes four changes:

* each training unit (one module and its loss; the whole model when end to end) is wrapped in its
  own ``DistributedDataParallel``, so its gradients are averaged over the processes during the
  backward pass and every process takes the same optimiser step;
* the examples of an epoch are split by ``torch.utils.data.DistributedSampler``;
* ``train.batch_size`` is the *global* batch: each of the P processes takes batch_size / P examples
  (batch_size must be divisible by P), so a config means the same optimisation on any P;
* only rank 0 writes config.yaml, the logs (losses and metrics averaged over the processes) and
  the checkpoints.

Negatives (``train.negatives``):

* "global" (default): every rank holds the same generator (one process's seed) and draws what one
  process draws for the whole global batch — noise, crops, negatives — keeping its own examples' share
  (sim_models/model/draws.py); each module's targets are all-gathered with gradient
  (sim_kernels.distributed.gather_targets), so every anchor is scored against negatives from all
  batch_size examples. P processes then take the optimisation steps of one process on the global batch
  (tests/sim_models/training/test_distributed.py checks the parameters against the single-process Trainer).
* "local": each rank draws from its own generator (``rank_seed(seed, r)``) and its anchors' negatives
  come from its own batch_size / P examples: no collective, but P processes optimise the average of P
  losses over B/P examples each, not the loss of one process on B examples. What is exactly equivalent
  (tested): one process that, at every step, splits the same global batch into P parts by stride
  (part r = examples r, r+P, r+2P, ... of the batch: what DistributedSampler gives rank r), computes the
  losses of part r with generator r, back-propagates loss_r / P for every part, and then takes one step.

Order of examples: the sampler permutes with the seed the single-process Trainer uses for the epoch
(seed·1000003 + unit·10007 + epoch), so P = 1 sees the same batches as ``Trainer``.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from sim_models.model import draws
from sim_models.model.greedy import GreedyModel, StageResult
from sim_models.training.strategies.env import DistInfo
from sim_models.training.strategies.rank_zero import RankZeroStrategy
from sim_models.training.strategies.single import Placement, SingleProcessStrategy, split_batch

__all__ = ["DataParallelStrategy", "UnitModule", "rank_seed"]


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank r's generator (noise, negatives, crops): rank 0 keeps ``seed``, as one process would."""
    return seed + 1_000_000_007 * rank


class UnitModule(nn.Module):
    """One training unit as one nn.Module, the thing DDP wraps: the unit's stages and losses are its
    submodules (shared with the GreedyModel, not copied), so DDP sees exactly that unit's parameters.

    forward(outs: list of StageOutput of the stages before this unit (appended to in place),
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


class DataParallelStrategy(RankZeroStrategy, SingleProcessStrategy):
    """DataParallelStrategy(info, find_unused_parameters=False): every rank holds the whole model on
    ``info.device``; each training unit wrapped in DDP; DistributedSampler batches of batch_size / P examples;
    logged values averaged over the ranks; rank 0 alone validates and writes; checkpoints carry every rank's
    generator ("rank_generators")."""

    def __init__(self, info: DistInfo, find_unused_parameters: bool = False):
        self.info, self.find_unused_parameters = info, find_unused_parameters

    def check(self, cfg, dataset) -> None:
        P = self.info.world_size
        if cfg.train.batch_size % P:
            raise ValueError(f"train.batch_size={cfg.train.batch_size} is the global batch and must be divisible by "
                             f"the number of processes ({P})")
        if cfg.model.objective != "supervised" and len(dataset) < cfg.train.batch_size:
            raise ValueError(f"data parallel training needs at least train.batch_size={cfg.train.batch_size} "
                             f"examples, got {len(dataset)}")
        if P > 1 and not dist.is_initialized():
            raise RuntimeError("DataParallelTrainer: call sim_models.training.strategies.env.init_distributed() first")

    def global_negatives(self, cfg) -> bool:
        """train.negatives == "global" with more than one process: the draws are the global batch's."""
        return cfg.train.negatives == "global" and self.info.world_size > 1

    def generator_seed(self, cfg) -> int:
        """Global negatives: one process's seed on every rank (each draws for the whole global batch and keeps
        its share, sim_models/model/draws.py); local: ``rank_seed(seed, rank)``, a stream of its own per rank."""
        if self.global_negatives(cfg):
            return cfg.train.seed
        return rank_seed(cfg.train.seed, self.info.rank)

    def setup(self, model, units: list, cfg) -> Placement:
        """The single-process placement on this rank's device, then one DistributedDataParallel per training unit."""
        placement = super().setup(model, units, cfg)
        self.local_batch = cfg.train.batch_size // self.info.world_size
        self.units = units
        self.unit_modules = [UnitModule(model, u) for u in units]
        if self.info.world_size > 1:
            # device_ids=None: the unit already sits on its device and the batch is moved in collate
            # (DDP would otherwise copy the inputs, and the list of outputs the unit appends to with them).
            self.ddp = [DistributedDataParallel(um, device_ids=None, broadcast_buffers=False,
                                                find_unused_parameters=self.find_unused_parameters)
                        for um in self.unit_modules]
        else:
            self.ddp = list(self.unit_modules)
        return placement

    # -- data: DistributedSampler, local batches ----------------------------------------------
    def batches(self, trainer, unit: int, epoch: int) -> list:
        sampler = DistributedSampler(trainer.dataset, num_replicas=self.info.world_size, rank=self.info.rank,
                                     shuffle=True, seed=trainer.cfg.train.seed * 1_000_003 + unit * 10_007,
                                     drop_last=True)
        sampler.set_epoch(epoch)
        idx, bl = torch.tensor(list(sampler), dtype=torch.long), self.local_batch
        return [idx[i:i + bl] for i in range(0, len(idx) - bl + 1, bl)]

    # -- one step ------------------------------------------------------------------------------
    def losses_for(self, audio: torch.Tensor, active, generator, labels=None) -> list:
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
                results += runner(outs, audio, active, generator, labels)
        return results

    def losses(self, trainer, batch, active, generator) -> list:
        """The forward of a step through the DDP wrappers (``losses_for``: each unit's gradients get averaged
        in the backward); under no_grad (validation) the plain units, no collective."""
        audio, labels = split_batch(batch)
        if torch.is_grad_enabled() and self.global_negatives(trainer.cfg):  # training, not rank 0's validation
            with draws.global_batch(self.info.world_size, self.info.rank):
                return self.losses_for(audio, active, generator, labels)
        return self.losses_for(audio, active, generator, labels)

    def reduce_results(self, results: list) -> list:
        """loss, nce, kl and accuracy averaged over the processes (a collective: every rank calls it)."""
        if self.info.world_size > 1 and results:
            stats = torch.stack([r.stats() for r in results])
            dist.all_reduce(stats)
            stats = stats / self.info.world_size
            results = [StageResult.from_stats(r.index, s) for r, s in zip(results, stats)]
        return results

    # -- validation: rank 0 alone, on the plain (non-DDP) units: no collective, the same on every rank ----
    def validates(self) -> bool:
        """Rank 0 validates on the whole validation set (every rank holds the same parameters after the
        step); the other ranks skip it and log nothing."""
        return self.info.is_main

    # -- state: rank 0 writes, every rank's generator is kept ---------------------------------
    def state_dict(self, trainer) -> dict:
        state = trainer.process_state_dict()  # the model and optimisers are the same on every rank
        if self.info.world_size > 1:
            gens = [None] * self.info.world_size
            dist.all_gather_object(gens, trainer.generator.get_state())  # collective: every rank calls save()
            state["rank_generators"] = gens
        return state

    def loaded_state(self, trainer, state: dict) -> dict:
        gens, P = state.get("rank_generators"), self.info.world_size
        if P > 1 or gens is not None:
            if (gens is None and P > 1) or (gens is not None and len(gens) != P):
                raise ValueError(f"resume: the checkpoint was written by {1 if gens is None else len(gens)} process(es), "
                                 f"this run has {P}; exact resume needs the same number of processes")
            state = dict(state, generator=gens[self.info.rank])
        return state
