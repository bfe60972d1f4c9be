"""Syllable segmentation of a consonant-vowel word by amplitude (the V-GIM thesis, Appendix A).

For recordings without known syllable boundaries (a user's own "ba-di-gu" recordings): the thesis
splits each word into its three syllables with Otsu's threshold on an amplitude envelope::

    1. max-pool the waveform over 20 ms windows (non-overlapping)           -> envelope m  (thesis Fig. A.1b)
    2. threshold = Otsu(m)  (skimage.filters.threshold_otsu)                 -> thesis Fig. A.1c
    3. the 90th percentile of the waveform over a moving 20 ms window       -> envelope p  (thesis Fig. A.1d)
    4. vowel where p > threshold, consonant elsewhere                       -> mask         (thesis Fig. A.1e)
    5. cuts at the vowel -> consonant transitions (a transition ends a syllable): with exactly three
       vowels, the ends of the first two; with more, the two transitions closest to 1/3 and 2/3
       of the word ("in the cases where more than three vowels were obtained")  -> thesis Fig. A.1f

Choices the thesis leaves open (ours, documented here and in docs/evaluation.md):

* "max pool the audio waves": the max of the *signed* samples (what max-pooling a waveform does);
  the 90th percentile likewise of the signed samples (``rectify=True`` uses |x| for both).
* the moving window is centred on each sample position of a ``hop`` grid (1 ms): a transition
  between grid points n and n + hop is placed at n + hop.
* "1/3 and 2/3 of the word": of the vowel span (first vowel sample to last vowel sample of the
  mask); ``reference="recording"`` uses the whole recording as the thesis' text literally says.
* a word is cut as [0, c1), [c1, c2), [c2, L): the first syllable starts at the recording's start
  and the last ends at its end, as in the thesis' Fig. A.1f.
* fewer than two transitions found: the missing cuts are put at 1/3 and 2/3 of the word and
  ``Segmentation.complete`` is False (the caller decides whether to keep the word).

Each syllable is then zero-padded at both ends to 8800 samples (thesis Appendix A, at 16 kHz):
``pad_both_ends``.

Agreement with espeak-ng's own boundaries (the consonant onsets of syllables 2 and 3), measured
with ``boundary_agreement`` on 200 synthesised words (``sim data --words 200 --seed 11``; 400
interior boundaries; docs/evaluation.md):

    preset "thesis" (signed samples, 90th percentile)      mean 108 ms, median 100 ms, 5 % within 20 ms,
                                                           61 of 200 words with fewer than 2 transitions
    preset "envelope-max" (|x|, moving max, q = 1.0)       mean 24 ms, median 8.6 ms, 70 % within 20 ms,
                                                           86 % within 50 ms, every word complete
    single monotone voice (``--speakers 1 --constant``, 851 words): "thesis" mean 70 ms (414 words
    incomplete); "envelope-max" mean 9.8 ms, median 5.8 ms, 99.9 % within 50 ms

espeak-ng's voices are spikier than the thesis' recordings: their 90th-percentile envelope sits at
about half the max-pooled one, so the max-pooled Otsu threshold falls inside quieter vowels. The
thesis' settings are kept as the default (``segment_word(...)``); ``PRESETS["envelope-max"]`` is
what we use for synthetic voices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["PRESETS", "WINDOW_SECONDS", "QUANTILE", "PAD_LENGTH", "Segmentation", "max_pool_envelope", "moving_quantile",
           "otsu_threshold", "segment_word", "syllable_spans", "pad_both_ends", "boundary_agreement"]

WINDOW_SECONDS = 0.02   # thesis Appendix A: max-pool and percentile windows of 0.02 s
QUANTILE = 0.9          # thesis Appendix A: the 90th percentile envelope
PAD_LENGTH = 8800       # thesis Appendix A: syllables padded front and back to 8800 samples at 16 kHz

# keyword arguments of segment_word; numbers measured in the module docstring
PRESETS = {"thesis": {"rectify": False, "quantile": QUANTILE},
           "envelope-max": {"rectify": True, "quantile": 1.0}}


@dataclass
class Segmentation:
    """cuts: the 2 chosen cut samples (ints, increasing); candidates: every vowel->consonant transition (samples);
    threshold: Otsu's threshold; mask: (F,) bool vowel mask on the hop grid; hop: samples per mask step;
    complete: False when fewer than 2 transitions were found and fallback cuts were used."""
    cuts: list
    candidates: list
    threshold: float
    mask: np.ndarray
    hop: int
    complete: bool


def _as_numpy(wave) -> np.ndarray:
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().numpy()
    if not isinstance(wave, np.ndarray):
        raise TypeError(f"wave must be a 1-D numpy array or tensor, got {type(wave).__name__}")
    if wave.ndim != 1 or wave.shape[0] == 0:
        raise ValueError(f"wave must be 1-D and non-empty, got shape {wave.shape}")
    if not np.isfinite(wave).all():
        raise ValueError("wave contains NaN or infinite samples")
    return wave.astype(np.float64)


def max_pool_envelope(wave, window: int) -> np.ndarray:
    """Max over non-overlapping windows of ``window`` samples (the last, partial one included).

    wave: (L,). Returns (ceil(L / window),)."""
    x = _as_numpy(wave)
    if window < 1:
        raise ValueError(f"window must be >= 1 sample, got {window}")
    n = -(-x.shape[0] // window)
    padded = np.full(n * window, -np.inf)
    padded[:x.shape[0]] = x
    return padded.reshape(n, window).max(1)


def moving_quantile(wave, window: int, hop: int, q: float = QUANTILE) -> np.ndarray:
    """The q-quantile of the samples in a window of ``window`` samples centred on n = 0, hop, 2 hop, ...

    wave: (L,). Returns (ceil(L / hop),); windows are clipped at the recording's ends."""
    x = _as_numpy(wave)
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1 sample, got {window} and {hop}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    half = window // 2
    padded = np.pad(x, (half, window - half), constant_values=np.nan)
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[: x.shape[0]:hop]
    return np.nanquantile(frames, q, axis=1)


def otsu_threshold(values) -> float:
    """Otsu's threshold (Otsu 1979) of a set of values: scikit-image's ``threshold_otsu`` (256 bins)."""
    from skimage.filters import threshold_otsu  # deferred heavy optional import (scikit-image)

    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("values must be non-empty")
    if np.all(v == v[0]):
        return float(v[0])
    return float(threshold_otsu(v))


def _pick(candidates, targets) -> list:
    """For each target in order, the closest unused candidate (ties: the earlier one); result sorted."""
    left, chosen = list(candidates), []
    for t in targets:
        if not left:
            break
        best = min(left, key=lambda c: (abs(c - t), c))
        chosen.append(best)
        left.remove(best)
    return sorted(chosen)


def segment_word(wave, sample_rate: int = 16000, window_seconds: float = WINDOW_SECONDS, hop_seconds: float = 0.001,
                 quantile: float = QUANTILE, num_syllables: int = 3, rectify: bool = False,
                 reference: str = "vowels", threshold_from: str = "max_pool") -> Segmentation:
    """Cut one word of ``num_syllables`` consonant-vowel syllables (thesis Appendix A; see the module docstring).

    wave: (L,) float samples at ``sample_rate`` Hz. window_seconds: 0.02 (thesis); hop_seconds: the
    moving-percentile grid (ours, 1 ms); quantile: 0.9 (thesis); rectify: use |x| (ours; thesis: False);
    reference: what 1/3 and 2/3 are of ("vowels": the vowel span, ours; "recording"); threshold_from:
    Otsu of the max-pooled wave ("max_pool", thesis) or of the percentile envelope ("envelope").
    Returns a Segmentation with ``num_syllables - 1`` cuts in samples."""
    x = _as_numpy(wave)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    if num_syllables < 2:
        raise ValueError(f"num_syllables must be >= 2, got {num_syllables}")
    if reference not in ("vowels", "recording"):
        raise ValueError(f"reference must be 'vowels' or 'recording', got {reference!r}")
    if rectify:
        x = np.abs(x)
    if not window_seconds > 0 or not hop_seconds > 0:
        raise ValueError(f"window_seconds and hop_seconds must be > 0 (seconds), got {window_seconds} and {hop_seconds}")
    window = max(1, int(round(window_seconds * sample_rate)))
    hop = max(1, int(round(hop_seconds * sample_rate)))
    if threshold_from not in ("max_pool", "envelope"):
        raise ValueError(f"threshold_from must be 'max_pool' or 'envelope', got {threshold_from!r}")
    envelope = moving_quantile(x, window, hop, quantile)
    threshold = otsu_threshold(max_pool_envelope(x, window) if threshold_from == "max_pool" else envelope)
    mask = envelope > threshold
    # vowel -> consonant: mask[i] and not mask[i + 1]; the cut is the first consonant grid point
    candidates = [int((i + 1) * hop) for i in np.flatnonzero(mask[:-1] & ~mask[1:])]
    vowel = np.flatnonzero(mask)
    if reference == "vowels" and vowel.size:
        start, end = int(vowel[0] * hop), int(vowel[-1] * hop)
    else:
        start, end = 0, x.shape[0]
    targets = [start + (end - start) * j / num_syllables for j in range(1, num_syllables)]
    vowel_ends = candidates if not mask[-1] else candidates + [None]  # one transition per vowel run that ends
    if len(vowel_ends) == num_syllables:  # exactly one vowel per syllable: the first vowels' ends
        cuts = candidates[: num_syllables - 1]
    else:                                 # more (or fewer) vowels: the transitions closest to 1/3, 2/3 (thesis)
        cuts = _pick(candidates, targets)
    complete = len(cuts) == num_syllables - 1
    if not complete:  # fallback: the targets farthest from the cuts found
        far = sorted(targets, key=lambda t: -min([abs(t - c) for c in cuts] or [np.inf]))
        cuts = sorted(cuts + [int(round(t)) for t in far[: num_syllables - 1 - len(cuts)]])
    return Segmentation(cuts=cuts, candidates=candidates, threshold=threshold, mask=mask, hop=hop, complete=complete)


def syllable_spans(cuts, length: int) -> list:
    """[[0, c1], [c1, c2], ..., [c_last, length]]: the syllables of a word of ``length`` samples."""
    edges = [0] + [int(c) for c in cuts] + [int(length)]
    if any(b < a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"cuts must be increasing and within [0, {length}], got {list(cuts)}")
    return [[edges[j], edges[j + 1]] for j in range(len(edges) - 1)]


def pad_both_ends(wave: torch.Tensor, length: int = PAD_LENGTH) -> torch.Tensor:
    """Zero-pad (L,) to (length,) with the signal centred (floor of the padding in front; thesis Appendix A,
    paper §4.2: "zero-padded at the beginning and end"). A longer signal keeps its centre ``length`` samples."""
    if not isinstance(wave, torch.Tensor) or wave.dim() != 1:
        raise TypeError("wave must be a 1-D tensor")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    n = wave.shape[0]
    if n >= length:
        s = (n - length) // 2
        return wave[s:s + length].clone()
    front = (length - n) // 2
    return torch.nn.functional.pad(wave, (front, length - n - front))


def boundary_agreement(predicted, reference, sample_rate: int = 16000) -> dict:
    """Agreement of predicted interior cuts with known ones.

    predicted, reference: (W, K) sample positions of the K interior boundaries of W words.
    Returns mean / median / 90th-percentile absolute error in ms, the share within 20 and 50 ms, and W."""
    p, r = np.asarray(predicted, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if p.shape != r.shape or p.ndim != 2 or p.size == 0:
        raise ValueError(f"predicted and reference must both be (W, K), non-empty, got {p.shape} and {r.shape}")
    err = np.abs(p - r) / sample_rate * 1000.0
    return {"words": int(p.shape[0]), "boundaries": int(p.size), "mean_ms": float(err.mean()),
            "median_ms": float(np.median(err)), "p90_ms": float(np.percentile(err, 90)),
            "within_20ms": float((err <= 20).mean()), "within_50ms": float((err <= 50).mean()),
            "bias_ms": float(((p - r) / sample_rate * 1000.0).mean())}
