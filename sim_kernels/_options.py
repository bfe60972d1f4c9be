"""The CPC_audio options shared by the functional and the reference (one check, one message)."""
from __future__ import annotations

import math
import numbers

ANCHOR_WINDOWS = ("per_step", "common")  # per_step: t < T - k (DESIGN.md §1); common: t < T - K (CPC_audio)


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
