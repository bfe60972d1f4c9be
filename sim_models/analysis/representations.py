"""Frozen representations of a GreedyModel for the analyses: every stage, one stage per frame, or per utterance
with its own eps. ``representation`` and the encode loop itself: sim_models/model/encode.py (average-pooled
syllable features: sim_models/evaluation/probes.py, the same as `sim eval`).
"""
from __future__ import annotations

import torch

from sim_models.model.encode import check_representation, encode_batches, stage_outputs

__all__ = ["encode_frames", "encode_all_stages", "utterance_latents", "utterance_seed"]


def encode_all_stages(model, audio: torch.Tensor, representation: str = "mean", generator=None) -> list:
    """audio (B, L) -> [(B, T_m, C_m) float32 for every stage m], in eval mode, as one batch."""
    return stage_outputs(model, audio, representation, generator)


def encode_frames(model, audio: torch.Tensor, stage: int, batch_size: int = 32, representation: str = "mean",
                  generator=None) -> torch.Tensor:
    """audio (N, L) -> (N, T, C) per-frame representation of ``stage`` (0-based); ValueError for a stage out of
    range or audio that is not (N, L)."""
    if not 0 <= stage < model.num_stages:
        raise ValueError(f"stage must be in [0, {model.num_stages}), got {stage}")
    if audio.dim() != 2:
        raise ValueError(f"audio must be (N, L), got {tuple(audio.shape)}")
    return encode_batches(model, audio, batch_size, representation, generator, upto=stage)[stage]


def utterance_seed(seed: int, index: int) -> int:
    """The seed of utterance ``index``'s ε (``utterance_latents``)."""
    return 1_000_003 * int(seed) + 7919 * int(index) + 17


@torch.no_grad()
def utterance_latents(model, audio: torch.Tensor, representation: str = "sample", seed: int = 0) -> list:
    """audio (U, L) -> [(U, T_m, C_m) float32 per stage m]: every stage of every utterance, encoded once.

    With "sample", utterance u is encoded alone with its own ``torch.Generator().manual_seed(utterance_seed(seed,
    u))``: one fixed ε per utterance, carried into the later modules (module m+1 reads module m's sample of
    that same draw). Its latents therefore do not depend on which other utterances are encoded or paired
    with it: δ (Table 3) uses these tensors in every pair the utterance is in, as the SIM authors' code
    encodes each test batch once (``interpolation_contribution_score.py``). With "mean" the generator is unused."""
    check_representation(representation)
    if audio.dim() != 2:
        raise ValueError(f"audio must be (U, L), got {tuple(audio.shape)}")
    per = [stage_outputs(model, audio[u:u + 1], representation, torch.Generator().manual_seed(utterance_seed(seed, u)))
           for u in range(audio.shape[0])]
    return [torch.cat([p[m] for p in per]) for m in range(len(per[0]))]
