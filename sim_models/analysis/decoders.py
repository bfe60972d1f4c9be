"""Decoders: one per module, transposed convolutions that mirror the encoder (the paper's §4.3).

The decoder of stage m maps that stage's frozen representation back to audio through the mirror
image of every conv layer from stage m down to the input:

* each encoder ``Conv1d(c_in, c_out, k, s, p)`` becomes ``ConvTranspose1d(c_out, c_in, k, s, p,
  output_padding)``, in reverse order, with a ReLU after every layer but the last (the waveform
  is linear);
* a module's ``MaxPool1d(k, s, p)`` becomes ``ConvTranspose1d(c, c, k, s, p, output_padding)`` (learned
  upsampling); mu heads that change the frame count (the thesis' Conv(3, 1, 2)) are mirrored the same way;
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
``StageOutput.representation``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from sim_models.config import ModelConfig

__all__ = ["DecoderConfig", "DECODER_PRESETS", "decoder_preset", "ModuleDecoder", "decoder_layer_plan", "build_decoders", "conv_stage_of",
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


# Named decoder recipes. "project": the defaults above (log-mel loss, lr 1e-3, batch 16). "authors": the SIM
# authors' Table 3 decoders (``ACML-2024`` branch: README ``decoder_loss=0`` = MSE on the waveform, Adam 2e-4,
# batch 64, 200 epochs, trained on fresh samples of the encoder every batch); their architecture is ours.
DECODER_PRESETS = {
    "project": {},
    "authors": {"loss": "mse", "lr": 2e-4, "batch_size": 64, "epochs": 200},
}


def decoder_preset(name: str, epochs: int | None = None, **overrides) -> DecoderConfig:
    """The DecoderConfig of preset ``name`` ("project" | "authors"), ``epochs`` (the authors train 200, to
    convergence; a budget may train fewer: the final loss is reported with the run) and any other field overridden."""
    if name not in DECODER_PRESETS:
        raise ValueError(f"decoder preset must be one of {tuple(DECODER_PRESETS)}, got {name!r}")
    kw = dict(DECODER_PRESETS[name]) | overrides
    if epochs is not None:
        kw["epochs"] = int(epochs)
    return DecoderConfig(**kw)


def downsampling(cfg: ModelConfig) -> int:
    """Samples per output frame of the last conv module: product of the strides of every conv and max-pool layer."""
    f = 1
    for spec in cfg.encoder:
        for layer in spec.layers:
            f *= layer.stride
    return f


def conv_stage_of(cfg: ModelConfig, stage: int) -> int:
    """The last conv stage a decoder of ``stage`` mirrors (the GRU stage mirrors the last conv stage)."""
    n_conv = len(cfg.encoder)
    n_stages = n_conv + (1 if cfg.ar_hidden else 0)
    if not 0 <= stage < n_stages:
        raise ValueError(f"stage must be in [0, {n_stages}), got {stage}")
    return min(stage, n_conv - 1)


def stage_widths(cfg: ModelConfig) -> list:
    """Output channels of every stage (conv modules, then the GRU if any)."""
    widths = [spec.convs()[-1].channels for spec in cfg.encoder]
    return widths + ([cfg.ar_hidden] if cfg.ar_hidden else [])


def _heads_change_length(cfg: ModelConfig, spec) -> bool:
    return cfg.probabilistic and (spec.head_kernel, spec.head_padding) != (1, 0)


def decoder_layer_plan(cfg: ModelConfig, stage: int, length: int, extra_first_module_layers: int = 2) -> list:
    """The decoder of ``stage`` as [(in_channels, out_channels, kernel, stride, padding, output_padding)].

    Mirrors, module by module in reverse, every layer of ``cfg.encoder`` (conv and max-pool alike), and
    the mu head when it changes the frame count (a head wider than 1 or padded, as in the thesis).
    ``length``: the audio length whose frame count the decoder inverts exactly."""
    last = conv_stage_of(cfg, stage)
    # forward through the encoder: per module, the (layer, input length, input channels) of each layer
    walk, t, c = [], length, 1
    for j, spec in enumerate(cfg.encoder):
        steps = []
        for layer in spec.layers:
            t_out = layer.out_frames(t)
            if t_out < 1:
                raise ValueError(f"length={length} is too short for module {j + 1}'s {layer.type} layer")
            steps.append((layer.kernel, layer.stride, layer.padding, t, c))
            t, c = t_out, layer.channels if layer.type == "conv" else c
        if _heads_change_length(cfg, spec):
            steps.append((spec.head_kernel, 1, spec.head_padding, t, c))
            t = t + 2 * spec.head_padding - spec.head_kernel + 1
        walk.append(steps)
    width = stage_widths(cfg)[stage]
    plan = []
    if stage == 0:
        plan += [(width, width, 3, 1, 1, 0)] * extra_first_module_layers
    c = width
    for j in range(last, -1, -1):
        for k, s, p, t_in, c_in in reversed(walk[j]):
            t_out = (t_in + 2 * p - k) // s + 1
            op = t_in - ((t_out - 1) * s - 2 * p + k)
            plan.append((c, c_in, k, s, p, op))
            c = c_in
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
    n_stages = len(model_cfg.encoder) + (1 if model_cfg.ar_hidden else 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(dcfg.seed if seed is None else seed)
        out = []
        for m in range(n_stages):
            plan = decoder_layer_plan(model_cfg, m, length, dcfg.extra_first_module_layers)
            out.append(ModuleDecoder(plan, length, m))
    return out
