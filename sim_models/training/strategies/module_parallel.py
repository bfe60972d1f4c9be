"""Module parallel training: each process (device) holds and trains a contiguous group of modules.

Gradient isolation makes this cheap: module m's input is the previous module's output *detached*,
so no gradient ever flows back across a module boundary. Process p therefore only needs the
activations z of the last module of process p-1, sent forward once per batch; nothing is ever sent
backward. Each process keeps the parameters, optimiser states and activations of its own modules
only on its device, so a model larger than one device trains.

Schedule (a synchronous pipeline per batch; P processes, process p owns modules M_p):

    p = 0:     load batch j, forward + loss of M_0 ──send z, rng──▶ backward, Adam step ··· recv rng ◀─┐
    p = 1:     recv z, rng ─▶ forward + loss of M_1 ──send z, rng──▶ backward, Adam step              │
    ...                                                                                               │
    p = P-1:   recv z, rng ─▶ forward + loss of M_{P-1} ──send rng to p = 0 ─────────────────────────┘
                              ▶ backward, Adam step

Every draw of the single-process trainer (reparameterisation noise, negatives, GIM's crop) comes
from one generator, stage after stage. To reproduce it exactly, the generator's state travels with
the activations: process p continues the stream where process p-1 stopped, and the last process
hands it back to process 0 for the next batch. So P processes compute, step for step, what one
process computes (tests/sim_models/training/test_distributed.py checks it), and the checkpoint has the
single-process format: a module-parallel run resumes on one process and vice versa.

Cost: per batch, process p sends B·T_m·C_m floats (its last module's z) and a generator state
(5 KB on CPU, 16 bytes on CUDA). A process's backward and optimiser step overlap the forward of the
processes after it, but batch j+1 starts on process 0 only once the last process has drawn its
random numbers for batch j, so the forward passes of the P groups run one after another: time per
batch ≈ Σ_p forward_p + max_p (backward_p + step_p) + P transfers, against Σ_p (forward_p + backward_p
+ step_p) on one device. The gain is memory (each device holds 1/P of the model, its optimiser state
and its activations) and the overlap of backward passes, not throughput; data parallelism is the
tool for throughput. A pipeline over micro-batches with one generator per module would overlap
more, at the price of changing the random streams (not done).

Limits: train.mode must be "parallel" (in "sequential" mode one unit trains at a time, so a pipeline
of processes has nothing to overlap), the model must not be end to end (CPC has one training unit
and no detach to cut at), and there must be at least as many training units as processes. Every
process builds the whole model on the CPU first (build_model is a function of the seed) and moves
only its own modules to its device.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from sim_models.model.greedy import count_frames
from sim_models.model.stages import StageOutput
from sim_models.rundir.checkpoint import to_cpu
from sim_models.training.strategies.env import DistInfo
from sim_models.training.strategies.rank_zero import RankZeroStrategy
from sim_models.training.strategies.single import Placement, SingleProcessStrategy, split_batch

__all__ = ["ModuleParallelStrategy", "split_units"]

_TAG_RNG, _TAG_Z, _TAG_RNG_BACK = 0, 1, 2


def split_units(num_units: int, world_size: int) -> list:
    """Contiguous groups of unit indices, one per process, sizes differing by at most one (earlier ranks larger).

    >>> split_units(3, 2)
    [[0, 1], [2]]
    """
    if world_size > num_units:
        raise ValueError(f"module parallel: {world_size} processes but only {num_units} training units; "
                         f"start at most {num_units} processes")
    q, r = divmod(num_units, world_size)
    groups, start = [], 0
    for p in range(world_size):
        n = q + (1 if p < r else 0)
        groups.append(list(range(start, start + n)))
        start += n
    return groups


def _check_groups(groups, num_units: int, world_size: int) -> list:
    groups = [list(g) for g in groups]
    if len(groups) != world_size or any(not g for g in groups):
        raise ValueError(f"groups must give each of the {world_size} processes a non-empty list of training units, "
                         f"got {groups}")
    if [u for g in groups for u in g] != list(range(num_units)):
        raise ValueError(f"groups must split the training units 0..{num_units - 1} in order, contiguously, got {groups}")
    return groups


class ModuleParallelStrategy(RankZeroStrategy, SingleProcessStrategy):
    """ModuleParallelStrategy(info, groups=None): rank p trains the training units ``groups[p]`` on
    ``info.device`` and sends its last module's detached z (and the generator state) to rank p + 1.
    Only rank 0 reads audio; rows and state are gathered on rank 0 in the single-process format."""

    def __init__(self, info: DistInfo, groups=None):
        self.info, self.requested_groups = info, groups

    def check(self, cfg) -> None:
        if cfg.model.end_to_end:
            raise ValueError("module parallel: model.end_to_end=True (CPC) has one training unit and no detached "
                             "boundary to split at; use data parallel")
        if cfg.train.mode != "parallel":
            raise ValueError(f"module parallel needs train.mode='parallel', got {cfg.train.mode!r}")
        if cfg.train.autocast == "float16":
            raise ValueError("module parallel: train.autocast='float16' is not supported (each rank would scale its "
                             "own losses with its own GradScaler, and the checkpoint keeps one); use bfloat16")
        if self.info.world_size < 2 or not dist.is_initialized():
            raise RuntimeError("ModuleParallelTrainer needs an initialised process group of >= 2 processes "
                               "(torchrun --nproc_per_node=2 ..., then init_distributed())")

    def setup(self, model, units: list, cfg) -> Placement:
        """Only this rank's stages and losses move to its device (in place: the optimisers keep their parameters).
        Returns the rank's device and its generator (seeded with train.seed; the stream then travels with z)."""
        P, rank = self.info.world_size, self.info.rank
        groups = split_units(len(units), P) if self.requested_groups is None else self.requested_groups
        self.groups = _check_groups(groups, len(units), P)
        self.my_units = self.groups[rank]
        self.my_stages = [m for u in self.my_units for m in units[u]]
        self.device = self.info.device
        for m in self.my_stages:
            model.stages[m].to(self.device)
            if str(m) in model.losses:
                model.losses[str(m)].to(self.device)
        generator = torch.Generator(device=self.device).manual_seed(cfg.train.seed)
        self._rng_numel = generator.get_state().numel()
        self._frames = count_frames(cfg.model, cfg.data.length)
        self._owned_prefixes = tuple(f"{kind}.{m}." for m in self.my_stages for kind in ("stages", "losses"))
        self._model, self._length = model, cfg.data.length
        # z on the wire: the dtype a stage's z has in this run (bf16 under train.autocast=bfloat16), so the next
        # rank's stage sees what it sees in one process
        self._z_dtype = {None: torch.float32, "bfloat16": torch.bfloat16}[cfg.train.autocast]
        return Placement(self.device, generator)

    # -- data: only rank 0 reads audio -----------------------------------------------------------
    def collate(self, trainer, idx, dataset):
        if self.info.rank == 0:
            return super().collate(trainer, idx, dataset)
        return torch.empty(len(idx), 0)  # the batch size is all a later process needs

    # -- communication ---------------------------------------------------------------------------
    def _recv_rng(self, src: int, tag: int, generator):
        buf = torch.empty(self._rng_numel, dtype=torch.uint8, device=self.device)
        dist.recv(buf, src=src, tag=tag)
        generator.set_state(buf.cpu())

    def _receive_input(self, batch: int, generator) -> list:
        """outs for this rank's first stage: the random stream where rank - 1 stopped, and its z (B, T, C)."""
        if self.info.rank == 0:
            return []
        self._recv_rng(self.info.rank - 1, _TAG_RNG, generator)
        m = self.my_stages[0] - 1
        z_in = torch.empty((batch, self._frames[m], self._model.stages[m].out_channels), device=self.device,
                           dtype=self._z_dtype)
        dist.recv(z_in, src=self.info.rank - 1, tag=_TAG_Z)
        return [None] * m + [StageOutput(z=z_in)]

    def _z_out(self, outs: list, batch: int) -> torch.Tensor:
        z_out = outs[-1].z.detach().to(self._z_dtype).contiguous()  # a no-op: z has this dtype already
        last = self.my_stages[-1]
        expected = (batch, self._frames[last], self._model.stages[last].out_channels)
        if tuple(z_out.shape) != expected:
            rank = self.info.rank
            raise RuntimeError(f"module parallel: rank {rank} produced z of shape {tuple(z_out.shape)}, rank {rank + 1} "
                               f"expects {expected} (are all examples data.length={self._length} samples?)")
        return z_out

    # -- one step (and validation: the same pipeline without the optimiser step) --------------------
    def losses(self, trainer, batch, active, generator) -> list:
        """This rank's StageResults for one batch: receive z and the generator state from rank - 1 (so the
        draws continue where it stopped), run this rank's stages, start sending both on (the last rank sends
        the state back to rank 0). ``end_batch`` finishes the sends; the backward and optimiser step of a
        training step come in between, overlapping the forward of the ranks after this one."""
        P, rank = self.info.world_size, self.info.rank
        audio, _ = split_batch(batch)
        B = audio.shape[0]
        outs = self._receive_input(B, generator)
        results = trainer.model.run_stages(audio, self.my_stages, generator, active=active, outs=outs)
        rng = generator.get_state().to(self.device)
        if rank < P - 1:
            sent = [rng, self._z_out(outs, B)]
            self._pending = [dist.isend(sent[0], rank + 1, tag=_TAG_RNG), dist.isend(sent[1], rank + 1, tag=_TAG_Z)]
        else:
            sent = [rng]
            self._pending = [dist.isend(rng, 0, tag=_TAG_RNG_BACK)]
        self._sent = sent  # kept alive until end_batch has waited for the sends
        return results

    def step_optimizers(self, trainer, opt_ids: list) -> list:
        """Only the optimisers of this rank's training units."""
        return [trainer.optimizers[i] for i in opt_ids if i in self.my_units]

    def end_batch(self, generator) -> None:
        """Wait for this batch's sends; rank 0 then receives the stream after the whole batch (where batch j+1,
        or the next validation batch, starts)."""
        for w in self._pending:
            w.wait()
        self._pending, self._sent = [], []
        if self.info.rank == 0:
            self._recv_rng(self.info.world_size - 1, _TAG_RNG_BACK, generator)

    def gather_rows(self, rows: list) -> list:
        """Every rank's rows, gathered on rank 0 (a collective: every rank calls it); [] elsewhere."""
        gathered = self.gather_to_main(rows)
        if not self.info.is_main:
            return []
        return sorted((r for part in gathered for r in part), key=lambda r: r["module"])

    # -- state: gathered on rank 0 in the single-process format -----------------------------------
    def state_dict(self, trainer):
        """The full single-process state on rank 0 (None elsewhere). A collective: every rank calls it."""
        local = to_cpu({"model": {k: v for k, v in trainer.model.state_dict().items() if k.startswith(self._owned_prefixes)},
                        "optimizers": {u: trainer.optimizers[u].state_dict() for u in self.my_units}})
        gathered = self.gather_to_main(local)
        if not self.info.is_main:
            return None
        state = trainer.process_state_dict()
        for part in gathered:
            state["model"].update(part["model"])
            for u, s in part["optimizers"].items():
                state["optimizers"][u] = s
        return state
