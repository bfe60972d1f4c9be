"""GreedyModel: conv modules (+ a GRU module), one loss per module, gradient isolation between them.

Built from a ``ModelConfig`` (see sim_models/config/). Each module m trains on its own loss:

* conv module: ``SmoothInfoNCELoss(context = its context sample, targets = its sample z, mu, logvar)``
  (beta = 0 and no mu/logvar for deterministic modules: GIM);
* GRU module: ``SmoothInfoNCELoss(beta=0)`` scoring the previous module's z (targets) against the GRU
  outputs (context), no mu/logvar.

Module m's input is the previous module's z, ``detach()``ed, so no gradient crosses a module boundary.
With ``end_to_end`` (CPC) nothing is detached and only the last module has a loss: the other stages are
taps (the CPC config's taps sit at the module-equivalent layers conv2, conv4, conv5 of the paper's cut).
With ``objective="supervised"`` (end to end) the last stage's loss is a linear classifier on its
time-averaged output (sim_models/model/supervised.py) and the batch carries labels.

The losses are objectives (sim_models/model/objectives.py): ``build_objective`` picks each stage's, and each
says how it is fed (``stage_loss``: the stage's loss_inputs, or its representation and the labels).

Stages describe themselves (modules.Stage): ``build_stages(cfg)`` is the one place that turns a config
into stage objects, and ``stage_names(stages, style)`` the one naming helper: "module" ("module 2 (conv)",
the analyses), "number" ("2 (conv)", the evaluation tables) or "layer" ("conv4", the layer it taps, so
tables of different configs line up by layer rather than by stage index; ``stage_layer_names(cfg)``).
"""
from __future__ import annotations

import torch
from torch import nn

from sim_models.config import Config, ModelConfig
from sim_models.model.objectives import build_objective
from sim_models.model.stages import ConvStage, GRUStage, StageOutput

__all__ = ["GreedyModel", "StageResult", "build_model", "build_stages", "count_frames", "describe_stages",
           "stage_names", "stage_layer_names", "STAGE_NAME_STYLES"]


class StageResult:
    """The loss (scalar tensor) and metrics (dict of detached tensors: nce (K,), accuracy (K,), kl ()) of one module."""

    def __init__(self, index: int, loss: torch.Tensor, metrics: dict):
        self.index, self.loss, self.metrics = index, loss, metrics

    def stats(self) -> torch.Tensor:
        """(4,) float32 on the loss's device, detached: loss, mean nce, kl, mean accuracy (a log row's values),
        for sums and averages over batches or processes."""
        kl = torch.as_tensor(self.metrics["kl"], device=self.loss.device)
        return torch.stack([self.loss.detach().float().reshape(()), self.metrics["nce"].float().mean(),
                            kl.float().reshape(()), self.metrics["accuracy"].float().mean()])

    @classmethod
    def from_stats(cls, index: int, stats: torch.Tensor) -> "StageResult":
        """The StageResult of stage ``index`` whose ``stats()`` are ``stats`` (4,)."""
        return cls(index, stats[0], {"nce": stats[1:2], "kl": stats[2], "accuracy": stats[3:4]})


class GreedyModel(nn.Module):
    """stages: nn.ModuleList of ConvStage ... [GRUStage]; losses: nn.ModuleDict {str(stage index): loss}.

    forward / encode(audio (B, L) or (B, 1, L)) -> list of StageOutput, one per stage ((B, T, C_m) each).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        stages = build_stages(cfg)
        self.stages = nn.ModuleList(stages)
        self.losses = nn.ModuleDict()
        last = len(stages) - 1
        for m in ([last] if cfg.end_to_end else range(len(stages))):
            self.losses[str(m)] = build_objective(cfg, stages[m], m, last)

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

    def _next_input(self, prev: StageOutput, stage) -> torch.Tensor:
        """The input of ``stage`` from the previous stage's output: z (B, T, C), detached unless end to end,
        as (B, C, T) for a conv stage."""
        return stage.input_from(prev.z if self.cfg.end_to_end else prev.z.detach())

    def forward(self, audio: torch.Tensor, generator: torch.Generator | None = None, upto: int | None = None) -> list:
        return self.encode(audio, generator, upto)

    def run_stages(self, audio, stages, generator=None, *, active=(), labels=None, outs: list | None = None,
                   frozen_before: int | None = None, sample: bool | None = None) -> list:
        """The one stage loop: run ``stages`` (ascending stage indices) in order and return the StageResults of
        those in ``active`` that have a loss, in stage order.

        audio: (B, L) or (B, 1, L), the input of stage 0 (unused when stages start later).
        outs: ModuleOutputs of the stages before ``stages[0]`` (entries a stage does not read may be None);
              appended to in place, one per stage run. Stage m's input is outs[m - 1].z, detached unless end to end.
        frozen_before: stages below this index run under no_grad (sequential mode); None: none frozen.
        labels: (B,) int64, needed (only) by a supervised objective.
        sample: None = probabilistic stages sample in training mode only; True = they sample in eval mode too
                (the SIM authors' evaluation), each stage's sample feeding the next (modules.ConvStage)."""
        outs = [] if outs is None else outs
        results = []
        for m in stages:
            st = self.stages[m]
            h = self._as_conv_input(audio) if m == 0 else self._next_input(outs[m - 1], st)
            with torch.set_grad_enabled(torch.is_grad_enabled() and (frozen_before is None or m >= frozen_before)):
                outs.append(st(h, generator, sample=sample))
            if m in active and str(m) in self.losses:
                results.append(self._stage_loss(m, outs, generator, labels))
        return results

    def encode(self, audio, generator=None, upto=None, *, sample: bool | None = None) -> list:
        """ModuleOutputs of stages 0..upto (all by default), detaching between stages unless end to end.
        sample=True: probabilistic stages output samples z = mu + sigma * eps (eps from ``generator``) even in
        eval mode, and the next stage reads that sample; ``StageOutput.z`` is then the sample, ``.mu`` the mean."""
        outs = []
        self.run_stages(audio, range(self.num_stages if upto is None else upto + 1), generator, outs=outs,
                        sample=sample)
        return outs

    def losses_for(self, audio, active, generator=None, labels=None) -> list:
        """Losses of the stages in ``active`` (list of indices). Stages before min(active) run frozen
        under no_grad (sequential mode); stages after max(active) are not run.
        labels: (B,) int64 class indices, needed (only) by a supervised objective.

        Returns a list of StageResult, in stage order."""
        active = sorted(active)
        return self.run_stages(audio, range(active[-1] + 1), generator, active=active, labels=labels,
                               frozen_before=active[0])

    def _stage_loss(self, m: int, outs, generator, labels=None) -> StageResult:
        """Stage m's loss, fed as its objective says (``stage_loss``, sim_models/model/objectives.py)."""
        prev = None if m == 0 else (outs[m - 1].z if self.cfg.end_to_end else outs[m - 1].z.detach())
        loss, metrics = self.losses[str(m)].stage_loss(self.stages[m], outs[m], prev, labels=labels, generator=generator)
        return StageResult(m, loss, metrics)


def build_model(cfg: Config) -> GreedyModel:
    """The model of ``cfg`` with its initial weights, on the CPU: a function of ``cfg.train.seed`` only (the global
    generator is forked, so the caller's draws are untouched). The trainer's start, the random-init baseline of
    the probes and every loaded run (sim_models/rundir/load.py) build it here."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        return GreedyModel(cfg.model)


def build_stages(cfg: ModelConfig) -> list:
    """The stage objects of ``cfg``, in order: a ConvStage per ``cfg.encoder`` entry, then the GRUStage (GRU)
    when ``cfg.ar_hidden``. The one place a config becomes stages (a new stage type is added here)."""
    stages, c, convs = [], 1, 0
    for spec in cfg.encoder:
        convs += len(spec.convs())
        stages.append(ConvStage(c, spec, cfg.probabilistic, cfg.independent_context_sample, cfg.logvar_bias_init,
                                 layer_name=f"conv{convs}", deterministic_head=cfg.deterministic_head))
        c = stages[-1].out_channels
    if cfg.ar_hidden:
        stages.append(GRUStage(c, cfg.ar_hidden))
    return stages


def describe_stages(cfg: ModelConfig) -> list:
    """build_stages(cfg) on the meta device (no memory, no draws from the global generator): for descriptions."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        return build_stages(cfg)


STAGE_NAME_STYLES = ("module", "number", "layer")


def stage_names(stages, style: str = "module") -> list:
    """One name per stage. stages: a GreedyModel, a ModelConfig or a list of Stage objects.

    style "module": "module 1 (conv)", ... "module 4 (GRU)" (paper numbering, 1-based; the analyses);
          "number": "1 (conv)", ... (the evaluation tables);
          "layer":  "conv2", "conv4", "conv5", "gru" (the layer each stage taps)."""
    if style not in STAGE_NAME_STYLES:
        raise ValueError(f"style must be one of {STAGE_NAME_STYLES}, got {style!r}")
    if isinstance(stages, GreedyModel):
        stages = list(stages.stages)
    elif isinstance(stages, ModelConfig):
        stages = describe_stages(stages)
    if style == "layer":
        return [st.layer_name for st in stages]
    prefix = "module " if style == "module" else ""
    return [f"{prefix}{m + 1} ({st.kind})" for m, st in enumerate(stages)]


def count_frames(cfg: ModelConfig, length: int) -> list:
    """Frames T after each stage for an input of ``length`` samples (each stage's ``out_frames``: conv / pool
    arithmetic, heads included for probabilistic modules; the GRU keeps T; no compute).
    sim-paper: 10240 -> [511, 129, 64, 64]; vgim-thesis: 10240 -> [54, 13]."""
    frames, t = [], length
    for st in describe_stages(cfg):
        t = st.out_frames(t)
        frames.append(t)
    return frames


def stage_layer_names(cfg: ModelConfig) -> list:
    """``stage_names(cfg, "layer")``: "conv<n>" for a conv module (n = its last conv layer, counted from 1
    over the whole encoder), "gru" for the GRU module. sim-paper, gim, cpc: ["conv2", "conv4", "conv5", "gru"];
    vgim-thesis: ["conv2", "conv4"]; tiny: ["conv2", "conv5", "gru"]."""
    return stage_names(cfg, "layer")
