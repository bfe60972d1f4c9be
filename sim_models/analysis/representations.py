"""Frozen representations of a GreedyModel, per frame or average-pooled.

"The representation" of stage m is ``ModuleOutput.representation`` with the model in eval mode:
mu for probabilistic (SIM) modules, the ReLU output for deterministic (GIM/CPC) conv modules, the
GRU output for the GRU module. Nothing is sampled, so the result is a deterministic function of
the audio. (The model's train/eval mode is restored afterwards.)
"""
from __future__ import annotations

import math

import torch

__all__ = ["encode_frames", "encode_all_stages", "pooled_features", "pad_segments"]


@torch.no_grad()
def encode_all_stages(model, audio: torch.Tensor) -> list:
    """audio (B, L) -> [(B, T_m, C_m) for every stage m], in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return [o.representation for o in model.encode(audio)]
    finally:
        model.train(was_training)


@torch.no_grad()
def encode_frames(model, audio: torch.Tensor, stage: int, batch_size: int = 32) -> torch.Tensor:
    """audio (N, L) -> (N, T, C) per-frame representation of ``stage`` (0-based)."""
    if not 0 <= stage < model.num_stages:
        raise ValueError(f"stage must be in [0, {model.num_stages}), got {stage}")
    if audio.dim() != 2:
        raise ValueError(f"audio must be (N, L), got {tuple(audio.shape)}")
    was_training = model.training
    model.eval()
    try:
        chunks = [model.encode(audio[i:i + batch_size], upto=stage)[stage].representation
                  for i in range(0, audio.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


@torch.no_grad()
def pooled_features(model, audio: torch.Tensor, batch_size: int = 64) -> list:
    """audio (N, L) -> [(N, C_m) for every stage m]: the representation averaged over time."""
    if audio.dim() != 2:
        raise ValueError(f"audio must be (N, L), got {tuple(audio.shape)}")
    per_stage = None
    for i in range(0, audio.shape[0], batch_size):
        reps = [r.mean(dim=1) for r in encode_all_stages(model, audio[i:i + batch_size])]
        per_stage = [[r] for r in reps] if per_stage is None else [p + [r] for p, r in zip(per_stage, reps)]
    return [torch.cat(p) for p in per_stage]


def pad_segments(segments, multiple: int = 160, length: int | None = None):
    """segments: [(waveform (l,), syllable label, vowel label)] (SyllableDataset.syllable_segments()).

    Zero-pads every segment at the end to one common length (the longest, rounded up to ``multiple``,
    the encoder's downsampling). Returns audio (S, L), syllable (S,) int64, vowel (S,) int64."""
    if not segments:
        raise ValueError("segments is empty: no syllables to analyse")
    if length is None:
        length = int(math.ceil(max(s[0].shape[0] for s in segments) / multiple) * multiple)
    audio = torch.zeros(len(segments), length)
    for i, (w, _, _) in enumerate(segments):
        n = min(w.shape[0], length)
        audio[i, :n] = w[:n]
    syllable = torch.tensor([s[1] for s in segments], dtype=torch.int64)
    vowel = torch.tensor([s[2] for s in segments], dtype=torch.int64)
    return audio, syllable, vowel
