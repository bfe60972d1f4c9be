"""Frozen representations of a GreedyModel, per frame or average-pooled, as μ or as samples.

``representation`` (every analysis takes it; ``ReportConfig.representation``):

* ``"sample"`` (the paper-faithful default): z = μ + σ·ε for probabilistic (SIM) modules, each module
  reading the previous module's *sample* (``GreedyModel.encode(sample=True)``, model in eval mode).
  This is what the SIM authors' evaluation saw: their ``get_latents`` samples whatever the mode
  (``ACML-2024`` branch), so their decoders, δ (Table 3) and the Fig. 2 probe all ran on samples.
  A unit at the prior (σ ≈ 1) is then unit-variance noise.
* ``"mean"``: μ for probabilistic modules, each module reading the previous one's μ (a deterministic
  function of the audio; the robustness row).

Deterministic modules (GIM, CPC, the GRU) give their output either way; a stage after a
probabilistic one still depends on ε through its input (``stochastic_stages``). The model's
train/eval mode is restored afterwards. Average-pooled syllable features come from
sim_models/evaluation/probes.py (``segments_tensor``, ``pooled_features``), the same as `sim eval`.
"""
from __future__ import annotations

import torch

from ..evaluation.probes import (REPRESENTATIONS, check_representation, pooled_features,  # noqa: F401  (re-exported)
                                 segments_tensor, stage_outputs, stochastic_stages)

__all__ = ["REPRESENTATIONS", "encode_frames", "encode_all_stages", "utterance_latents", "pooled_features",
           "segments_tensor", "stochastic_stages", "check_representation"]


@torch.no_grad()
def encode_all_stages(model, audio: torch.Tensor, representation: str = "mean", generator=None) -> list:
    """audio (B, L) -> [(B, T_m, C_m) float32 for every stage m], in eval mode (see the module docstring)."""
    return stage_outputs(model, audio, representation, generator)


@torch.no_grad()
def encode_frames(model, audio: torch.Tensor, stage: int, batch_size: int = 32, representation: str = "mean",
                  generator=None) -> torch.Tensor:
    """audio (N, L) -> (N, T, C) per-frame representation of ``stage`` (0-based)."""
    if not 0 <= stage < model.num_stages:
        raise ValueError(f"stage must be in [0, {model.num_stages}), got {stage}")
    if audio.dim() != 2:
        raise ValueError(f"audio must be (N, L), got {tuple(audio.shape)}")
    return torch.cat([stage_outputs(model, audio[i:i + batch_size], representation, generator, upto=stage)[stage]
                      for i in range(0, audio.shape[0], batch_size)])


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
