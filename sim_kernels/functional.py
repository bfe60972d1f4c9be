"""smooth_infonce(...): argument checks, backend choice and dispatch.

The reductions live here, on top of three per-anchor statistics every backend produces
(loss (K, B, T), correct (K, B, T), kl (B, T)); see sim_kernels/registry.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from . import _autocast, _transforms, registry
from .reference import accumulation_dtype, normalize_rows, steps_of
from .spec import ANCHOR_WINDOWS, KL_REDUCTIONS, REDUCTIONS, SCORES, LossSpec

__all__ = ["smooth_infonce", "smooth_infonce_with_metrics", "loss_and_metrics", "LossSpec", "REDUCTIONS",
           "KL_REDUCTIONS", "BACKENDS", "ANCHOR_WINDOWS", "SCORES"]

BACKENDS = registry.BACKEND_NAMES  # "auto" and every registered backend (a live view of the registry)
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def smooth_infonce(context, targets, weight, neg_idx, mu=None, logvar=None, beta=0.0,
                   kl_reduction="dims", reduction="mean", backend="auto", *, anchor_window="per_step",
                   score_scale=1.0, lengths=None, anchor_mask=None, first_step=1, score="bilinear"):
    """Smooth-InfoNCE loss (Denoodt et al., Smooth InfoMax, eq. 6: InfoNCE over K future steps with the
    bilinear score f_k = exp(z_{t+k}^T W_k c_t), plus beta * KL(N(mu, sigma^2) || N(0, I))), fused over all
    prediction steps.

    Args:
        context:  (B, T, Cc) float tensor, the context c[b, t].
        targets:  (B, T, Cz) float tensor, the targets z[b, t] (same dtype and device).
        weight:   (K, Cz, Cc) the bilinear maps; the score of target row r for anchor (b, t) at
                  step k is targets_flat[r] · (weight[k-1] @ context[b, t]); first_step + K - 1 < T.
                  None with score="dot" / "cosine" (then Cc == Cz and K = neg_idx.shape[0] for a 4-D neg_idx,
                  else 1): no W and no Cz x Cc product in the kernels.
        neg_idx:  int64 (K, B, T, N), or (B, T, N) shared over k: rows of targets.reshape(B*T, Cz), or -1
                  for "no negative here" (an excluded candidate scores -inf and gets no gradient: wav2vec 2.0's
                  negatives equal to the positive). Entries at t >= T-k (no positive) are ignored.
        mu, logvar: (B, T, Cz) posterior mean and log-variance, both or neither.
        beta:     weight of the KL term (0 gives InfoNCE / GIM).
        kl_reduction: "dims" (paper: mean over (b, t) of the channel sum) or
                  "time" (authors' code: mean over (b, c) of the time sum).
        reduction: "mean" (1/K sum over k of per-k anchor means) + beta*KL; "sum" (CPC: sum over k)
                  + beta*KL; "anchor_sum": the sum over every counted anchor and step, + beta*KL (wav2vec 2.0:
                  Hugging Face's cross-entropy summed over masked frames); "none": the (K, B, T) per-anchor
                  losses, 0 off the anchors, no KL term.
        backend:  "auto" (native kernel for the device and dtype if built, else Triton on CUDA,
                  else the reference with one warning), "native", "triton" or "reference".
        anchor_window: "per_step" (GIM's loss, Löwe et al.: anchors of step k are t < T-k, per-k means over
                  B*(T-k) anchors) or "common" (CPC_audio's criterion: t < T-K for every k, means
                  over B*(T-K); facebookresearch/CPC_audio cpc/criterion/criterion.py, windowSize =
                  seqSize - nPredicts). The kernels skip the anchors outside it in their one pass.
        score_scale: positive float multiplying every score, or "mean" = 1/Cz (CPC_audio scores with
                  the mean over channels, `(locC * candidates[k]).mean(dim=3)`). Applied as
                  weight * score_scale before the fused op (exact up to one rounding of W, and
                  differentiable): the same one-pass kernels on every backend.
                  CPC_audio's whole criterion: anchor_window="common", score_scale="mean",
                  reduction="sum", negatives shared over k ((B, T, N) neg_idx, sampler "cpc").
        lengths:  int64 (B,) tensor, 1 <= lengths[b] <= T, for padded batches of utterances of different
                  lengths: frames t >= lengths[b] are padding. Anchor (b, t) of step k counts only when its
                  positive t + k is a real frame (t < lengths[b] - k; - K with the common window), the per-k
                  means are over those anchors, and the KL is over real frames ("dims": mean over them).
                  The negatives' indices are the caller's: draw them from real frames (sample_negatives'
                  ``lengths``).
        anchor_mask: bool (B, T) tensor: only anchors with anchor_mask[b, t] count (e.g. wav2vec 2.0's
                  masked frames); combines with the window and lengths. A step left without anchors adds 0.
        first_step: int >= 0, the offset of step 1: the positive of step k is frame t + d_k with
                  d_k = first_step + k - 1, and the anchors of step k are t < T - d_k. 1 (default): the next
                  frame (CPC, GIM, SIM); 0: the anchor's own frame (wav2vec 2.0, whose positive is the quantised
                  target of the masked frame itself).
        score:    "bilinear" (default): z . (W_k c); "dot": z . c with weight=None; "cosine": the dot product of
                  the rows each divided by max(||row||_2, 1e-8), weight=None — torch.nn.functional.cosine_similarity
                  as Hugging Face's Wav2Vec2ForPreTraining.compute_contrastive_logits uses it; with score_scale =
                  1/temperature, its logits. The normalisation runs in PyTorch before the fused op (O(B*T*C)).

    Returns:
        A scalar (mean, sum) or a (K, B, T) tensor (none), float64 for float64 inputs and
        float32 otherwise.

    Under torch.autocast (CPU or CUDA, fp16 or bf16) the result is the same: inputs keep their
    dtype (a mix of floating dtypes is cast once to the widest), every backend accumulates in fp32
    and returns float32 (float64 for float64); see sim_kernels/_autocast.py.
    """
    spec = LossSpec(beta, kl_reduction, reduction, anchor_window, score, score_scale, first_step)
    loss, _ = _run(context, targets, weight, neg_idx, mu, logvar, spec, backend, False, None, lengths, anchor_mask)
    return loss


def smooth_infonce_with_metrics(context, targets, weight, neg_idx, mu=None, logvar=None, beta=0.0,
                                kl_reduction="dims", reduction="mean", backend="auto", window=None, *,
                                anchor_window="per_step", score_scale=1.0, lengths=None, anchor_mask=None,
                                first_step=1, score="bilinear"):
    """Same as smooth_infonce, and a dict of detached metric tensors (no host sync):
    ``nce`` (K,) per-step mean loss, ``accuracy`` (K,) per-step share of anchors whose positive
    outscores every negative, ``kl`` () the reduced KL without beta (0 without mu).

    ``window=(t_begin, t_end)`` restricts the anchors to t_begin <= t < t_end - d_k, with per-k
    means over B*(t_end - t_begin - d_k) anchors (GIM's subsampling; negatives still index all rows).
    """
    spec = LossSpec(beta, kl_reduction, reduction, anchor_window, score, score_scale, first_step)
    return _run(context, targets, weight, neg_idx, mu, logvar, spec, backend, True, window, lengths, anchor_mask)


def loss_and_metrics(context, targets, weight, neg_idx, mu, logvar, spec: LossSpec, backend="auto", window=None,
                     lengths=None, anchor_mask=None):
    """smooth_infonce_with_metrics with its options as one LossSpec (what SmoothInfoNCELoss calls)."""
    if not isinstance(spec, LossSpec):
        raise TypeError(f"spec must be a sim_kernels.LossSpec, got {type(spec).__name__}")
    return _run(context, targets, weight, neg_idx, mu, logvar, spec, backend, True, window, lengths, anchor_mask)


def _run(context, targets, weight, neg_idx, mu, logvar, spec, backend, metrics, window=None, lengths=None,
         anchor_mask=None):
    """Checks and dispatch, then either the per-anchor statistics reduced here (reduction="none" or no
    gradient needed) or the fused value-and-grad op with the reduction's weights known up front."""
    transformed = _transforms.active((context, targets, weight, mu, logvar))
    impl, (context, targets, weight, neg_idx, mu, logvar), (B, T, K), spec = _dispatch(
        context, targets, weight, neg_idx, mu, logvar, spec, backend, window)
    _check_masks(lengths, anchor_mask, B, T, context.device)
    acc = accumulation_dtype(context.dtype)
    anchors = _anchors(B, T, K, targets.shape[-1], spec, acc, context.device, lengths, anchor_mask)

    if transformed and not impl.plain_autograd:
        out, loss, correct, kl = _run_transformed(impl, context, targets, weight, neg_idx, mu, logvar, B, T, K, spec,
                                                  anchors)
        return out, (_metrics(loss, correct, kl, anchors) if metrics else None)
    needs_grad = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (context, targets, weight, mu, logvar))
    if spec.reduction == "none" or not needs_grad:
        loss, correct, kl = impl.fwd(context, targets, weight, neg_idx, mu, logvar, spec)
        out = _masked(loss, anchors) if spec.reduction == "none" else _reduce(loss, kl, anchors, spec)
    else:
        # Upstream weights are known now, so the kernel does forward and backward in one pass.
        loss_weight, kl_weight = _upstream_weights(anchors, spec, B, T, K, mu is not None)
        out, loss, correct, kl = impl.value_and_grad(context, targets, weight, neg_idx, mu, logvar, loss_weight,
                                                     kl_weight, spec)
    if not metrics:
        return out, None
    return out, _metrics(loss, correct, kl, anchors)


def _run_transformed(impl, context, targets, weight, neg_idx, mu, logvar, B, T, K, spec, anchors):
    """The fused backends under torch.func transforms or forward-mode AD (sim_kernels/_transforms.py):
    the same statistics through autograd.Functions that have jvp and vmap rules."""
    _transforms.refuse_second_order()
    call = _transforms.Call(impl.fwd, impl.value_and_grad, spec)
    if spec.reduction == "none":
        loss, correct, kl = _transforms.FusedPerAnchor.apply(context, targets, weight, mu, logvar, neg_idx, call)
        return _masked(loss, anchors), loss, correct, (kl if mu is not None else None)
    loss_weight, kl_weight = _upstream_weights(anchors, spec, B, T, K, mu is not None)
    out, loss, correct, kl, *_ = _transforms.FusedValue.apply(context, targets, weight, mu, logvar, neg_idx,
                                                             loss_weight, kl_weight, call)
    return out, loss, correct, (kl if mu is not None else None)


# ---- dispatch ------------------------------------------------------------------------------------

def _dispatch(context, targets, weight, neg_idx, mu, logvar, spec, backend, window):
    """Autocast promotion, every argument check, the backend choice, and the inputs as the backends take
    them: neg_idx (K, B, T, N) (a shared (B, T, N) expanded with stride 0), weight scaled by score_scale
    (without a weight: context scaled), rows normalised for score="cosine".
    Returns (backend, inputs, (B, T, K), spec with this call's anchor window)."""
    spec.check_weight(weight)
    if isinstance(context, torch.Tensor) and _autocast.enabled(context.device.type):
        # Under autocast: inputs keep their dtype; a mix is cast once to the widest (sim_kernels/_autocast.py).
        context, targets, weight, mu, logvar = _autocast.promote(context, targets, weight, mu, logvar)
    B, T, K, t0, t1 = _check(context, targets, weight, neg_idx, mu, logvar, backend, window, spec.first_step)
    spec = spec.window(t0, t1)
    impl = registry.choose(backend, context)
    if neg_idx.dim() == 3:
        neg_idx = neg_idx.unsqueeze(0).expand(K, -1, -1, -1)
    if impl.kernel_skips_index_check:
        _check_index_values(neg_idx, targets.shape[0] * T, spec)
    if spec.score == "cosine":
        context, targets = normalize_rows(context), normalize_rows(targets)
    scale = spec.scale(targets.shape[-1])
    if scale != 1.0:
        if weight is not None:
            weight = weight * scale  # s = scale * z.(W c) = z.((scale W) c)
        else:
            context = context * scale  # s = scale * z.c = z.(scale c)
    return impl, (context, targets, weight, neg_idx, mu, logvar), (B, T, K), spec


# ---- weighting -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Anchors:
    """Which anchors and frames one call counts (the reductions, the upstream weights and the metrics read it).

    valid:  (K, 1, T) bool (the anchor window alone) or (K, B, T) (with lengths / anchor_mask): anchor (b, t)
            of step k counts. The kernels already give 0 outside the window; ``masked`` says a mask on top
            must be applied to their per-anchor outputs.
    count:  (K,) anchors per step, in the accumulation dtype (at least 1: a step without anchors adds 0).
    frames: (B, T) 0/1 real frames for the KL, or None (every frame); kl_den its denominator.
    """
    valid: torch.Tensor
    count: torch.Tensor
    masked: bool
    frames: Optional[torch.Tensor]
    kl_den: object


def _anchors(B, T, K, Cz, spec, acc, dev, lengths=None, anchor_mask=None) -> _Anchors:
    """The anchors of step k: t0 <= t < t1 - shift_k (shift_k = d_k = first_step + k - 1, or d_K with the common
    window), and, when given, t < lengths[b] - shift_k (the positive t + d_k is a real frame) and anchor_mask[b, t]."""
    t0, t1, kl_reduction = spec.t_begin, spec.t_end, spec.kl_reduction
    steps = torch.arange(spec.first_step, spec.first_step + K, device=dev)  # d_k
    # the last anchor of step k: t1 - shift_k - 1
    shift = torch.full_like(steps, spec.shift(K, K)) if spec.common else steps
    t = torch.arange(T, device=dev)
    window = ((t >= t0) & (t.view(1, T) < (t1 - shift).view(K, 1))).view(K, 1, T)
    if lengths is None and anchor_mask is None:
        count = (B * (t1 - t0 - shift)).to(acc)  # anchors per step (K,), no device sync
        return _Anchors(window, count, False, None, _kl_denominator(kl_reduction, B, T, Cz))
    valid = window.expand(K, B, T)
    frames = None
    if lengths is not None:
        valid = valid & (t.view(1, 1, T) < (lengths.view(1, B, 1) - shift.view(K, 1, 1)))
        frames = (t.view(1, T) < lengths.view(B, 1)).to(acc)
    if anchor_mask is not None:
        valid = valid & anchor_mask.view(1, B, T)
    count = valid.sum(dim=(1, 2)).to(acc).clamp(min=1)
    kl_den = (frames.sum() if frames is not None else B * T) if kl_reduction == "dims" else B * Cz
    return _Anchors(valid, count, True, frames, kl_den)


def _upstream_weights(anchors, spec, B, T, K, has_kl):
    """loss_weight (K, B, T) and kl_weight (B, T) or None: d loss / d (per-anchor loss, per-frame KL)."""
    acc, beta = anchors.count.dtype, spec.beta
    if spec.reduction == "anchor_sum":
        scale = torch.ones_like(anchors.count)
    else:
        scale = (1.0 / anchors.count) / (K if spec.reduction == "mean" else 1)
    loss_weight = (anchors.valid.to(acc) * scale.view(K, 1, 1)).expand(K, B, T)
    kl_weight = None
    if has_kl:
        if anchors.frames is None:
            kl_weight = torch.full((B, T), beta / anchors.kl_den, dtype=acc, device=anchors.count.device)
        else:  # the real frames only
            kl_weight = anchors.frames * (beta / anchors.kl_den)
    return loss_weight, kl_weight


# ---- reductions and metrics ----------------------------------------------------------------------

def _masked(x, anchors):
    """Per-anchor outputs (K, B, T) with the anchors outside lengths / anchor_mask set to 0 (False)."""
    if not anchors.masked:
        return x
    return x & anchors.valid if x.dtype == torch.bool else x * anchors.valid.to(x.dtype)


def _kl_sum(kl, anchors):
    return (kl * anchors.frames).sum() if anchors.frames is not None else kl.sum()


def _reduce(loss, kl, anchors, spec):
    """reduction "mean" (1/K sum over k of per-k anchor means), "sum" (their sum) or "anchor_sum" (the sum over
    every counted anchor), + beta * reduced KL."""
    per_k = _masked(loss, anchors).sum(dim=(1, 2))
    if spec.reduction != "anchor_sum":
        per_k = per_k / anchors.count
    out = per_k.mean() if spec.reduction == "mean" else per_k.sum()
    if kl is not None:
        out = out + spec.beta * _kl_sum(kl, anchors) / anchors.kl_den
    return out


def _metrics(loss, correct, kl, anchors):
    """Detached metric tensors (no host sync): nce (K,), accuracy (K,), kl ()."""
    count = anchors.count
    with torch.no_grad():
        return {
            "nce": _masked(loss.detach(), anchors).sum(dim=(1, 2)) / count,
            "accuracy": _masked(correct, anchors).sum(dim=(1, 2)).to(count.dtype) / count,
            "kl": (_kl_sum(kl.detach(), anchors) / anchors.kl_den) if kl is not None
            else torch.zeros((), dtype=count.dtype, device=count.device),
        }


# ---- checks --------------------------------------------------------------------------------------

def _kl_denominator(kl_reduction, B, T, Cz):
    return B * T if kl_reduction == "dims" else B * Cz


def _check_masks(lengths, anchor_mask, B, T, device):
    """lengths: int64 (B,) with 1 <= lengths[b] <= T; anchor_mask: bool (B, T); both on context's device."""
    if lengths is not None:
        if not isinstance(lengths, torch.Tensor) or lengths.dtype != torch.int64 or lengths.shape != (B,):
            raise ValueError(f"lengths must be an int64 tensor of shape (B,) = ({B},), got "
                             f"{_describe(lengths)}")
        if lengths.device != device:
            raise ValueError(f"lengths must be on the device of context ({device}), got {lengths.device}")
        if not torch.compiler.is_compiling() and not bool(((lengths >= 1) & (lengths <= T)).all()):
            raise ValueError(f"lengths: every length must lie in [1, T={T}], got {lengths.tolist()}")
    if anchor_mask is not None:
        if not isinstance(anchor_mask, torch.Tensor) or anchor_mask.dtype != torch.bool or anchor_mask.shape != (B, T):
            raise ValueError(f"anchor_mask must be a bool tensor of shape (B, T) = ({B}, {T}), got "
                             f"{_describe(anchor_mask)}")
        if anchor_mask.device != device:
            raise ValueError(f"anchor_mask must be on the device of context ({device}), got {anchor_mask.device}")


def _describe(x):
    return f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _check_index_values(neg_idx, rows, spec):
    """Used entries of (K, B, T, N) neg_idx must lie in [0, rows). Reads the data with one host sync for
    all K steps (one any() over the whole tensor); the message is the kernels' (csrc/checks.h). Under
    torch.func.vmap the values are read through the batch (sim_kernels/_transforms.py: plain_batches)."""
    if torch.compiler.is_compiling():
        return
    K, B, T, N = neg_idx.shape
    t0, t1, first_step = spec.t_begin, spec.t_end, spec.first_step
    batches = _transforms.plain_batches(neg_idx)  # (M, K, B, T, N), M = 1 outside vmap
    dev = batches.device
    t = torch.arange(T, device=dev).view(1, T)
    last = t1 - (torch.full((K, 1), spec.shift(K, K), device=dev) if spec.common
                 else torch.arange(first_step, first_step + K, device=dev).view(K, 1))
    used = ((t >= t0) & (t < last)).view(1, K, 1, T, 1)
    bad = used & ((batches < -1) | (batches >= rows))  # -1: no negative (excluded)
    if not bool(bad.any()):  # the one sync
        return
    m, k, b, tt, n = bad.nonzero()[0].tolist()  # error path only
    where = f"neg_idx[{k}, {b}, {tt}, {n}]" + (f" of vmapped element {m}" if batches.shape[0] > 1 else "")
    raise ValueError(f"neg_idx: every used value (anchors t_begin <= t < t_end - d_k) must lie in [0, B*T) = "
                     f"[0, {rows}) or be -1 (no negative), found {int(batches[m, k, b, tt, n])} at {where}")


def _tensor(name, x, ndim):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(x.shape)}")


def _is_size(x) -> bool:
    """An int, or a symbolic one (torch.export's non-strict tracing and torch.compile(dynamic=True) give
    sizes as torch.SymInt); a bool is not a size."""
    return isinstance(x, (int, torch.SymInt)) and not isinstance(x, bool)


def _refuse_jit_trace():
    if torch.jit.is_tracing():
        raise RuntimeError(
            "smooth_infonce does not support torch.jit.trace: its anchor window and per-step anchor counts are "
            "Python numbers that a trace would freeze at the example's length (silently wrong at any other "
            "length). Use torch.export.export(model, args, dynamic_shapes=...) or torch.compile instead")


def _check(context, targets, weight, neg_idx, mu, logvar, backend, window, first_step=1):
    _refuse_jit_trace()
    _tensor("context", context, 3)
    _tensor("targets", targets, 3)
    if weight is not None:
        _tensor("weight", weight, 3)
    if not isinstance(neg_idx, torch.Tensor):
        raise TypeError(f"neg_idx must be a torch.Tensor, got {type(neg_idx).__name__}")
    for name, x in (("context", context), ("targets", targets), ("weight", weight)):
        if x is None:
            continue
        if x.dtype not in _FLOATS:
            raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}")
    for name, x in (("targets", targets), ("weight", weight)):
        if x is None:
            continue
        if x.dtype != context.dtype:
            raise TypeError(f"{name} must have the dtype of context ({context.dtype}), got {x.dtype}")
        if x.device != context.device:
            raise ValueError(f"{name} must be on the device of context ({context.device}), got {x.device}")
    B, T, Cc = context.shape
    if B * T == 0:
        raise ValueError(f"context must have B*T > 0, got shape {tuple(context.shape)}")
    if targets.shape[1] != T or targets.shape[0] < B:
        raise ValueError(f"targets must have shape (B', T, Cz) = (B' >= {B}, {T}, Cz): the anchors' own {B} "
                         f"utterances first, then any extra ones for negatives, got {tuple(targets.shape)}")
    Cz = targets.shape[2]
    if Cc == 0 or Cz == 0:
        raise ValueError(f"context and targets need at least one channel, got Cc={Cc}, Cz={Cz}")
    if weight is not None:
        K = weight.shape[0]
        if weight.shape[1:] != (Cz, Cc) or K < 1:
            raise ValueError(f"weight must have shape (K, Cz, Cc) = (K >= 1, {Cz}, {Cc}), got {tuple(weight.shape)}")
    else:
        if Cc != Cz:
            raise ValueError(f"context and targets must have the same channels for a score without weight "
                             f"(score='dot' / 'cosine'), got Cc={Cc}, Cz={Cz}")
        K = steps_of(None, neg_idx)
        if K < 1:
            raise ValueError(f"neg_idx must have K >= 1 steps, got shape {tuple(neg_idx.shape)}")
    t0, t1 = (0, T) if window is None else tuple(window)
    if not (_is_size(t0) and _is_size(t1) and 0 <= t0 < t1 <= T):
        raise ValueError(f"window must be (t_begin, t_end) with 0 <= t_begin < t_end <= T={T}, got {window}")
    if first_step + K - 1 >= t1 - t0:
        what = "weight: K (prediction steps)" if first_step == 1 else f"first_step + K - 1 (first_step={first_step})"
        raise ValueError(f"{what} must be < T={t1 - t0} so every step has an anchor, got K={K}")
    if neg_idx.dtype != torch.int64:
        raise TypeError(f"neg_idx must be int64, got {neg_idx.dtype}")
    if neg_idx.device != context.device:
        raise ValueError(f"neg_idx must be on the device of context ({context.device}), got {neg_idx.device}")
    ok = (neg_idx.dim() == 4 and neg_idx.shape[:3] == (K, B, T)) or (neg_idx.dim() == 3 and neg_idx.shape[:2] == (B, T))
    if not ok or neg_idx.shape[-1] < 1:
        raise ValueError(f"neg_idx must have shape (K, B, T, N) = ({K}, {B}, {T}, N) or (B, T, N) = ({B}, {T}, N) "
                         f"with N >= 1, got {tuple(neg_idx.shape)}")
    if (mu is None) != (logvar is None):
        raise ValueError("mu and logvar must be given together (both or neither), got only "
                         + ("mu" if logvar is None else "logvar"))
    if mu is not None:
        for name, x in (("mu", mu), ("logvar", logvar)):
            _tensor(name, x, 3)
            if x.shape != (B, T, Cz):
                raise ValueError(f"{name} must have shape (B, T, Cz) = ({B}, {T}, {Cz}), got {tuple(x.shape)}")
            if x.dtype != context.dtype:
                raise TypeError(f"{name} must have the dtype of context ({context.dtype}), got {x.dtype}")
            if x.device != context.device:
                raise ValueError(f"{name} must be on the device of context ({context.device}), got {x.device}")
    check_backend(backend)
    return B, T, K, t0, t1


def check_backend(backend):
    """``backend`` is "auto" or a registered name (also checked by SmoothInfoNCELoss at construction)."""
    if not registry.is_name(backend):
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
