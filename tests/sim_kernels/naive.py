"""An independent float64 Smooth-InfoNCE, written from the issue's spec with explicit loops.

It does not import sim_kernels (in particular not sim_kernels.reference), so it can catch a
mistake shared by the reference and a kernel. It loops in Python over (k, b, t), so keep the
shapes small (B*T*K of a few hundred at most). Gradients come from autograd through the loops.

Spec (issue 2), with B batch, T time, K steps, N negatives, Cc/Cz channels:
    score of target row r for anchor (b, t) at step k = targets_flat[r] . (weight[k-1] @ context[b, t])
    positive: targets[b, t + k]; negatives: targets_flat[neg_idx[k-1, b, t, n]] (or neg_idx[b, t, n])
    anchors of step k: t_begin <= t < t_end - k (the whole sequence: t_begin = 0, t_end = T)
    loss(k, b, t) = -log softmax([s+, s-_1 .. s-_N])_0
    KL(b, t) = 1/2 sum_c (mu^2 + exp(logvar) - logvar - 1)
    kl "dims": mean over (b, t) of the channel sum; "time": mean over (b, c) of the time sum
    "mean": (1/K) sum_k mean_anchors loss + beta*KL; "sum": sum_k mean_anchors loss + beta*KL;
    "none": (K, B, T) losses, 0 off the anchors, no KL.
"""
from __future__ import annotations

import math

import torch

__all__ = ["naive_terms", "naive_kl", "naive_smooth_infonce", "naive_metrics"]


def _neg_rows(neg_idx, k, b, t):
    """The N row indices of the negatives of anchor (b, t) at step k, as Python ints."""
    row = neg_idx[b, t] if neg_idx.dim() == 3 else neg_idx[k - 1, b, t]
    return [int(v) for v in row.tolist()]


def naive_terms(context, targets, weight, neg_idx, t_begin=0, t_end=None):
    """Per-anchor losses and hits.

    Returns:
        loss: dict {(k, b, t): 0-d float64 tensor} over the anchors only (differentiable).
        hit:  dict {(k, b, t): bool}, positive score > every negative score (a tie is a miss).
    """
    B, T, _ = context.shape
    Cz = targets.shape[-1]
    K = weight.shape[0]
    t_end = T if t_end is None else t_end
    c, z, w = context.double(), targets.double(), weight.double()
    z_flat = z.reshape(B * T, Cz)
    loss, hit = {}, {}
    for k in range(1, K + 1):
        for b in range(B):
            for t in range(t_begin, t_end - k):
                pred = w[k - 1] @ c[b, t]  # (Cz,)
                s_pos = torch.dot(z[b, t + k], pred)
                s_neg = [torch.dot(z_flat[r], pred) for r in _neg_rows(neg_idx, k, b, t)]
                scores = torch.stack([s_pos] + s_neg)
                m = scores.max().detach()
                log_z = m + torch.log(torch.exp(scores - m).sum())
                loss[(k, b, t)] = log_z - s_pos
                hit[(k, b, t)] = all(s_pos.detach().item() > s.detach().item() for s in s_neg)
    return loss, hit


def naive_kl(mu, logvar, kl_reduction):
    """The reduced KL (without beta), looping over (b, c) and summing over t."""
    B, T, Cz = mu.shape
    m, lv = mu.double(), logvar.double()
    total = m.new_zeros(())
    for b in range(B):
        for ch in range(Cz):
            col = 0.5 * (m[b, :, ch] ** 2 + torch.exp(lv[b, :, ch]) - lv[b, :, ch] - 1.0)
            total = total + col.sum()
    if kl_reduction == "dims":  # mean over the B*T frames of the channel sum
        return total / (B * T)
    if kl_reduction == "time":  # mean over the B*Cz (batch, channel) pairs of the time sum
        return total / (B * Cz)
    raise ValueError(kl_reduction)


def naive_smooth_infonce(context, targets, weight, neg_idx, mu=None, logvar=None, beta=0.0,
                         kl_reduction="dims", reduction="mean", t_begin=0, t_end=None):
    """The loss of the spec in float64 (a 0-d tensor, or (K, B, T) for reduction="none")."""
    B, T, _ = context.shape
    K = weight.shape[0]
    t_end = T if t_end is None else t_end
    loss, _ = naive_terms(context, targets, weight, neg_idx, t_begin, t_end)
    if reduction == "none":
        rows = []
        for k in range(1, K + 1):
            for b in range(B):
                for t in range(T):
                    rows.append(loss.get((k, b, t), context.new_zeros((), dtype=torch.float64)))
        return torch.stack(rows).view(K, B, T)
    per_k = []
    for k in range(1, K + 1):
        terms = [loss[(k, b, t)] for b in range(B) for t in range(t_begin, t_end - k)]
        per_k.append(torch.stack(terms).sum() / len(terms))
    total = sum(per_k) / K if reduction == "mean" else sum(per_k)
    if mu is not None:
        total = total + beta * naive_kl(mu, logvar, kl_reduction)
    return total


def naive_metrics(context, targets, weight, neg_idx, mu=None, logvar=None, kl_reduction="dims",
                  t_begin=0, t_end=None):
    """{"nce": (K,), "accuracy": (K,), "kl": ()} float64, as smooth_infonce_with_metrics defines them."""
    B, T, _ = context.shape
    K = weight.shape[0]
    t_end = T if t_end is None else t_end
    loss, hit = naive_terms(context, targets, weight, neg_idx, t_begin, t_end)
    nce, acc = [], []
    for k in range(1, K + 1):
        keys = [(k, b, t) for b in range(B) for t in range(t_begin, t_end - k)]
        nce.append(math.fsum(loss[key].detach().item() for key in keys) / len(keys))
        acc.append(sum(hit[key] for key in keys) / len(keys))
    kl = naive_kl(mu, logvar, kl_reduction).detach().item() if mu is not None else 0.0
    f64 = torch.float64
    return {"nce": torch.tensor(nce, dtype=f64), "accuracy": torch.tensor(acc, dtype=f64), "kl": torch.tensor(kl, dtype=f64)}
