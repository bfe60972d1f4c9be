"""Frozen representations of a GreedyModel, per frame or average-pooled.

"The representation" of stage m is ``ModuleOutput.representation`` with the model in eval mode:
mu for probabilistic (SIM) modules, the ReLU output for deterministic (GIM/CPC) conv modules, the
GRU output for the GRU module. Nothing is sampled, so the result is a deterministic function of
the audio. (The model's train/eval mode is restored afterwards.) Average-pooled syllable features come
from sim_models/evaluation/probes.py (``segments_tensor``, ``pooled_features``), the same as `sim eval`.
"""
from __future__ import annotations

import torch

from ..evaluation.probes import pooled_features, segments_tensor  # noqa: F401  (re-exported: one implementation)

__all__ = ["encode_frames", "encode_all_stages", "pooled_features", "segments_tensor"]


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
