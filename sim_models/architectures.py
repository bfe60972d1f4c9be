"""GreedyModel: conv modules (+ a GRU module), one loss per module, gradient isolation between them.

Built from a ``ModelConfig`` (see sim_models/config.py). Each module m trains on its own loss:

* conv module: ``SmoothInfoNCELoss(context = its context sample, targets = its sample z, mu, logvar)``
  (beta = 0 and no mu/logvar for deterministic modules: GIM);
* GRU module: ``SmoothInfoNCELoss(beta=0)`` scoring the previous module's z (targets) against the GRU
  outputs (context), no mu/logvar.

Module m's input is the previous module's z, ``detach()``ed, so no gradient crosses a module boundary.
With ``end_to_end`` (CPC) nothing is detached and only the last module has a loss.
"""
from __future__ import annotations

import torch
from torch import nn

from sim_kernels import SmoothInfoNCELoss

from .config import ModelConfig
from .modules import ARModule, ConvModule, ModuleOutput

__all__ = ["GreedyModel", "StageResult"]


class StageResult:
    """The loss (scalar tensor) and metrics (dict of detached tensors: nce (K,), accuracy (K,), kl ()) of one module."""

    def __init__(self, index: int, loss: torch.Tensor, metrics: dict):
        self.index, self.loss, self.metrics = index, loss, metrics


class GreedyModel(nn.Module):
    """stages: nn.ModuleList of ConvModule ... [ARModule]; losses: nn.ModuleDict {str(stage index): loss}.

    forward / encode(audio (B, L) or (B, 1, L)) -> list of ModuleOutput, one per stage ((B, T, C_m) each).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        stages, c = [], 1
        for m, layer_ids in enumerate(cfg.modules):
            layers = [(cfg.kernel_sizes[i], cfg.strides[i], cfg.paddings[i], cfg.channels[i]) for i in layer_ids]
            stages.append(ConvModule(c, layers, cfg.maxpool[m], cfg.probabilistic, cfg.independent_context_sample,
                                     cfg.logvar_bias_init))
            c = stages[-1].out_channels
        if cfg.ar_hidden:
            stages.append(ARModule(c, cfg.ar_hidden))
        self.stages = nn.ModuleList(stages)
        self.losses = nn.ModuleDict()
        with_loss = [len(stages) - 1] if cfg.end_to_end else range(len(stages))
        for m in with_loss:
            st = stages[m]
            is_ar = isinstance(st, ARModule)
            target_dim = stages[m - 1].out_channels if is_ar else st.out_channels
            if is_ar and m == 0:
                raise ValueError("model: a GRU module needs a conv module before it")
            self.losses[str(m)] = SmoothInfoNCELoss(
                st.out_channels, target_dim, prediction_steps=cfg.prediction_steps,
                negative_samples=cfg.negative_samples, beta=0.0 if is_ar else cfg.beta, sampler=cfg.sampler,
                kl_reduction=cfg.kl_reduction, reduction=cfg.reduction, subsample_window=cfg.subsample_window,
                backend=cfg.loss_backend)

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def training_units(self) -> list:
        """Groups of stage indices that share an optimiser: one per module, or all of them end to end."""
        return [list(range(self.num_stages))] if self.cfg.end_to_end else [[m] for m in range(self.num_stages)]

    def unit_parameters(self, unit) -> list:
        params = []
        for m in unit:
            params += list(self.stages[m].parameters())
            if str(m) in self.losses:
                params += list(self.losses[str(m)].parameters())
        return params

    @staticmethod
    def _as_conv_input(audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 2:
            audio = audio.unsqueeze(1)
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"audio must be (B, L) or (B, 1, L), got {tuple(audio.shape)}")
        return audio

    def _next_input(self, prev: ModuleOutput, stage) -> torch.Tensor:
        """The input of ``stage`` from the previous stage's output: z (B, T, C), detached unless end to end,
        as (B, C, T) for a conv stage."""
        h = prev.z if self.cfg.end_to_end else prev.z.detach()
        return h.transpose(1, 2) if isinstance(stage, ConvModule) else h

    def forward(self, audio: torch.Tensor, generator: torch.Generator | None = None, upto: int | None = None) -> list:
        return self.encode(audio, generator, upto)

    def encode(self, audio, generator=None, upto=None) -> list:
        """ModuleOutputs of stages 0..upto (all by default), detaching between stages unless end to end."""
        h, outs = self._as_conv_input(audio), []
        last = self.num_stages - 1 if upto is None else upto
        for m in range(last + 1):
            st = self.stages[m]
            if m > 0:
                h = self._next_input(outs[-1], st)
            outs.append(st(h, generator))
        return outs

    def losses_for(self, audio, active, generator=None) -> list:
        """Losses of the stages in ``active`` (list of indices). Stages before min(active) run frozen
        under no_grad (sequential mode); stages after max(active) are not run.

        Returns a list of StageResult, in stage order."""
        active = sorted(active)
        first, last = active[0], active[-1]
        outs = []
        h = self._as_conv_input(audio)
        results = []
        for m in range(last + 1):
            st = self.stages[m]
            if m > 0:
                h = self._next_input(outs[-1], st)
            with torch.set_grad_enabled(torch.is_grad_enabled() and m >= first):
                out = st(h, generator)
            outs.append(out)
            if m in active and str(m) in self.losses:
                results.append(self._stage_loss(m, outs, generator))
        return results

    def _stage_loss(self, m: int, outs, generator) -> StageResult:
        loss_fn, out = self.losses[str(m)], outs[m]
        if isinstance(self.stages[m], ARModule):
            prev = outs[m - 1].z if self.cfg.end_to_end else outs[m - 1].z.detach()
            loss, metrics = loss_fn(out.context, prev, generator=generator, return_metrics=True)
        else:
            loss, metrics = loss_fn(out.context, out.z, out.mu, out.logvar, generator=generator, return_metrics=True)
        return StageResult(m, loss, metrics)


def count_frames(cfg: ModelConfig, length: int) -> list:
    """Frames T after each stage for an input of ``length`` samples (conv arithmetic, no compute)."""
    frames, t = [], length
    for m, ids in enumerate(cfg.modules):
        for i in ids:
            t = (t + 2 * cfg.paddings[i] - cfg.kernel_sizes[i]) // cfg.strides[i] + 1
        if cfg.maxpool[m]:
            t = t // cfg.maxpool[m]
        frames.append(t)
    if cfg.ar_hidden:
        frames.append(t)
    return frames
