"""Latent traversal: move one latent dimension over [−2.68, 2.68], decode, look at waveform and spectrum.

Start point: the zero vector (every frame 0: the mean of SIM's N(0, I) prior) or a real utterance's
per-frame representation (T, C). At step s the chosen dimension is *set* to value v_s in every
frame (the other dimensions keep the start point's values) and the result is decoded.
2.68 ≈ the 99.6 % two-sided range of a standard normal, the prior of a SIM module. (For GIM/CPC the
ReLU outputs are ≥ 0, so negative values are off the data manifold; the plot shows what the
decoder makes of them anyway.)
"""
from __future__ import annotations

import torch

from sim_models.analysis.plotting import new_figure, save_figure, spectrum_db, stack_spectra, stack_waveforms
from sim_models.model.greedy import count_frames

__all__ = ["TRAVERSAL_RANGE", "zero_start", "latent_traversal", "plot_traversal"]

TRAVERSAL_RANGE = 2.68


def zero_start(model_cfg, stage: int, length: int, channels: int) -> torch.Tensor:
    """The zero latent (T, C) of ``stage`` for ``length``-sample audio."""
    return torch.zeros(count_frames(model_cfg, length)[stage], channels)


@torch.no_grad()
def latent_traversal(decoder, start: torch.Tensor, dim: int, steps: int = 9, value_range: float = TRAVERSAL_RANGE,
                     sample_rate: int = 16000) -> dict:
    """Decode ``start`` (T, C) with dimension ``dim`` set to each of ``steps`` values in [−value_range, value_range].

    Returns {"values": (S,), "latents": (S, T, C), "waveforms": (S, L), "spectra": (S, L // 2 + 1) dB,
    "freqs": (L // 2 + 1,) Hz, "dim": dim}."""
    if start.dim() != 2:
        raise ValueError(f"start must be a (T, C) latent, got {tuple(start.shape)}")
    if not 0 <= dim < start.shape[1]:
        raise ValueError(f"dim must be in [0, {start.shape[1]}), got {dim}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    values = torch.linspace(-value_range, value_range, steps)
    z = start.unsqueeze(0).repeat(steps, 1, 1)
    z[:, :, dim] = values[:, None]
    waves = decoder(z)
    spectra, freqs = spectrum_db(waves, sample_rate)
    return {"values": values, "latents": z, "waveforms": waves, "spectra": spectra, "freqs": freqs, "dim": dim}


def plot_traversal(result: dict, path, title: str = "", sample_rate: int = 16000):
    """Two panels, one trace per step (labelled by the value), stacked bottom (−range) to top (+range):
    the waveforms (one common scale) and the spectra (dB, each shown over its top 60 dB)."""
    waves, spectra, freqs, values = result["waveforms"], result["spectra"], result["freqs"], result["values"]
    fig = new_figure(10, 0.45 * waves.shape[0] + 1.6)
    ax_w, ax_s = fig.subplots(1, 2, sharey=True)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.6 / fig.get_figheight(), top=1 - 0.55 / fig.get_figheight(),
                        wspace=0.05)
    stack_waveforms(ax_w, waves, sample_rate)
    stack_spectra(ax_s, spectra, freqs)
    ax_w.set_yticks(range(len(values)), [f"{float(v):+.2f}" for v in values], fontsize=7)
    ax_w.set_ylabel(f"value of dimension {result['dim']}", fontsize=8)
    fig.suptitle(title or f"latent traversal of dimension {result['dim']}", fontsize=10)
    return save_figure(fig, path)
