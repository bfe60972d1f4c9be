"""The score and anchor options shared by the functional, the module and the reference (one check, one message)."""
from __future__ import annotations

import math
import numbers

ANCHOR_WINDOWS = ("per_step", "common")  # per_step: t < T - d_k; common: t < T - d_K for every k (CPC_audio)
# bilinear: z . W_k c (CPC, GIM, SIM); dot: z . c; cosine: z . c of rows divided by max(||row||, eps) (wav2vec 2.0)
SCORES = ("bilinear", "dot", "cosine")
# torch.nn.functional.cosine_similarity's default eps, the one Hugging Face's Wav2Vec2ForPreTraining uses
COSINE_EPS = 1e-8


def check_options(anchor_window, score_scale) -> bool:
    """Checks ``anchor_window`` (one of ANCHOR_WINDOWS) and ``score_scale`` (a positive finite number,
    or "mean" = 1/Cz); returns True for the common anchor window.
    Raises ValueError for a bad value, TypeError for a non-number scale."""
    if anchor_window not in ANCHOR_WINDOWS:
        raise ValueError(f"anchor_window must be one of {ANCHOR_WINDOWS}, got {anchor_window!r}")
    if isinstance(score_scale, str):
        if score_scale != "mean":
            raise ValueError(f"score_scale must be a positive finite number or 'mean', got {score_scale!r}")
    elif isinstance(score_scale, bool) or not isinstance(score_scale, numbers.Real):
        raise TypeError(f"score_scale must be a positive finite number or 'mean', got {type(score_scale).__name__}")
    elif not 0 < score_scale < math.inf:  # NaN fails too; comparisons keep torch.compile from breaking the graph
        raise ValueError(f"score_scale must be a positive finite number or 'mean', got {score_scale}")
    return anchor_window == "common"


def check_score(score, weight) -> None:
    """``score`` is one of SCORES; "bilinear" needs a weight, "dot" and "cosine" take weight=None.
    Raises ValueError naming the argument."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    if score == "bilinear" and weight is None:
        raise ValueError("weight must be a (K, Cz, Cc) tensor for score='bilinear'; pass score='dot' or 'cosine' "
                         "for scores without a weight")
    if score != "bilinear" and weight is not None:
        raise ValueError(f"weight must be None for score={score!r} (the score is the rows' dot product, no W_k); "
                         f"use score='bilinear' to score with a weight")


def check_first_step(first_step) -> int:
    """``first_step``: an int >= 0, the offset of step 1 (1: the next frame, 0: the anchor's own frame)."""
    if isinstance(first_step, bool) or not isinstance(first_step, int) or first_step < 0:
        raise ValueError(f"first_step must be an int >= 0 (1: the next frame, as CPC; 0: the same frame, as "
                         f"wav2vec 2.0), got {first_step!r}")
    return first_step
