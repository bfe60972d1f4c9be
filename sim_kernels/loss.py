"""SmoothInfoNCELoss and InfoNCELoss: drop-in nn.Modules that own the K bilinear maps W_k."""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from . import _autocast
from .functional import _tensor, check_backend, loss_and_metrics
from .spec import LossSpec
from .sampling import SAMPLERS, sample_negatives

__all__ = ["SmoothInfoNCELoss", "InfoNCELoss"]


class SmoothInfoNCELoss(nn.Module):
    """Smooth-InfoNCE (Smooth InfoMax, eq. 6): InfoNCE over K future steps plus beta * KL(N(mu, sigma^2) || N(0, I)).

    Args:
        context_dim:   Cc, channels of the context c.
        target_dim:    Cz, channels of the targets z (default: context_dim).
        prediction_steps: K (paper: 10; thesis: 12).
        negative_samples: N (paper: 10).
        beta:          KL weight (paper: 0.01; thesis: 0.0035; 0 = GIM).
        sampler:       "gim" | "within_sequence" | "cpc" (see sim_kernels.sampling).
        kl_reduction:  "dims" (paper) | "time" (authors' code).
        reduction:     "mean" | "sum" (CPC) | "none" (per-anchor (K, B, T), no KL).
        subsample_window: GIM's random crop: when T > window, context and targets are cropped to a
                       random window of that many frames (start uniform in [0, T - window), as in
                       their code) while negatives are still drawn from the whole sequence.
                       None (default) disables it; GIM used 128.
        backend:       "auto" | "native" | "triton" | "reference".
        anchor_window: "per_step" (GIM: t < T-k at step k) | "common" (CPC_audio: t < T-K for every k).
        score_scale:   float multiplying every score, or "mean" = 1/Cz (CPC_audio's mean over channels).
                       CPC_audio's criterion: sampler="cpc", anchor_window="common", score_scale="mean",
                       reduction="sum", beta=0 (see smooth_infonce and the README's compatibility table).
        first_step:    offset of step 1: the positive of step k is frame t + first_step + k - 1 (1: CPC, GIM,
                       SIM; 0: the anchor's own frame, wav2vec 2.0).
        score:         "bilinear" (the K maps W_k, the paper's) | "dot" | "cosine" (no weight; then
                       target_dim == context_dim and the module has no parameters; see smooth_infonce).

    Parameters:
        weight (K, Cz, Cc) (None for score="dot" / "cosine"): W_k = weight[k-1]. Initialised like GIM's predictor, an
        nn.Linear(Cc, K*Cz, bias=False): uniform in [-1/sqrt(Cc), 1/sqrt(Cc)]. (weight.view(K*Cz, Cc)
        is that Linear's weight, so their checkpoints load by reshaping.)

    forward(context (B, T, Cc), targets (B, T, Cz), mu=None, logvar=None, *, generator=None,
            neg_idx=None, return_metrics=False) -> loss, or (loss, metrics) with metrics a dict of
            detached tensors: "nce" (K,), "accuracy" (K,), "kl" (). Nothing syncs with the host.
    """

    def __init__(self, context_dim: int, target_dim: int | None = None, prediction_steps: int = 10,
                 negative_samples: int = 10, beta: float = 0.01, sampler: str = "gim", kl_reduction: str = "dims",
                 reduction: str = "mean", subsample_window: int | None = None, backend: str = "auto", *,
                 anchor_window: str = "per_step", score_scale: float | str = 1.0, first_step: int = 1,
                 score: str = "bilinear"):
        super().__init__()
        # every loss option, checked once and kept as one record (sim_kernels/spec.py)
        self.spec = LossSpec(beta, kl_reduction, reduction, anchor_window, score, score_scale, first_step)
        check_backend(backend)
        target_dim = context_dim if target_dim is None else target_dim
        if score != "bilinear" and target_dim != context_dim:
            raise ValueError(f"target_dim must equal context_dim={context_dim} for score={score!r} (no weight), "
                             f"got {target_dim}")
        for name, v in (("context_dim", context_dim), ("target_dim", target_dim),
                        ("prediction_steps", prediction_steps), ("negative_samples", negative_samples)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sampler == "gim" and first_step != 1:
            raise ValueError(f"sampler='gim' lays its shared permutations out for first_step=1 (GIM's anchors "
                             f"t < T - k); with first_step={first_step} use sampler='within_sequence' or 'cpc'")
        if subsample_window is not None and (not isinstance(subsample_window, int) or subsample_window <= prediction_steps):
            raise ValueError(f"subsample_window must be None or an int > prediction_steps={prediction_steps}, "
                             f"got {subsample_window!r}")
        self.context_dim, self.target_dim = context_dim, target_dim
        self.prediction_steps, self.negative_samples = prediction_steps, negative_samples
        self.sampler, self.subsample_window, self.backend = sampler, subsample_window, backend
        if score == "bilinear":
            self.weight = nn.Parameter(torch.empty(prediction_steps, target_dim, context_dim))
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    # the options, read from the spec
    beta = property(lambda self: self.spec.beta)
    kl_reduction = property(lambda self: self.spec.kl_reduction)
    reduction = property(lambda self: self.spec.reduction)
    anchor_window = property(lambda self: self.spec.anchor_window)
    score_scale = property(lambda self: self.spec.score_scale)
    first_step = property(lambda self: self.spec.first_step)
    score = property(lambda self: self.spec.score)

    def reset_parameters(self):
        if self.weight is None:
            return
        bound = 1.0 / math.sqrt(self.context_dim)
        nn.init.uniform_(self.weight, -bound, bound)

    def extra_repr(self):
        return (f"context_dim={self.context_dim}, target_dim={self.target_dim}, K={self.prediction_steps}, "
                f"N={self.negative_samples}, beta={self.beta}, sampler={self.sampler!r}, "
                f"kl_reduction={self.kl_reduction!r}, reduction={self.reduction!r}, "
                f"subsample_window={self.subsample_window}, backend={self.backend!r}, "
                f"anchor_window={self.anchor_window!r}, score_scale={self.score_scale!r}, "
                f"first_step={self.first_step}, score={self.score!r}")

    def window(self, T: int, generator: torch.Generator | None = None):
        """The anchor window (t_begin, t_end) of this call: GIM's random crop, or the whole sequence."""
        W = self.subsample_window
        if W is None or T <= W:
            return None
        start = int(torch.randint(0, T - W, (), generator=generator).item())  # CPU RNG, no device sync
        return (start, start + W)

    def forward(self, context, targets, mu=None, logvar=None, *, generator=None, neg_idx=None, return_metrics=False,
                lengths=None, anchor_mask=None):
        """The loss of a batch; ``lengths`` (int64 (B,)) for padded batches (negatives then come from real
        frames only) and ``anchor_mask`` (bool (B, T)) as in smooth_infonce."""
        _tensor("context", context, 3)  # the functional's check: B and T are needed before it runs
        B, T, _ = context.shape
        window = self.window(T, generator)
        if neg_idx is None:
            neg_idx = self.sample(B, T, window, generator, context.device, lengths=lengths)
        return self.loss_with(context, targets, neg_idx, mu, logvar, window=window, return_metrics=return_metrics,
                              lengths=lengths, anchor_mask=anchor_mask)

    def sample(self, batch: int, time: int, window, generator=None, device=None, *, lengths=None):
        """This loss's negatives (its ``sampler``) for a batch of ``batch`` utterances of ``time`` frames:
        (K, B, T, N) or (B, T, N) int64 rows of targets.reshape(B*T, Cz), drawn from ``generator``, on ``device``;
        real frames only with ``lengths``."""
        gen_device = device if generator is None else generator.device
        if lengths is not None:
            lengths = lengths.to(gen_device)
        return sample_negatives(self.sampler, batch, time, self.negative_samples, self.prediction_steps,
                                generator=generator, device=gen_device, window=window, lengths=lengths).to(device)

    def loss_with(self, context, targets, neg_idx, mu=None, logvar=None, *, window=None, return_metrics=False,
                  lengths=None, anchor_mask=None):
        """The loss with given negatives and anchor window (no draws): smooth_infonce_with_metrics with this
        module's weight and options. ``targets`` may hold more utterances than context (the anchors' own
        first; sim_kernels.distributed.gather_targets)."""
        # Under autocast the functional casts a mix of dtypes once to the widest (sim_kernels/_autocast.py):
        # an fp32 W then lifts bf16 activations, rather than being rounded down to them here.
        weight = self.weight
        if weight is not None and not _autocast.enabled(context.device.type):
            weight = weight.to(context.dtype)
        spec = self.spec if mu is not None else dataclasses.replace(self.spec, beta=0.0)
        loss, metrics = loss_and_metrics(context, targets, weight, neg_idx, mu, logvar, spec, self.backend, window,
                                         lengths, anchor_mask)
        return (loss, metrics) if return_metrics else loss


class InfoNCELoss(SmoothInfoNCELoss):
    """The deterministic beta = 0 variant (GIM, CPC): forward(context, targets) without mu/logvar."""

    def __init__(self, context_dim: int, target_dim: int | None = None, prediction_steps: int = 10,
                 negative_samples: int = 10, sampler: str = "gim", reduction: str = "mean",
                 subsample_window: int | None = None, backend: str = "auto", *, anchor_window: str = "per_step",
                 score_scale: float | str = 1.0):
        super().__init__(context_dim, target_dim, prediction_steps, negative_samples, beta=0.0, sampler=sampler,
                         reduction=reduction, subsample_window=subsample_window, backend=backend,
                         anchor_window=anchor_window, score_scale=score_scale)

    def forward(self, context, targets, *, generator=None, neg_idx=None, return_metrics=False, lengths=None,
                anchor_mask=None):
        return super().forward(context, targets, generator=generator, neg_idx=neg_idx, return_metrics=return_metrics,
                               lengths=lengths, anchor_mask=anchor_mask)
