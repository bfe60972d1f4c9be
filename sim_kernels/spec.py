"""LossSpec: every option of one Smooth-InfoNCE call that is not a tensor, checked once, carried as one record.

smooth_infonce builds it from its keyword arguments; the module builds it at construction; it then travels
unchanged through functional.py (checks, anchor counts, reductions), the backend registry's entry points
(sim_kernels/registry.py), the torch.func wrappers (sim_kernels/_transforms.py) and the reference. The
native and Triton ops take its kernel-visible part as op arguments (``t_begin``, ``t_end``, ``common_window``,
``first_step``: csrc/ops.cpp), which the C++ side gathers again in one struct (csrc/checks.h ``Sizes``).

The definitions behind the defaults: the loss of the SIM paper (Denoodt et al., Smooth InfoMax, eq. 6:
InfoNCE over K future steps + beta * KL(N(mu, sigma^2) || N(0, I))), CPC_audio's criterion for
``anchor_window="common"`` and ``score_scale="mean"`` (facebookresearch/CPC_audio
cpc/criterion/criterion.py), wav2vec 2.0's for ``first_step=0`` and ``score="cosine"`` (Hugging Face
transformers models/wav2vec2/modeling_wav2vec2.py, ``Wav2Vec2ForPreTraining``).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Optional, Union

__all__ = ["LossSpec", "REDUCTIONS", "KL_REDUCTIONS", "ANCHOR_WINDOWS", "SCORES", "COSINE_EPS"]

REDUCTIONS = ("mean", "sum", "anchor_sum", "none")
KL_REDUCTIONS = ("dims", "time")
ANCHOR_WINDOWS = ("per_step", "common")  # per_step: t < T - d_k; common: t < T - d_K for every k (CPC_audio)
# bilinear: z . W_k c (CPC, GIM, SIM); dot: z . c; cosine: z . c of rows divided by max(||row||, eps) (wav2vec 2.0)
SCORES = ("bilinear", "dot", "cosine")
# torch.nn.functional.cosine_similarity's default eps, the one Hugging Face's Wav2Vec2ForPreTraining uses
COSINE_EPS = 1e-8


@dataclass(frozen=True)
class LossSpec:
    """The non-tensor options of smooth_infonce (see its docstring for each one's meaning and source).

    beta:          float >= 0, the weight of the KL term (paper: 0.01; 0 = InfoNCE, GIM).
    kl_reduction:  "dims" (paper: mean over (b, t) of the channel sum) | "time" (authors' code).
    reduction:     one of REDUCTIONS.
    anchor_window: "per_step" | "common".
    score:         "bilinear" | "dot" | "cosine".
    score_scale:   a positive finite float, or "mean" (1/Cz).
    first_step:    int >= 0, the offset d_1 of step 1; step k scores frame t + d_k, d_k = first_step + k - 1.
    t_begin, t_end: the anchor window of this call (GIM's crop), t_end None = the whole sequence.

    Construction checks every field and raises ValueError (TypeError for a wrong type) naming it.
    """
    beta: float = 0.0
    kl_reduction: str = "dims"
    reduction: str = "mean"
    anchor_window: str = "per_step"
    score: str = "bilinear"
    score_scale: Union[float, str] = 1.0
    first_step: int = 1
    t_begin: int = 0
    t_end: Optional[int] = None

    def __post_init__(self):
        beta = self.beta
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
            raise TypeError(f"beta must be a real number, got {type(beta).__name__}")
        if not math.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be finite and >= 0, got {beta}")
        object.__setattr__(self, "beta", float(beta))  # a numpy or torch scalar becomes a plain float
        if self.kl_reduction not in KL_REDUCTIONS:
            raise ValueError(f"kl_reduction must be one of {KL_REDUCTIONS}, got {self.kl_reduction!r}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {self.reduction!r}")
        if self.anchor_window not in ANCHOR_WINDOWS:
            raise ValueError(f"anchor_window must be one of {ANCHOR_WINDOWS}, got {self.anchor_window!r}")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        scale = self.score_scale
        if isinstance(scale, str):
            if scale != "mean":
                raise ValueError(f"score_scale must be a positive finite number or 'mean', got {scale!r}")
        elif isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(f"score_scale must be a positive finite number or 'mean', got {type(scale).__name__}")
        elif not 0 < scale < math.inf:  # NaN fails too; comparisons keep torch.compile from breaking the graph
            raise ValueError(f"score_scale must be a positive finite number or 'mean', got {scale}")
        first = self.first_step
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ValueError(f"first_step must be an int >= 0 (1: the next frame, as CPC; 0: the same frame, as "
                             f"wav2vec 2.0), got {first!r}")

    @property
    def common(self) -> bool:
        """The common anchor window (CPC_audio): t < t_end - d_K for every step."""
        return self.anchor_window == "common"

    @property
    def has_weight(self) -> bool:
        """Whether the score has the K maps W_k ("bilinear") or none ("dot", "cosine")."""
        return self.score == "bilinear"

    def scale(self, Cz: int) -> float:
        """The factor every score is multiplied by (score_scale, or 1/Cz for "mean")."""
        return 1.0 / Cz if self.score_scale == "mean" else float(self.score_scale)

    def shift(self, k: int, K: int) -> int:
        """How many frames before t_end the anchors of step k (1-based) of K end: d_k, or d_K when common."""
        return self.first_step + (K if self.common else k) - 1

    def window(self, t_begin: int, t_end: int) -> "LossSpec":
        """This spec with the anchor window of one call."""
        return dataclasses.replace(self, t_begin=t_begin, t_end=t_end)

    def check_weight(self, weight) -> None:
        """"bilinear" needs a weight; "dot" and "cosine" take weight=None (ValueError naming the argument)."""
        if self.has_weight and weight is None:
            raise ValueError("weight must be a (K, Cz, Cc) tensor for score='bilinear'; pass score='dot' or "
                             "'cosine' for scores without a weight")
        if not self.has_weight and weight is not None:
            raise ValueError(f"weight must be None for score={self.score!r} (the score is the rows' dot product, "
                             f"no W_k); use score='bilinear' to score with a weight")
