"""Matplotlib helpers. Figures are built with ``matplotlib.figure.Figure`` and saved through the Agg
canvas, so nothing here selects or touches a global (pyplot) backend or opens a window."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["new_figure", "save_figure", "spectrum_db", "spectrogram_db", "stack_waveforms", "stack_spectra",
           "VOWEL_COLOURS"]

VOWEL_COLOURS = ("tab:red", "tab:green", "tab:blue", "tab:orange", "tab:purple", "tab:brown")


def new_figure(width: float, height: float):
    """A matplotlib Figure on an Agg canvas (no constrained layout: it costs seconds per figure on a busy CPU)."""
    # deferred heavy optional import (matplotlib, the `models` extra) on the next two lines: the analyses import cheaply
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def spectrum_db(waveforms: torch.Tensor, sample_rate: int) -> tuple:
    """waveforms (S, L) -> (spectra (S, L // 2 + 1) in dB, freqs (L // 2 + 1,) in Hz): |rFFT| of the
    Hann-windowed clip, 20 log10(|X| + 1e-8)."""
    w = waveforms.detach().float()
    win = torch.hann_window(w.shape[-1], dtype=w.dtype)
    mag = torch.fft.rfft(w * win, dim=-1).abs()
    return 20 * torch.log10(mag + 1e-8), torch.fft.rfftfreq(w.shape[-1], 1.0 / sample_rate)


def spectrogram_db(waveform: torch.Tensor, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """waveform (L,) -> (n_fft // 2 + 1, frames) power spectrogram in dB, for plots only."""
    w = waveform.detach().float()
    n_fft = min(n_fft, max(16, w.shape[-1] // 2))
    spec = torch.stft(w, n_fft=n_fft, hop_length=max(1, min(hop, n_fft // 4)), window=torch.hann_window(n_fft),
                      return_complex=True).abs() ** 2
    return (10 * torch.log10(spec + 1e-10)).numpy()


def stack_waveforms(ax, waves: torch.Tensor, sample_rate: int, backgrounds=None):
    """Waveforms (S, L) drawn in one axes, trace i centred at y = i, one common scale (the largest peak
    fills ±0.45). ``backgrounds``: {i: (L,) waveform} drawn in grey behind trace i, on the same scale."""
    w = waves.detach().float()
    extra = [b.detach().float() for b in (backgrounds or {}).values()]
    peak = max([float(w.abs().max())] + [float(b.abs().max()) for b in extra] + [1e-8])
    t = (torch.arange(w.shape[1]) / sample_rate).numpy()
    for i, b in (backgrounds or {}).items():
        ax.plot(t, i + 0.45 * b.detach().float().numpy() / peak, lw=0.4, color="0.7")
    for i in range(w.shape[0]):
        ax.plot(t, i + 0.45 * w[i].numpy() / peak, lw=0.4, color="k")
    ax.set_xlim(t[0], t[-1])
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_title(f"waveform (peak {peak:.3g})", fontsize=9)
    ax.tick_params(labelsize=7)


def stack_spectra(ax, spectra: torch.Tensor, freqs: torch.Tensor, floor_db: float = 60.0):
    """Spectra (S, F) in dB, trace i in [i − 0.45, i + 0.45]: each spectrum's top ``floor_db`` dB mapped there."""
    f = freqs.numpy()
    for i in range(spectra.shape[0]):
        s = spectra[i].detach().float()
        top = float(s.max())
        y = (s.clamp(min=top - floor_db) - (top - floor_db)) / floor_db  # [0, 1]
        ax.plot(f, i - 0.45 + 0.9 * y.numpy(), lw=0.5, color="tab:blue")
    ax.set_xlim(f[0], f[-1])
    ax.set_xlabel("frequency (Hz)", fontsize=8)
    ax.set_title(f"spectrum (top {floor_db:.0f} dB of each step)", fontsize=9)
    ax.tick_params(labelsize=7)
