"""A second synthesiser with voices of real speakers: CMU Flite (Debian package ``flite``, 2.2).

Voices the Debian package ships (``flite -lv``: kal awb_time kal16 awb rms slt): ``kal``/``kal16``
(diphone voice of one US male speaker, 8 / 16 kHz) and ``awb`` (Scottish-English male), ``rms`` (US
male), ``slt`` (US female): clustergen voices built from the CMU ARCTIC recordings of those real
speakers. We use the 16 kHz ones: ``FLITE_VOICES``.

Words are given as phones (``flite -p "pau b aa1 d iy0 g uw0 pau"``, CMU/ARPAbet: a -> aa, i -> iy,
u -> uw; stress 1 on the stressed syllable), so no English spelling rules apply. ``-psdur`` prints
every segment with its end time in seconds, which gives the syllable boundaries (the consonant
onsets, as for espeak-ng). Speed: ``duration_stretch``; pitch: ``int_f0_target_mean`` /
``int_f0_target_stddev`` (stddev 0 = monotone). Flite is deterministic: the same arguments give
the same samples.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf

__all__ = ["FLITE_VOICES", "ARPABET", "FliteError", "flite_available", "flite_phones", "synthesize_flite"]

FLITE_VOICES = ("awb", "rms", "slt", "kal16")
ARPABET = {"a": "aa", "i": "iy", "u": "uw", "b": "b", "d": "d", "g": "g"}


class FliteError(RuntimeError):
    pass


def flite_available() -> bool:
    return shutil.which("flite") is not None


def flite_phones(syllables, stress) -> str:
    """["ba", "di", "gu"], stress 0 -> "pau b aa1 d iy0 g uw0 pau" (stress None: every vowel stressed)."""
    out = ["pau"]
    for j, s in enumerate(syllables):
        if len(s) != 2 or s[0] not in ARPABET or s[1] not in ARPABET:
            raise ValueError(f"syllables must be consonant+vowel over b/d/g and a/i/u, got {s!r}")
        mark = "1" if stress is None or j == stress else "0"
        out += [ARPABET[s[0]], ARPABET[s[1]] + mark]
    return " ".join(out + ["pau"])


def _parse_segments(text: str) -> list:
    """'pau:0.206 b:0.270 ...' -> [(phone, end seconds)]."""
    segs = []
    for tok in text.split():
        name, _, end = tok.rpartition(":")
        try:
            segs.append((name, float(end)))
        except ValueError:
            continue
    return segs


def synthesize_flite(phones: str, voice: str = "slt", stretch: float = 1.0, f0_mean: float | None = None,
                     f0_std: float | None = None):
    """Run flite once. Returns (audio (S,) float32 in [-1, 1], sample_rate, segments [(phone, start_s, end_s)])."""
    if not flite_available():
        raise FliteError("flite is not installed: run `apt-get install -y flite` (or `make system-deps`)")
    if voice not in ("kal", "kal16", "awb", "rms", "slt", "awb_time"):
        raise ValueError(f"voice must be a flite voice (see `flite -lv`), got {voice!r}")
    if not stretch > 0:
        raise ValueError(f"stretch must be > 0, got {stretch}")
    cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}"]
    if f0_mean is not None:
        cmd += ["--setf", f"int_f0_target_mean={f0_mean}"]
    if f0_std is not None:
        cmd += ["--setf", f"int_f0_target_stddev={f0_std}"]
    fd, wav = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        r = subprocess.run(cmd + ["-p", phones, "-psdur", "-o", wav], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise FliteError(f"flite failed ({r.returncode}) for {phones!r} with voice {voice!r}: {r.stderr.strip()}")
        audio, sr = sf.read(wav, dtype="float32")
    finally:
        os.unlink(wav)
    ends = _parse_segments(r.stdout)
    if not ends:
        raise FliteError(f"flite printed no segments for {phones!r}: {r.stdout!r}")
    segs, start = [], 0.0
    for name, end in ends:
        segs.append((name, start, end))
        start = end
    return (audio if audio.ndim == 1 else audio.mean(1)).astype(np.float32), int(sr), segs
