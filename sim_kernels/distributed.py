"""Negatives across data-parallel processes: the targets of every process, gathered with gradient.

With P processes of B utterances each, contrasting every anchor against the targets of the whole global
batch (P*B utterances) is the loss one process would compute on that batch (open_clip's
``--gather-with-grad`` does the same for CLIP). The op takes targets with more utterances than context
(the anchors' own first): each process passes its own context and the gathered targets.

    z_all = gather_targets(z)                           # (P*B, T, Cz), this process's B utterances first
    neg = to_gathered_rows(global_neg, B * T)           # global rows -> rows of z_all
    loss = smooth_infonce(c, z_all, W, neg, mu, logvar, beta=...)

Global rows: row g = u*T + t of utterance u of the global batch, utterances in rank order (process p
holds u in [p*B, (p+1)*B)). Every process draws the same global indices for the anchors of the whole
batch from one seeded stream and keeps its own anchors' slice (neg_idx[:, p*B:(p+1)*B]).

Gradients: the gather's backward (an all_to_all) sums what every process's loss sends to a process's
targets; with DistributedDataParallel averaging the parameter gradients over
the P processes, the step equals the one-process step on the global batch (the per-process losses are
means over B of the P*B utterances, whose average is the global mean).
"""
from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["gather_targets", "to_gathered_rows", "SPLITS"]


def _group_size_rank(group):
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("gather_targets: torch.distributed is not initialised (call "
                           "torch.distributed.init_process_group first)")
    return dist.get_world_size(group), dist.get_rank(group)


class _GatherWithGradient(torch.autograd.Function):
    """all_gather whose backward hands each process the sum over processes of the gradients sent to its part
    (an all_to_all, which gloo and NCCL both have), with public torch.distributed collectives only
    (torch.distributed.nn.functional.all_gather does the same and is deprecated in torch 2.14)."""

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, tensor, group=group)
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads):
        sent = [g.contiguous() if g is not None else None for g in grads]
        like = next(g for g in sent if g is not None)
        sent = [g if g is not None else torch.zeros_like(like) for g in sent]
        received = [torch.empty_like(like) for _ in sent]
        dist.all_to_all(received, sent, group=ctx.group)
        return torch.stack(received).sum(0), None


def gather_targets(targets: torch.Tensor, group=None, *, check_shapes: bool = True) -> torch.Tensor:
    """Every process's targets, with gradient, this process's first.

    Args:
        targets: (B, T, Cz) floating tensor, the same shape on every process of ``group``.
        group: the process group (default: the world).
        check_shapes: compare the shapes across processes first (one small all_gather); a caller that
            guarantees equal shapes (the training stack: DistributedSampler with drop_last) may skip it.
    Returns:
        (P*B, T, Cz): the utterances of processes p, p+1, ..., P-1, 0, ..., p-1 (p = this process's rank):
        the global batch shifted cyclically so that this process's own utterances come first, as
        smooth_infonce needs its targets. Backward: each process's targets receive the sum over all
        processes of the gradients sent to them.
    Raises:
        RuntimeError without an initialised process group; ValueError when the shapes differ across
        processes (checked before the data moves).
    """
    P, rank = _group_size_rank(group)
    if not isinstance(targets, torch.Tensor) or targets.dim() != 3:
        raise ValueError(f"targets must be a 3-D (B, T, Cz) tensor, got "
                         f"{tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__}")
    if check_shapes:
        shape = torch.tensor(targets.shape, dtype=torch.int64, device=targets.device)
        shapes = [torch.empty_like(shape) for _ in range(P)]
        dist.all_gather(shapes, shape, group=group)
        if any(not torch.equal(s, shape) for s in shapes):
            raise ValueError(f"targets must have the same shape on every process, got "
                             f"{[tuple(s.tolist()) for s in shapes]} (pad, or drop the uneven last batch)")
    parts = _GatherWithGradient.apply(targets, group)
    return torch.cat(list(parts[rank:]) + list(parts[:rank]), dim=0)


SPLITS = ("blocks", "strided")


def to_gathered_rows(neg_idx: torch.Tensor, rows_per_process: int, group=None, *, split: str = "blocks",
                     time: int | None = None) -> torch.Tensor:
    """Global row ids g = u*T + t (utterance u of the global batch, frame t) to rows of ``gather_targets``'
    result, which holds this process's utterances first, then those of the next ranks cyclically.

    Args:
        neg_idx: int64 tensor of global rows in [0, P * rows_per_process), any shape.
        rows_per_process: B*T of one process.
        split: which process holds utterance u of the global batch: "blocks" (process u // B, as its
               (u % B)-th: the batch cut into P consecutive blocks) or "strided" (process u % P, as its
               (u // P)-th: torch.utils.data.DistributedSampler's split of each global batch).
        time: T, needed for "strided".
    Returns: an int64 tensor of the same shape.
    Raises: ValueError for rows_per_process < 1, a non-int64 neg_idx, an unknown split or a missing time.
    """
    P, rank = _group_size_rank(group)
    if isinstance(rows_per_process, bool) or not isinstance(rows_per_process, int) or rows_per_process < 1:
        raise ValueError(f"rows_per_process must be a positive int (B*T of one process), got {rows_per_process!r}")
    if not isinstance(neg_idx, torch.Tensor) or neg_idx.dtype != torch.int64:
        raise ValueError(f"neg_idx must be an int64 tensor, got "
                         f"{neg_idx.dtype if isinstance(neg_idx, torch.Tensor) else type(neg_idx).__name__}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    total = P * rows_per_process
    if split == "blocks":
        return torch.remainder(neg_idx - rank * rows_per_process, total)
    if isinstance(time, bool) or not isinstance(time, int) or time < 1 or rows_per_process % time:
        raise ValueError(f"time must be T, a positive int dividing rows_per_process={rows_per_process}, got {time!r}")
    B = rows_per_process // time
    u, t = neg_idx // time, neg_idx % time
    holder, j = u % P, u // P
    position = torch.remainder(holder - rank, P) * B + j
    return position * time + t
