"""Decoders: one per module, transposed convolutions that mirror the encoder (the paper's §4.3).

The decoder of stage m maps that stage's frozen representation back to audio through the mirror
image of every conv layer from stage m down to the input:

* each encoder ``Conv1d(c_in, c_out, k, s, p)`` becomes ``ConvTranspose1d(c_out, c_in, k, s, p,
  output_padding)``, in reverse order, with a ReLU after every layer but the last (the waveform
  is linear);
* a module's ``MaxPool1d(q)`` becomes ``ConvTranspose1d(c, c, q, stride=q)`` (learned upsampling);
* ``output_padding`` is chosen per layer so that the decoder of a ``cfg.data.length``-sample input
  returns exactly that many samples (for another length the output is cropped or zero-padded at
  the end to the requested ``length``);
* the first layer takes the stage's width: C_m, or the GRU width for the GRU module (its decoder
  mirrors all conv layers: the GRU keeps the frame rate);
* the decoder of module 1 (stage 0) starts with ``extra_first_module_layers`` (default 2)
  length-preserving ``ConvTranspose1d(C, C, 3, stride 1, padding 1)`` + ReLU layers, as in the
  paper, which gives that otherwise shallow decoder more capacity. (The paper does not say where
  the two layers sit; we put them on the latent side.)

Shapes: ``ModuleDecoder.forward(z (B, T, C)) -> (B, L)``, z in the sequence layout of
``ModuleOutput.representation``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..config import ModelConfig

__all__ = ["DecoderConfig", "ModuleDecoder", "decoder_layer_plan", "build_decoders", "conv_stage_of",
           "stage_widths", "downsampling"]


@dataclass
class DecoderConfig:
    """Decoder architecture and training settings.

    loss: "mel" (MSE of log-mel spectrograms, the thesis' choice), "mse" (MSE on the waveform) or
    "mse+mel" (their sum, the mel term weighted by ``mel_weight``). Log-mel = log(mel + log_eps)
    with torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, hop_length, n_mels), power 2.
    """
    loss: str = "mel"
    n_fft: int = 4096
    hop_length: int = 2048
    n_mels: int = 128
    log_eps: float = 1e-5
    mel_weight: float = 1.0
    lr: float = 1e-3
    epochs: int = 20
    batch_size: int = 16
    seed: int = 0
    extra_first_module_layers: int = 2

    def __post_init__(self):
        if self.loss not in ("mel", "mse", "mse+mel"):
            raise ValueError(f"decoder loss must be 'mel', 'mse' or 'mse+mel', got {self.loss!r}")
        for name in ("n_fft", "hop_length", "n_mels", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"decoder {name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 0 or self.lr <= 0 or self.log_eps <= 0:
            raise ValueError(f"decoder epochs must be >= 0, lr > 0 and log_eps > 0, got {self.epochs}, {self.lr}, "
                             f"{self.log_eps}")

    def to_dict(self) -> dict:
        return asdict(self)


def downsampling(cfg: ModelConfig) -> int:
    """Samples per output frame of the last conv module: product of strides and max-pools."""
    f = 1
    for s in cfg.strides:
        f *= s
    for q in cfg.maxpool:
        f *= q if q else 1
    return f


def conv_stage_of(cfg: ModelConfig, stage: int) -> int:
    """The last conv stage a decoder of ``stage`` mirrors (the GRU stage mirrors the last conv stage)."""
    n_conv = len(cfg.modules)
    n_stages = n_conv + (1 if cfg.ar_hidden else 0)
    if not 0 <= stage < n_stages:
        raise ValueError(f"stage must be in [0, {n_stages}), got {stage}")
    return min(stage, n_conv - 1)


def stage_widths(cfg: ModelConfig) -> list:
    """Output channels of every stage (conv modules, then the GRU if any)."""
    widths = [cfg.channels[ids[-1]] for ids in cfg.modules]
    return widths + ([cfg.ar_hidden] if cfg.ar_hidden else [])


def decoder_layer_plan(cfg: ModelConfig, stage: int, length: int, extra_first_module_layers: int = 2) -> list:
    """The decoder of ``stage`` as [(in_channels, out_channels, kernel, stride, padding, output_padding)].

    ``length``: the audio length whose frame count the decoder inverts exactly."""
    last = conv_stage_of(cfg, stage)
    # forward lengths through the encoder: lens[i] = input length of conv layer i; pool_in[j] = length before pool j
    lens, pool_in, t = [], {}, length
    for j, ids in enumerate(cfg.modules):
        for i in ids:
            lens.append(t)
            t = (t + 2 * cfg.paddings[i] - cfg.kernel_sizes[i]) // cfg.strides[i] + 1
            if t < 1:
                raise ValueError(f"length={length} is too short for conv layer {i} of the encoder")
        if cfg.maxpool[j]:
            pool_in[j] = t
            t = t // cfg.maxpool[j]
    width = stage_widths(cfg)[stage]
    plan = []
    if stage == 0:
        plan += [(width, width, 3, 1, 1, 0)] * extra_first_module_layers
    c = width
    for j in range(last, -1, -1):
        if cfg.maxpool[j]:
            q = cfg.maxpool[j]
            c_out = cfg.channels[cfg.modules[j][-1]]
            plan.append((c, c_out, q, q, 0, pool_in[j] % q))
            c = c_out
        for i in reversed(cfg.modules[j]):
            k, s, p = cfg.kernel_sizes[i], cfg.strides[i], cfg.paddings[i]
            t_out = (lens[i] + 2 * p - k) // s + 1
            op = lens[i] - ((t_out - 1) * s - 2 * p + k)
            c_out = cfg.channels[i - 1] if i > 0 else 1
            plan.append((c, c_out, k, s, p, op))
            c = c_out
    return plan


class ModuleDecoder(nn.Module):
    """forward(z (B, T, C)) -> audio (B, L); L = ``length`` (or the natural output length when None)."""

    def __init__(self, plan, length: int | None, stage: int):
        super().__init__()
        layers = []
        for j, (cin, cout, k, s, p, op) in enumerate(plan):
            layers.append(nn.ConvTranspose1d(cin, cout, kernel_size=k, stride=s, padding=p, output_padding=op))
            if j < len(plan) - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        self.in_channels, self.length, self.stage = plan[0][0], length, stage
        self.plan = [tuple(p) for p in plan]

    def forward(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        if z.dim() != 3 or z.shape[2] != self.in_channels:
            raise ValueError(f"z must be (B, T, {self.in_channels}) for the decoder of stage {self.stage}, "
                             f"got {tuple(z.shape)}")
        x = self.net(z.transpose(1, 2)).squeeze(1)
        length = self.length if length is None else length
        if length is not None:
            x = nn.functional.pad(x[:, :length], (0, max(0, length - x.shape[1])))
        return x


def build_decoders(model_cfg: ModelConfig, length: int, dcfg: DecoderConfig | None = None, seed: int | None = None) -> list:
    """One ModuleDecoder per stage, initialised from ``seed`` (default dcfg.seed)."""
    dcfg = dcfg or DecoderConfig()
    n_stages = len(model_cfg.modules) + (1 if model_cfg.ar_hidden else 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(dcfg.seed if seed is None else seed)
        out = []
        for m in range(n_stages):
            plan = decoder_layer_plan(model_cfg, m, length, dcfg.extra_first_module_layers)
            out.append(ModuleDecoder(plan, length, m))
    return out
