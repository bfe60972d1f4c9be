"""Training the per-module decoders on frozen representations, their losses, saving and loading.

The encoder never changes: every batch is encoded once under ``no_grad`` in eval mode and every stage's
decoder takes one Adam step on its own loss. ``representation="sample"`` (the SIM authors' decoders)
encodes every batch with a fresh ε (one seeded ``torch.Generator`` per epoch, advanced batch by batch:
reproducible), so the decoder learns from samples z = μ + σ·ε and learns to ignore units at the prior;
"mean" trains it on μ (representations.py).

Losses (``DecoderConfig.loss``), for audio x (B, L) and reconstruction x̂ (B, L):

    "mse"      mean((x̂ − x)²)
    "mel"      mean((log(M x̂ + ε) − log(M x + ε))²), M = MelSpectrogram(n_fft, hop, n_mels), power 2
    "mse+mel"  "mse" + mel_weight · "mel"

Saved as RUN_DIR/analysis/decoders.pt (atomic write, tensors and plain containers only):
``{"decoder_config", "length", "sample_rate", "run_steps", "history", "state_dicts": [...]}``.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torchaudio
from torch import nn

from sim_models.analysis.decoders import DecoderConfig, build_decoders
from sim_models.analysis.representations import encode_all_stages
from sim_models.config import ModelConfig
from sim_models.rundir.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["LogMel", "decoder_loss", "train_decoders", "decoder_convergence", "reconstruction_errors", "save_decoders", "load_decoders"]


class LogMel(nn.Module):
    """forward(x (B, L)) -> log-mel spectrogram (B, n_mels, frames), frames = 1 + L // hop (centred STFT)."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 4096, hop_length: int = 2048, n_mels: int = 128,
                 eps: float = 1e-5):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                                                        n_mels=n_mels, power=2.0)
        self.eps, self.n_fft = eps, n_fft

    @classmethod
    def from_config(cls, dcfg: DecoderConfig, sample_rate: int) -> "LogMel":
        return cls(sample_rate, dcfg.n_fft, dcfg.hop_length, dcfg.n_mels, dcfg.log_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] <= self.n_fft // 2:
            raise ValueError(f"audio of {x.shape[-1]} samples is too short for the mel spectrogram's n_fft={self.n_fft} "
                             f"(needs > n_fft / 2 for the centred STFT's reflection padding); lower n_fft")
        return torch.log(self.mel(x) + self.eps)


def decoder_loss(x_hat: torch.Tensor, x: torch.Tensor, dcfg: DecoderConfig, logmel: LogMel | None) -> torch.Tensor:
    """x_hat, x: (B, L). Returns the scalar loss selected by ``dcfg.loss`` (see module docstring)."""
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat and x must have the same shape, got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    loss = x_hat.new_zeros(())
    if dcfg.loss in ("mse", "mse+mel"):
        loss = loss + nn.functional.mse_loss(x_hat, x)
    if dcfg.loss in ("mel", "mse+mel"):
        w = dcfg.mel_weight if dcfg.loss == "mse+mel" else 1.0
        loss = loss + w * nn.functional.mse_loss(logmel(x_hat), logmel(x))
    return loss


def _check_audio(audio, length):
    if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
        raise ValueError(f"audio must be an (N, L) tensor, got {getattr(audio, 'shape', type(audio))}")
    if audio.shape[0] == 0:
        raise ValueError("audio is empty: no utterances to train the decoders on")
    if length is not None and audio.shape[1] != length:
        raise ValueError(f"audio must have L = {length} samples per utterance, got {audio.shape[1]}")


def train_decoders(model, audio: torch.Tensor, dcfg: DecoderConfig | None = None, sample_rate: int = 16000,
                   progress: bool = False, representation: str = "mean") -> tuple:
    """Train one decoder per stage of the frozen ``model`` on ``audio`` (N, L), on ``representation``.

    Returns (decoders: list of ModuleDecoder in eval mode, history: {"loss": [[per-stage mean loss] per epoch],
    "seconds": float, "representation": str})."""
    dcfg = dcfg or DecoderConfig()
    _check_audio(audio, None)
    length = audio.shape[1]
    decoders = build_decoders(model.cfg, length, dcfg)
    logmel = LogMel.from_config(dcfg, sample_rate) if dcfg.loss != "mse" else None
    opts = [torch.optim.Adam(d.parameters(), lr=dcfg.lr) for d in decoders]
    n, bs = audio.shape[0], min(dcfg.batch_size, audio.shape[0])
    history, t0 = {"loss": [], "representation": representation}, time.time()
    for d in decoders:
        d.train()
    for epoch in range(dcfg.epochs):
        g = torch.Generator().manual_seed(dcfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g)
        eps_gen = torch.Generator().manual_seed(dcfg.seed * 1_000_003 + epoch + 500_009)
        sums, count = [0.0] * len(decoders), 0
        for i in range(0, n - bs + 1, bs):  # drop the last partial batch
            x = audio[perm[i:i + bs]]
            reps = encode_all_stages(model, x, representation, eps_gen)
            for m, (d, opt) in enumerate(zip(decoders, opts)):
                loss = decoder_loss(d(reps[m]), x, dcfg, logmel)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sums[m] += float(loss.detach())
            count += 1
        history["loss"].append([s / max(count, 1) for s in sums])
        if progress:
            print(f"  decoders epoch {epoch + 1}/{dcfg.epochs}: "
                  + " ".join(f"m{m + 1}={v:.4f}" for m, v in enumerate(history["loss"][-1])), flush=True)
    history["seconds"] = time.time() - t0
    for d in decoders:
        d.eval()
        for p in d.parameters():
            p.requires_grad_(False)
    return decoders, history


def decoder_convergence(history: dict, window: float = 0.1) -> list:
    """Per stage {"final_loss", "epochs", "relative_change"}: the last epoch's mean training loss, and how much it
    fell over the last ``window`` share of the epochs, (loss w epochs earlier − final) / final with
    w = max(1, round(window · epochs)); ≈ 0 once converged (None with a single epoch). [] when no epoch ran."""
    losses = history.get("loss") or []
    if not losses:
        return []
    w = max(1, int(round(window * len(losses))))
    out = []
    for m in range(len(losses[-1])):
        final = losses[-1][m]
        before = losses[-1 - w][m] if len(losses) > w else None
        out.append({"final_loss": final, "epochs": len(losses),
                    "relative_change": None if before is None or final == 0 else (before - final) / abs(final)})
    return out


@torch.no_grad()
def reconstruction_errors(model, decoders, audio: torch.Tensor, dcfg: DecoderConfig, sample_rate: int = 16000,
                          batch_size: int = 32, representation: str = "mean", seed: int = 0) -> list:
    """Per stage {"mse": waveform MSE, "mel": log-mel MSE} on ``audio`` (N, L), averaged over utterances
    (``representation="sample"``: one draw, ε from Generator(seed))."""
    _check_audio(audio, None)
    logmel = LogMel.from_config(dcfg, sample_rate)
    gen = torch.Generator().manual_seed(seed)
    sums = [{"mse": 0.0, "mel": 0.0} for _ in decoders]
    for i in range(0, audio.shape[0], batch_size):
        x = audio[i:i + batch_size]
        reps = encode_all_stages(model, x, representation, gen)
        for m, d in enumerate(decoders):
            x_hat = d(reps[m])
            sums[m]["mse"] += float(((x_hat - x) ** 2).mean(dim=1).sum())
            sums[m]["mel"] += float(((logmel(x_hat) - logmel(x)) ** 2).mean(dim=(1, 2)).sum())
    return [{k: v / audio.shape[0] for k, v in s.items()} for s in sums]


def save_decoders(path, decoders, dcfg: DecoderConfig, length: int, sample_rate: int, run_steps: int,
                  history: dict) -> Path:
    state = {"decoder_config": dcfg.to_dict(), "length": int(length), "sample_rate": int(sample_rate),
             "run_steps": int(run_steps), "history": history, "state_dicts": [d.state_dict() for d in decoders]}
    return save_checkpoint(state, path)


def load_decoders(path, model_cfg: ModelConfig) -> tuple:
    """Returns (decoders in eval mode, DecoderConfig, meta dict with length / sample_rate / run_steps / history)."""
    state = load_checkpoint(path)
    dcfg = DecoderConfig(**state["decoder_config"])
    decoders = build_decoders(model_cfg, state["length"], dcfg)
    if len(decoders) != len(state["state_dicts"]):
        raise ValueError(f"{path}: holds {len(state['state_dicts'])} decoders, the model has {len(decoders)} stages")
    for d, sd in zip(decoders, state["state_dicts"]):
        d.load_state_dict(sd)
        d.eval()
        for p in d.parameters():
            p.requires_grad_(False)
    meta = {k: state[k] for k in ("length", "sample_rate", "run_steps", "history")}
    return decoders, dcfg, meta
