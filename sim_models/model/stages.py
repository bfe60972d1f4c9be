"""The building blocks: a conv encoder module (probabilistic or deterministic) and the GRU module.

Each stage type describes itself (``Stage``): ``conv_input`` (input layout), ``out_frames(t)`` (frame
arithmetic), ``kind`` / ``layer_name`` (display names), ``target_channels``, ``kl_weighted`` and
``loss_inputs(out, prev_z)`` (how it feeds its Smooth-InfoNCE loss). Nothing else in sim_models asks which
class a stage is: a new stage type is one ``Stage`` subclass here plus one line in
``greedy.build_stages``.

Layouts: audio and conv activations are (B, C, L) ("conv layout"); losses and the GRU take
(B, T, C) ("sequence layout"). ``forward`` returns a ``StageOutput`` in sequence layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sim_models.config import DETERMINISTIC_HEADS
from sim_models.model import draws

__all__ = ["StageOutput", "Stage", "ConvStage", "GRUStage"]


@dataclass
class StageOutput:
    """z: (B, T, C) the module's output (a sample in training for probabilistic modules, else mu).
    mu, logvar: (B, T, C) or None for deterministic modules.
    context: (B, T, C) the sample the loss uses as context (z, or an independent second sample)."""
    z: torch.Tensor
    mu: torch.Tensor | None = None
    logvar: torch.Tensor | None = None
    context: torch.Tensor | None = None

    @property
    def representation(self) -> torch.Tensor:
        """What downstream tasks see: mu for probabilistic modules, z otherwise. (B, T, C)."""
        return self.mu if self.mu is not None else self.z


class Stage(nn.Module):
    """A stage of a GreedyModel: forward(x, generator=None) -> StageOutput in sequence layout (B, T, C).

    What a stage says about itself (class attributes unless noted):

    * ``kind``: display name of the type ("conv", "GRU"), as in "module 2 (conv)";
    * ``layer_name`` (instance): the layer it taps ("conv4", "gru"), so tables of different configs line up;
    * ``conv_input``: input layout, True for (B, C, L) (conv layout), False for (B, T, C) (sequence layout);
    * ``targets_from_previous``: True when the loss scores the previous stage's z (so it cannot be stage 0);
    * ``out_frames(t)``: frames out for t frames (samples) in;
    * ``in_channels`` / ``out_channels`` / ``target_channels`` (instance): the loss's target dimension is the
      previous stage's width when ``targets_from_previous``, else its own;
    * ``kl_weighted``: whether its loss weighs a KL term with model.beta (False: beta 0, no posterior);
    * ``loss_inputs(out, prev_z)``: the positional tensors of SmoothInfoNCELoss (context, targets[, mu, logvar]).
    """

    kind = "stage"
    conv_input = True
    targets_from_previous = False
    kl_weighted = True

    def out_frames(self, t: int) -> int:
        raise NotImplementedError

    def input_from(self, prev_z: torch.Tensor) -> torch.Tensor:
        """This stage's input from the previous stage's z (B, T, C): (B, C, T) for conv layout, else unchanged."""
        return prev_z.transpose(1, 2) if self.conv_input else prev_z

    def loss_inputs(self, out: StageOutput, prev_z: torch.Tensor | None) -> tuple:
        """(context, targets, mu, logvar) for SmoothInfoNCELoss; prev_z: the previous stage's z (B, T, C_in) or None."""
        raise NotImplementedError


class ConvStage(Stage):
    """An encoder module built from a ``StageConfig`` (sim_models/config/encoder_spec.py): its layers in order
    (Conv1d + ReLU, or MaxPool1d), then (probabilistic) the parallel mu and logvar heads
    Conv1d(C, C, head_kernel, stride 1, head_padding), no ReLU (paper Table 1: 1×1; thesis Tables 4.1/4.2: 3-wide).

    forward(x (B, C_in, L), generator=None) -> StageOutput with T = ``out_frames(L)`` frames.
    Probabilistic, sampling: z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) from ``generator``; with
    ``independent_context_sample`` a second eps' gives the context (the SIM authors' code), else the
    context is z itself (the paper's text). Probabilistic, not sampling: z = context = mu. A module samples
    in training mode, and in eval mode when called with ``sample=True`` (the SIM authors' evaluation: their
    ``get_latents`` samples whatever the mode, so their decoders, δ and probes saw samples).

    Deterministic (GIM / CPC), by ``deterministic_head``:

    * ``"relu"``: the last layer's output (after ReLU) is z and the context: Löwe et al.'s GIM;
    * ``"linear"``: a Conv1d(C, C, head_kernel, padding head_padding) without activation on top of it, the
      same layer as the mu head (the SIM authors' ``CNNEncoder.forward`` always applies its mu head, so their
      GIM outputs ``c = encoder_mu(x)``, and their CPC inserts such linear 1×1 layers at the module
      boundaries, ``cpc_audio_de_boer_extra_layers``). A linear output has no preferred basis.
    """

    kind = "conv"
    conv_input = True      # takes (B, C, L); the loss scores its own sample (targets = z)

    def __init__(self, in_channels: int, spec, probabilistic: bool = True,
                 independent_context_sample: bool = False, logvar_bias_init: float | None = None,
                 layer_name: str | None = None, deterministic_head: str = "relu"):
        """layer_name: "conv<n>", n = this module's last conv layer counted over the whole encoder (default:
        counted within this module)."""
        super().__init__()
        self.in_channels = in_channels
        self.layer_name = layer_name or f"conv{len(spec.convs())}"
        layers, c = [], in_channels
        for x in spec.layers:
            if x.type == "conv":
                layers += [nn.Conv1d(c, x.channels, kernel_size=x.kernel, stride=x.stride, padding=x.padding), nn.ReLU()]
                c = x.channels
            else:
                layers.append(nn.MaxPool1d(x.kernel, stride=x.stride, padding=x.padding))
        self.body = nn.Sequential(*layers)  # parameter names body.<i>.* as before the layer-list format
        self.spec = spec
        self.out_channels = self.target_channels = c  # it scores its own sample z
        self.probabilistic = probabilistic
        self.independent_context_sample = independent_context_sample
        if probabilistic:
            self.mu_head = nn.Conv1d(c, c, kernel_size=spec.head_kernel, padding=spec.head_padding)
            self.logvar_head = nn.Conv1d(c, c, kernel_size=spec.head_kernel, padding=spec.head_padding)
            if logvar_bias_init is not None:  # start with sigma = exp(init / 2) instead of ~1
                nn.init.constant_(self.logvar_head.bias, logvar_bias_init)
        elif deterministic_head == "linear":
            self.out_head = nn.Conv1d(c, c, kernel_size=spec.head_kernel, padding=spec.head_padding)
        elif deterministic_head != "relu":
            raise ValueError(f"deterministic_head must be one of {DETERMINISTIC_HEADS}, got {deterministic_head!r}")
        self.deterministic_head = None if probabilistic else deterministic_head

    def out_frames(self, t: int) -> int:
        """Frames out for ``t`` frames (samples) in: conv / pool arithmetic, plus the heads when probabilistic."""
        return self.spec.out_frames(t, heads=self.probabilistic or self.deterministic_head == "linear")

    def loss_inputs(self, out: StageOutput, prev_z=None) -> tuple:
        """Its context sample against its own sample z, with mu and logvar (None when deterministic)."""
        return out.context, out.z, out.mu, out.logvar

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                sample: bool | None = None) -> StageOutput:
        """x (B, C_in, L) -> StageOutput (B, T, C). sample: None = sample in training mode only; True / False
        force it (eval-time sampling, the SIM authors' evaluation); ignored by deterministic modules."""
        h = self.body(x)
        if not self.probabilistic:
            z = (self.out_head(h) if self.deterministic_head == "linear" else h).transpose(1, 2)
            return StageOutput(z=z, context=z)
        mu = self.mu_head(h).transpose(1, 2)
        logvar = self.logvar_head(h).transpose(1, 2)
        if not (self.training if sample is None else sample):
            return StageOutput(z=mu, mu=mu, logvar=logvar, context=mu)
        std = torch.exp(0.5 * logvar)
        z = mu + std * _normal(mu, generator)
        ctx = mu + std * _normal(mu, generator) if self.independent_context_sample else z
        return StageOutput(z=z, mu=mu, logvar=logvar, context=ctx)


def _normal(like: torch.Tensor, generator):
    """N(0, I) noise shaped and typed like ``like``. For fp16 / bf16 ``like`` (train.autocast) it is drawn in fp32
    and cast: the same draws, and the same generator stream after them (the negatives), as an fp32 run."""
    low = like.dtype in (torch.float16, torch.bfloat16)
    # Under global negatives (sim_models/model/draws.py) the draw is the global batch's, of which this process keeps its rows.
    shape = (draws.global_size(like.shape[0]), *like.shape[1:])
    eps = torch.randn(shape, generator=generator, device=like.device, dtype=torch.float32 if low else like.dtype)
    return draws.share(eps).to(like.dtype)


class GRUStage(Stage):
    """A one-layer GRU (deterministic, as in the paper). forward(z (B, T, C_in)) -> StageOutput,
    z = context = the GRU outputs (B, T, hidden)."""

    kind = "GRU"
    layer_name = "gru"
    conv_input = False     # takes (B, T, C); the loss scores the previous module's z against the GRU outputs
    targets_from_previous = True
    kl_weighted = False    # deterministic: no KL term

    def out_frames(self, t: int) -> int:
        return t

    def loss_inputs(self, out: StageOutput, prev_z=None) -> tuple:
        """The GRU outputs (context) against the previous module's z (targets); no mu / logvar."""
        if prev_z is None:
            raise ValueError("prev_z: the GRU module's loss needs the previous module's z (B, T, C_in), got None")
        return out.context, prev_z, None, None

    def __init__(self, in_channels: int, hidden: int):
        super().__init__()
        self.in_channels = in_channels
        self.gru = nn.GRU(in_channels, hidden, batch_first=True)
        self.out_channels = hidden
        self.target_channels = in_channels  # the previous stage's z

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None, sample: bool | None = None) -> StageOutput:
        """z (B, T, C_in) -> StageOutput (B, T, hidden); ``sample`` is accepted for a uniform stage call and unused."""
        c, _ = self.gru(z)
        return StageOutput(z=c, context=c)
