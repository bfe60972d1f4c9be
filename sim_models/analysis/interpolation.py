"""Interpolation between the latents of two utterances: z(α) = (1 − α) z_a + α z_b, per frame, decoded.

Outputs a PNG (waveform and spectrogram per step) and one wav with every step in order, separated
by short silences. The wav is written with soundfile as 16-bit PCM; if the decoded audio peaks
above 0.99 the whole file is scaled down by one common factor (the relative loudness of the steps
is kept), otherwise it is written unscaled.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from sim_models.analysis.plotting import new_figure, save_figure, spectrogram_db, stack_waveforms

__all__ = ["interpolate_latents", "plot_interpolation", "write_interpolation_wav"]


@torch.no_grad()
def interpolate_latents(decoder, z_a: torch.Tensor, z_b: torch.Tensor, steps: int = 7) -> dict:
    """z_a, z_b: (T, C). Returns {"alphas": (S,), "latents": (S, T, C), "waveforms": (S, L)}."""
    if z_a.dim() != 2 or z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b must be (T, C) latents of the same shape, got {tuple(z_a.shape)} and "
                         f"{tuple(z_b.shape)}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    alphas = torch.linspace(0, 1, steps)
    z = (1 - alphas)[:, None, None] * z_a + alphas[:, None, None] * z_b
    return {"alphas": alphas, "latents": z, "waveforms": decoder(z)}


def plot_interpolation(result: dict, path, title: str = "", sample_rate: int = 16000, originals=None):
    """Left: the decoded waveforms, α = 0 at the bottom to 1 at the top (``originals`` (x_a, x_b), if given,
    in grey behind the first and last). Right: their spectrograms side by side, α left to right."""
    waves, alphas = result["waveforms"], result["alphas"]
    s = waves.shape[0]
    fig = new_figure(11, max(3.0, 0.4 * s + 1.4))
    ax_w, ax_s = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.6 / fig.get_figheight(), top=1 - 0.55 / fig.get_figheight(),
                        wspace=0.12)
    stack_waveforms(ax_w, waves, sample_rate, None if originals is None else {0: originals[0], s - 1: originals[1]})
    ax_w.set_yticks(range(s), [f"α={float(a):.2f}" for a in alphas], fontsize=7)
    specs = [spectrogram_db(w) for w in waves]
    top = max(float(x.max()) for x in specs)
    gap = np.full((specs[0].shape[0], 2), np.nan)
    img = np.concatenate([part for x in specs for part in (x, gap)][:-1], axis=1)
    ax_s.imshow(img, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                extent=(0, img.shape[1], 0, sample_rate / 2), interpolation="nearest")
    width = specs[0].shape[1] + 2
    ax_s.set_xticks([i * width + specs[0].shape[1] / 2 for i in range(s)], [f"{float(a):.2f}" for a in alphas], fontsize=7)
    ax_s.set_xlabel("α", fontsize=8)
    ax_s.set_ylabel("Hz", fontsize=8)
    ax_s.tick_params(labelsize=7)
    ax_s.set_title("spectrograms (dB)", fontsize=9)
    fig.suptitle(title or "interpolation", fontsize=10)
    return save_figure(fig, path)


def write_interpolation_wav(result: dict, path, sample_rate: int = 16000, gap_seconds: float = 0.15) -> Path:
    """All steps in order, ``gap_seconds`` of silence between them, 16-bit PCM."""
    gap = np.zeros(int(gap_seconds * sample_rate), dtype=np.float32)
    parts = []
    for w in result["waveforms"]:
        parts += [w.detach().float().numpy(), gap]
    audio = np.concatenate(parts[:-1])
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sample_rate, subtype="PCM_16")
    return path
