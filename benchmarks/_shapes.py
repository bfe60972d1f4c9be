"""Shared shape tables and input builders of the benchmark suite (one copy, used by the tests,
the memory probe and, if it likes, benchmarks/test_train_step.py).

Shapes: B batch, T time, C channels (context and targets both C wide), K prediction steps,
N negatives. Every shape has a pytest id like ``B8-T512-C512-K10-N10`` and the sets it belongs to.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Shape", "SHAPE_SETS", "shapes", "shape_from_id", "LossInputs", "build_inputs", "FloorOperands",
           "build_floor_operands", "BETA", "SAMPLER", "DTYPES"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # --sim-dtypes names
BETA = 0.01  # the SIM loss: NCE + 0.01 * KL (paper default)
SAMPLER = "gim"


@dataclass(frozen=True)
class Shape:
    B: int
    T: int
    C: int
    K: int
    N: int

    @property
    def id(self) -> str:
        return f"B{self.B}-T{self.T}-C{self.C}-K{self.K}-N{self.N}"

    def as_dict(self) -> dict:
        return {"B": self.B, "T": self.T, "C": self.C, "K": self.K, "N": self.N}


# The paper's modules (Smooth InfoMax): K = N = 10, C = 512, T per module depth.
PAPER = [Shape(8, T, 512, 10, 10) for T in (512, 128, 64)]
# The thesis (V-GIM): C = 32, K = 12.
THESIS = [Shape(8, T, 32, 12, 10) for T in (64, 512)]
# Scaling sweep around the centre B=8, T=256, C=256, K=10, N=10: one variable at a time.
_CENTRE = dict(B=8, T=256, C=256, K=10, N=10)
SWEEP_T = [Shape(**{**_CENTRE, "T": T}) for T in (64, 256, 1024)]
SWEEP_N = [Shape(**{**_CENTRE, "N": N}) for N in (1, 10, 50)]
SWEEP_K = [Shape(**{**_CENTRE, "K": K}) for K in (1, 5, 10, 12)]  # 10: the centre, no extra run
# The thesis' real training shape (V-GIM: batch 171, module 1 gives 52 frames of 32 channels).
THESIS_REAL = [Shape(171, 52, 32, 12, 10)]
# Many negatives: CPC_audio's N = 128 (B8, T128, C256, K12), and a wav2vec-like N = 100.
MANY_NEGATIVES = [Shape(8, 128, 256, 12, 128)]
WAV2VEC = [Shape(8, 256, 256, 10, 100)]
# Tiny shapes for a smoke run (--sim-shapes=smoke): every code path in seconds, odd sizes on purpose.
SMOKE = [Shape(2, 33, 16, 3, 4), Shape(2, 17, 8, 5, 1)]

SHAPE_SETS: dict[str, list[Shape]] = {
    "paper": PAPER,
    "thesis": THESIS,
    "sweep-T": SWEEP_T,
    "sweep-N": SWEEP_N,
    "sweep-K": SWEEP_K,
    "thesis-real": THESIS_REAL,
    "many-negatives": MANY_NEGATIVES,
    "wav2vec": WAV2VEC,
    "smoke": SMOKE,
}
FULL_SETS = ("paper", "thesis", "thesis-real", "many-negatives", "wav2vec", "sweep-T", "sweep-N", "sweep-K")
# What `make gpu-check` times on a GPU (issue 13): the paper's shapes, the thesis' real one, many negatives.
GPU_SETS = ("paper", "thesis-real", "many-negatives")


def shapes(selection: str = "full") -> list[tuple[Shape, tuple[str, ...]]]:
    """Unique shapes of a selection ("full", "gpu", "smoke", or a comma list of set names), in table
    order, each with the names of every set it belongs to (the sweep centre is in all three sweeps)."""
    if selection == "gpu":
        selection = ",".join(GPU_SETS)
    names = FULL_SETS if selection == "full" else tuple(s.strip() for s in selection.split(",") if s.strip())
    unknown = [n for n in names if n not in SHAPE_SETS]
    if unknown or not names:
        raise ValueError(f"--sim-shapes must be 'full', 'gpu' or a comma list of {sorted(SHAPE_SETS)}, got {selection!r}")
    out: dict[Shape, list[str]] = {}
    for name in names:
        for s in SHAPE_SETS[name]:
            out.setdefault(s, []).append(name)
    return [(s, tuple(tags)) for s, tags in out.items()]


def shape_from_id(text: str) -> Shape:
    """Inverse of Shape.id: "B8-T512-C512-K10-N10" -> Shape(8, 512, 512, 10, 10)."""
    try:
        parts = dict((p[0], int(p[1:])) for p in text.split("-"))
        return Shape(parts["B"], parts["T"], parts["C"], parts["K"], parts["N"])
    except (KeyError, ValueError, IndexError):
        raise ValueError(f"shape id must look like 'B8-T512-C512-K10-N10', got {text!r}") from None


@dataclass
class LossInputs:
    """Arguments of smooth_infonce for one shape (any float dtype, any device).

    context, targets, mu, logvar: (B, T, C); weight: (K, C, C); neg_idx: (K, B, T, N) int64 (GIM sampler).
    """
    context: torch.Tensor
    targets: torch.Tensor
    weight: torch.Tensor
    neg_idx: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor

    def leaves(self) -> list[torch.Tensor]:
        return [self.context, self.targets, self.weight, self.mu, self.logvar]

    def clear_grads(self) -> None:
        for x in self.leaves():
            x.grad = None


def build_inputs(shape: Shape, requires_grad: bool, seed: int = 0, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu") -> LossInputs:
    """Deterministic inputs with O(1) scores: c, z ~ N(0, 1), W ~ N(0, 1/C^2) so z^T W c ~ N(0, 1).

    Drawn in float32 on the CPU from one generator, then cast to ``dtype`` and moved to ``device``,
    so every dtype and device sees the same numbers (up to the cast)."""
    g = torch.Generator().manual_seed(seed)
    B, T, C, K, N = shape.B, shape.T, shape.C, shape.K, shape.N

    def leaf(*size, scale=1.0):
        x = (torch.randn(*size, generator=g) * scale).to(device=device, dtype=dtype)
        return x.requires_grad_(requires_grad)

    from sim_kernels import sample_negatives

    return LossInputs(
        context=leaf(B, T, C),
        targets=leaf(B, T, C),
        weight=leaf(K, C, C, scale=1.0 / C),
        neg_idx=sample_negatives(SAMPLER, B, T, N, K, generator=g).to(device),
        mu=leaf(B, T, C, scale=0.5),
        logvar=leaf(B, T, C, scale=0.1),
    )


@dataclass
class FloorOperands:
    """The three GEMMs forward plus backward must do, with W_cat = weight.view(K*C, C):

        forward projection  P            = C_flat @ W_cat^T   (B*T, C) x (C, K*C)  -> (B*T, K*C)
        input gradient      grad_context = dP @ W_cat         (B*T, K*C) x (K*C, C) -> (B*T, C)
        weight gradient     grad_W       = dP^T @ C_flat      (K*C, B*T) x (B*T, C) -> (K*C, C)

    Outputs are preallocated (no allocation or page faults in the timed region), so this is the
    strictest floor: what the BLAS alone needs.
    """
    c_flat: torch.Tensor
    w_cat: torch.Tensor
    d_p: torch.Tensor
    p: torch.Tensor
    grad_context: torch.Tensor
    grad_w: torch.Tensor

    def forward(self) -> None:
        torch.mm(self.c_flat, self.w_cat.t(), out=self.p)

    def forward_backward(self) -> None:
        torch.mm(self.c_flat, self.w_cat.t(), out=self.p)
        torch.mm(self.d_p, self.w_cat, out=self.grad_context)
        torch.mm(self.d_p.t(), self.c_flat, out=self.grad_w)

    @staticmethod
    def flops(shape: Shape, mode: str) -> int:
        one = 2 * shape.B * shape.T * shape.C * shape.K * shape.C
        return one if mode == "fwd" else 3 * one


def build_floor_operands(shape: Shape, seed: int = 0, dtype: torch.dtype = torch.float32,
                         device: str | torch.device = "cpu") -> FloorOperands:
    """The floor's operands in ``dtype`` on ``device`` (cuBLAS on CUDA, the CPU BLAS/oneDNN on the CPU)."""
    g = torch.Generator().manual_seed(seed)
    BT, C, KC = shape.B * shape.T, shape.C, shape.K * shape.C
    weight = torch.randn(shape.K, C, C, generator=g) / C
    put = dict(dtype=dtype, device=device)
    return FloorOperands(
        c_flat=torch.randn(BT, C, generator=g).to(**put),
        w_cat=weight.view(KC, C).to(**put),
        d_p=torch.randn(BT, KC, generator=g).to(**put),
        p=torch.empty(BT, KC, **put),
        grad_context=torch.empty(BT, C, **put),
        grad_w=torch.empty(KC, C, **put),
    )
