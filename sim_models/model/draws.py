"""Where a training step's random draws are made for: this process's batch, or the global batch.

With ``train.negatives = "global"`` under data parallel (sim_models/training/strategies/data_parallel.py), P
processes must take the steps one process takes on the whole global batch: every process holds the
same generator (one process's seed) and, while ``global_batch(P, rank)`` is active, draws what one
process would for P*B utterances, then keeps its own utterances' share:

* the reparameterisation noise (modules._normal): eps for (P*B, T, C), rows rank::P;
* the loss (objectives.StageInfoNCELoss): the crop and the negatives for the global batch, the anchors
  of rows rank::P, scored against every process's targets (sim_kernels.distributed.gather_targets).

Rows rank::P: torch.utils.data.DistributedSampler gives process r the examples r, r+P, r+2P, ... of
each global batch. Outside ``global_batch`` (one process, validation, local negatives) nothing changes.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["GlobalBatch", "global_batch", "current", "global_size", "share"]

_STATE = threading.local()


@dataclass(frozen=True)
class GlobalBatch:
    """P processes, this one of rank ``rank`` in ``group`` (None: the world)."""
    P: int
    rank: int
    group: object = None


@contextmanager
def global_batch(P: int, rank: int, group=None):
    """Draws (noise, crops, negatives) for the global batch of P processes while active (see the module docstring)."""
    previous = getattr(_STATE, "active", None)
    _STATE.active = GlobalBatch(P, rank, group)
    try:
        yield _STATE.active
    finally:
        _STATE.active = previous


def current() -> GlobalBatch | None:
    """The active GlobalBatch, or None (draws for this process's batch alone)."""
    return getattr(_STATE, "active", None)


def global_size(n: int) -> int:
    """The global batch's size for this process's ``n`` utterances: P*n while a GlobalBatch is active, else n."""
    gb = current()
    return n if gb is None else gb.P * n


def share(global_draw, dim: int = 0):
    """This process's share of a draw made for the global batch: its utterances, rows rank::P along ``dim``
    (the draw itself outside ``global_batch``)."""
    gb = current()
    if gb is None:
        return global_draw
    dim = dim % global_draw.dim()
    return global_draw[(slice(None),) * dim + (slice(gb.rank, None, gb.P),)]
