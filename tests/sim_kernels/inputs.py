"""Shared shape tables and input builders for the kernel tests (Liger style)."""
from __future__ import annotations

import torch

from sim_kernels import sample_negatives

# (B, T, Cc, Cz, K, N): odd sizes, B = 1, K = T - 1, N = 1, Cc != Cz.
SHAPES = [
    (2, 13, 7, 7, 3, 5),
    (1, 9, 5, 3, 8, 1),
    (3, 63, 37, 37, 5, 7),
    (2, 40, 16, 24, 12, 10),
    (1, 2, 1, 1, 1, 1),
]


def cpu_backends() -> list:
    """The backends the CPU tests run: reference, native, and triton where it imports (in the
    Triton interpreter: tests/conftest.py sets TRITON_INTERPRET=1)."""
    out = ["reference", "native"]
    try:
        import sim_kernels.triton  # noqa: F401
        out.append("triton")
    except ImportError:
        pass
    return out


def shape_id(shape) -> str:
    B, T, Cc, Cz, K, N = shape
    return f"B{B}-T{T}-Cc{Cc}-Cz{Cz}-K{K}-N{N}"


def make_inputs(B, T, Cc, Cz, K, N, dtype=torch.float64, shared=False, with_kl=True, seed=0, requires_grad=True):
    """context (B,T,Cc), targets (B,T,Cz), weight (K,Cz,Cc), neg_idx, mu, logvar (or None)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype).requires_grad_(requires_grad)

    context, targets = rnd(B, T, Cc), rnd(B, T, Cz)
    weight = rnd(K, Cz, Cc, scale=Cc ** -0.5)
    if shared:
        neg_idx = torch.randint(0, B * T, (B, T, N), generator=g)
    else:
        neg_idx = sample_negatives("gim", B, T, N, K, generator=g)
    mu = logvar = None
    if with_kl:
        mu, logvar = rnd(B, T, Cz), rnd(B, T, Cz, scale=0.5)
    return context, targets, weight, neg_idx, mu, logvar


def differentiable(context, targets, weight, neg_idx, mu, logvar):
    return [x for x in (context, targets, weight, mu, logvar) if x is not None]
