"""Reading audio: soundfile for decoding, torchaudio.functional.resample for the rate.

Any failure to read a file raises ``AudioFileError`` whose message names the file.
(torchaudio.load is not used: it needs torchcodec.)
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

__all__ = ["AudioFileError", "read_audio", "audio_info", "fit_length"]


class AudioFileError(RuntimeError):
    """A file could not be read or decoded; ``.path`` is the file."""

    def __init__(self, path, reason):
        self.path = str(path)
        super().__init__(f"cannot read audio file {self.path}: {reason}")


def audio_info(path):
    """(frames, sample_rate, channels) without decoding; AudioFileError when the header is bad."""
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioFileError(path, e) from e
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioFileError(path, f"empty or invalid stream ({info.frames} frames at {info.samplerate} Hz)")
    return info.frames, info.samplerate, info.channels


def read_audio(path, sample_rate: int, start: int = 0, frames: int = -1) -> torch.Tensor:
    """Mono float32 (L,) at ``sample_rate``. ``start``/``frames`` are in the file's own rate."""
    try:
        data, sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioFileError(path, e) from e
    if data.size == 0:
        raise AudioFileError(path, "no samples")
    if not np.isfinite(data).all():
        raise AudioFileError(path, "contains NaN or infinite samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if sr != sample_rate:
        with torch.no_grad():
            wav = _resampler(sr, sample_rate)(wav)
    return wav


@functools.lru_cache(maxsize=8)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    """torchaudio's sinc resampler for one pair of rates, its kernel computed once (the same numbers as
    ``torchaudio.functional.resample(wav, orig, new)``, which recomputes the kernel on every call)."""
    return torchaudio.transforms.Resample(orig, new)


def fit_length(wav: torch.Tensor, length: int) -> torch.Tensor:
    """Crop the end or zero-pad the end to exactly ``length`` samples."""
    wav = wav[..., :length]
    return torch.nn.functional.pad(wav, (0, length - wav.shape[-1]))
