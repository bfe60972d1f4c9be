"""Plain-PyTorch Smooth-InfoNCE: the definition of right. Never an op, never fast.

Every kernel (CPU, CUDA, Triton) is tested against this file. It follows the loss's definition word for
word and is differentiable by autograd. It accumulates in float32 for 16- and 32-bit inputs and
in float64 for float64 inputs; the result has that accumulation dtype. It computes with autocast
switched off, so torch.autocast cannot lower its einsums to bf16/fp16 (sim_kernels/_autocast.py).

Shapes: B batch, T time, K prediction steps, N negatives, Cc context / Cz target channels.
"""
from __future__ import annotations

import torch

from . import _autocast
from .spec import COSINE_EPS, LossSpec

__all__ = ["accumulation_dtype", "per_anchor_terms", "smooth_infonce_reference", "steps_of", "normalize_rows"]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other floating dtype accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def per_anchor_terms(context, targets, weight, neg_idx, mu=None, logvar=None, t_begin=0, t_end=None,
                     common_window=False, score_scale=1.0, first_step=1):
    """Per-anchor losses, hits and per-frame KL.

    Args:
        context:  (B, T, Cc) context vectors c[b, t].
        targets:  (B', T, Cz) target vectors z[b, t], B' >= B: the anchors' own B utterances first (their
                  positives), then any extra ones (e.g. other processes' batches, gathered); negatives
                  index targets.reshape(B'*T, Cz).
        weight:   (K, Cz, Cc) the bilinear maps W_k (weight[k-1] is W_k), or None: the plain dot product
                  z . c (Cc == Cz; K = neg_idx.shape[0] for a 4-D neg_idx, else 1).
        neg_idx:  (K, B, T, N) or (B, T, N) int64 rows of the flattened targets; -1 = no negative there
                  (an excluded candidate: its score is -inf, e.g. wav2vec 2.0's negatives equal to the positive).
        mu, logvar: (B, T, Cz) or None.
        t_begin, t_end: anchor window; (b, t) is an anchor of step k when t_begin <= t < t_end - d_k, where
                  d_k = first_step + k - 1 is the step's offset (its positive is frame t + d_k).
        common_window: (b, t) is an anchor of every step when t_begin <= t < t_end - d_K (CPC_audio's
                  criterion, facebookresearch/CPC_audio cpc/criterion/criterion.py: windowSize = T - nPredicts).
        first_step: offset of the first step: 1 (CPC, GIM, SIM: the next frame) or 0 (wav2vec 2.0: the positive
                  is the anchor's own frame, the quantised target of a masked frame).
        score_scale: float multiplying every score (CPC_audio: 1/Cz, their `.mean(dim=3)` over channels).

    Returns:
        loss:    (K, B, T) -log softmax([s+, s-_1..s-_N])_0, 0 at non-anchors.
        correct: (K, B, T) bool, s+ > max_n s-_n (a tie counts as wrong), False at non-anchors.
        kl:      (B, T) 1/2 sum_c (mu^2 + e^logvar - logvar - 1), or None without mu.
    """
    if _autocast.enabled(context.device.type):
        with torch.autocast(context.device.type, enabled=False):
            return _per_anchor_terms(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window,
                                     score_scale, first_step)
    return _per_anchor_terms(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window, score_scale,
                             first_step)


def _per_anchor_terms(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window, score_scale,
                      first_step):
    B, T, _ = context.shape
    K = steps_of(weight, neg_idx)
    t_end = T if t_end is None else t_end
    acc = accumulation_dtype(context.dtype)
    c, z = context.to(acc), targets.to(acc)
    w = None if weight is None else weight.to(acc)
    z_flat = z.reshape(-1, z.shape[-1])  # (B'*T, Cz)
    if neg_idx.dim() == 3:
        neg_idx = neg_idx.unsqueeze(0).expand(K, -1, -1, -1)
    losses, hits = [], []
    for k in range(1, K + 1):
        d = first_step + k - 1  # the offset of step k: its positive is frame t + d
        lo, hi = t_begin, t_end - (first_step + K - 1 if common_window else d)  # anchors t in [lo, hi)
        # W_k c_t, or c_t itself for the dot product: (B, hi-lo, Cz)
        pred = c[:, lo:hi] if w is None else torch.einsum("btc,zc->btz", c[:, lo:hi], w[k - 1])
        idx = neg_idx[k - 1, :, lo:hi]
        negs = z_flat[idx.clamp(min=0)]  # (B, hi-lo, N, Cz); -1 = no negative, its score set to -inf below
        # The positive row goes through the same contraction as the negatives, so a negative equal
        # to the positive scores exactly the same (a tie, counted as wrong below) on every BLAS.
        rows = torch.cat([z[:B, lo + d : hi + d].unsqueeze(2), negs], dim=2)  # (B, hi-lo, 1+N, Cz)
        logits = torch.einsum("btnz,btz->btn", rows, pred) * score_scale  # (B, hi-lo, 1+N)
        # excluded candidates (-1, e.g. wav2vec 2.0's negatives equal to the positive): score -inf
        excluded = torch.cat([torch.zeros_like(idx[..., :1], dtype=torch.bool), idx < 0], dim=-1)
        logits = logits.masked_fill(excluded, float("-inf"))
        pos, neg = logits[..., 0], logits[..., 1:]
        loss_k = torch.logsumexp(logits, dim=-1) - pos
        hit_k = pos > neg.max(dim=-1).values
        pad = (lo, T - hi)
        losses.append(torch.nn.functional.pad(loss_k, pad))
        hits.append(torch.nn.functional.pad(hit_k, pad))
    kl = None
    if mu is not None:
        m, lv = mu.to(acc), logvar.to(acc)
        kl = 0.5 * (m * m + lv.exp() - lv - 1.0).sum(-1)
    return torch.stack(losses), torch.stack(hits), kl


def steps_of(weight, neg_idx) -> int:
    """K: weight.shape[0], or without a weight (the dot product) neg_idx.shape[0] for a 4-D neg_idx, else 1."""
    if weight is not None:
        return weight.shape[0]
    return neg_idx.shape[0] if neg_idx.dim() == 4 else 1


def normalize_rows(x, eps=COSINE_EPS):
    """x / max(||x||_2, eps) over the last dim: the factor torch.nn.functional.cosine_similarity applies to each
    vector (so cosine scores are dot products of normalised rows; an all-zero row stays 0)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)


def smooth_infonce_reference(context, targets, weight, neg_idx, mu=None, logvar=None, beta=0.0,
                             kl_reduction="dims", reduction="mean", t_begin=0, t_end=None,
                             anchor_window="per_step", score_scale=1.0, lengths=None, anchor_mask=None,
                             first_step=1, score="bilinear"):
    """The whole loss: Smooth InfoMax's Smooth-InfoNCE (Denoodt et al., eq. 6, the KL in closed form below it)
    with GIM's per-step means over anchors (same arguments as sim_kernels.smooth_infonce).

    anchor_window "per_step": anchors of step k are t_begin <= t < t_end - k (GIM, Löwe et al.);
                  "common": t_begin <= t < t_end - K for every k (CPC_audio).
    score_scale: every score is multiplied by it (a float, or "mean" = 1/Cz: CPC_audio's mean over channels).

    first_step: the offset of step 1 (1: next frame; 0: the anchor's own frame, wav2vec 2.0).
    score: "bilinear" (z . W_k c), "dot" (z . c, weight None) or "cosine" (the dot product of the rows each
                 divided by max(||row||, 1e-8), weight None: torch.nn.functional.cosine_similarity).

    reduction "mean": (1/K) sum_k mean over anchors of step k, plus beta * KL;
              "sum":  sum_k of the same per-k means (CPC), plus beta * KL;
              "anchor_sum": the sum over every counted anchor and step (wav2vec 2.0: the cross-entropy summed
                      over masked frames), plus beta * KL;
              "none": the (K, B, T) per-anchor losses, 0 off the anchors, no KL term.
    kl_reduction "dims": sum of KL over (b, t, c) / (B * T)  (mean over frames of the channel sum);
                 "time": the same sum / (B * Cz)              (mean over (b, c) of the time sum).
    lengths (B,): frames t >= lengths[b] are padding: anchor (b, t) of step k counts only when
                 t + shift_k < lengths[b] (shift_k = k, or K with the common window); the KL sums real
                 frames only, and "dims" divides by their number instead of B * T.
    anchor_mask (B, T) bool: only anchors with anchor_mask[b, t] count.
    With either, the per-k means are over the counted anchors (a step without any adds 0).
    """
    B, T, _ = context.shape
    K = steps_of(weight, neg_idx)
    t_end = T if t_end is None else t_end
    spec = LossSpec(beta, kl_reduction, reduction, anchor_window, score, score_scale, first_step)  # the checks
    spec.check_weight(weight)
    common = spec.common
    scale = spec.scale(targets.shape[-1])
    if score == "cosine":
        context, targets = normalize_rows(context), normalize_rows(targets)
    loss, _, kl = per_anchor_terms(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common, scale,
                                   first_step)

    def shift(k):
        return first_step + K - 1 if common else first_step + k - 1

    def per_k_total(sums, counts):  # "anchor_sum": no division by the anchor counts
        return sums if reduction == "anchor_sum" else sums / counts

    if lengths is None and anchor_mask is None:
        if reduction == "none":
            return loss
        per_k = torch.stack([per_k_total(loss[k - 1].sum(), B * (t_end - shift(k) - t_begin))
                             for k in range(1, K + 1)])
        kl_sum, frames = (kl.sum() if kl is not None else None), B * T
    else:
        counted = torch.zeros(K, B, T, dtype=torch.bool, device=loss.device)
        for k in range(1, K + 1):
            for b in range(B):
                end = t_end if lengths is None else min(t_end, int(lengths[b]))
                last = end - shift(k)  # the positive t + d_k must be a real frame
                for t in range(t_begin, max(t_begin, last)):
                    counted[k - 1, b, t] = anchor_mask is None or bool(anchor_mask[b, t])
        loss = loss * counted
        if reduction == "none":
            return loss
        per_k = torch.stack([per_k_total(loss[k - 1].sum(), max(1, int(counted[k - 1].sum())))
                             for k in range(1, K + 1)])
        real = torch.ones(B, T, dtype=torch.bool, device=loss.device)
        if lengths is not None:
            real = torch.arange(T, device=loss.device).view(1, T) < lengths.view(B, 1)
        kl_sum = (kl * real).sum() if kl is not None else None
        frames = int(real.sum())
    total = per_k.mean() if reduction == "mean" else per_k.sum()
    if kl is not None:
        denom = frames if kl_reduction == "dims" else B * targets.shape[-1]
        total = total + beta * kl_sum / denom
    return total
