"""Wav files of decoded sounds, for the players of the HTML report.

``write_wavs(paths, waveforms, sample_rate)`` writes one 16-bit PCM wav per waveform. The set is
scaled by **one common factor**, and only if its peak exceeds 0.99 (as interpolation.py does for its
one-file wav): the loudness of the steps of a traversal or an interpolation relative to each other is
what a listener compares, so it is kept.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

__all__ = ["write_wavs", "PEAK"]

PEAK = 0.99


def write_wavs(paths, waveforms, sample_rate: int) -> list:
    """paths: S file paths; waveforms: (S, L) tensor/array or a list of S (L_i,) waveforms (float, nominal
    range [−1, 1]). Returns the paths as Path objects. Raises ValueError if the counts differ or a
    waveform is empty or not finite."""
    paths = [Path(p) for p in paths]
    waves = [w.detach().float().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w, np.float32)
             for w in waveforms]
    if len(paths) != len(waves):
        raise ValueError(f"paths and waveforms must have one entry each, got {len(paths)} and {len(waves)}")
    for i, w in enumerate(waves):
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"waveforms[{i}] must be a non-empty 1-D waveform, got shape {w.shape}")
        if not np.isfinite(w).all():
            raise ValueError(f"waveforms[{i}] has non-finite samples")
    peak = max((float(np.abs(w).max()) for w in waves), default=0.0)
    scale = PEAK / peak if peak > PEAK else 1.0
    for p, w in zip(paths, waves):
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), (w * scale).astype(np.float32), sample_rate, subtype="PCM_16")
    return paths
