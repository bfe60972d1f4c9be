"""The one input builder, id style and tolerance table of the kernel tests (Liger style).

Every test file (reference, native CPU, CUDA host emulation and GPU, Triton) builds its inputs with
``make_inputs`` and names its cases with ``case_id``:

    case_id((2, 63, 37, 37, 5, 7), torch.float32)  -> "B2-T63-C37-K5-N7-float32"
    case_id((2, 40, 16, 24, 12, 10), torch.float32) -> "B2-T40-Cc16-Cz24-K12-N10-float32"
    case_id((2, 40, 16, 24, 12, 10))                -> "B2-T40-Cc16-Cz24-K12-N10"  (dtype parametrized apart)

Comparisons of a backend against the reference in one dtype use ``TOL[dtype]`` (``tol(dtype)``);
dtypes are parametrized with ``DTYPES`` (ids fp32/fp64/fp16/bf16). Half precision against float64
uses the 2x-error rule (flash-attention's: our error at most twice the reference's own in that dtype) where the tests say so, not this table.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import pytest
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

# (dtype, atol, rtol) of a backend against the reference run in the same dtype: torch.testing's
# defaults for that dtype, written out so every file uses the same numbers. fp16/bf16 results are
# compared in the output dtype (the loss of half inputs is float32); half against float64 uses the
# 2x-error rule instead.
TOLERANCES = [
    pytest.param(torch.float32, 1e-5, 1.3e-6, id="fp32"),
    pytest.param(torch.float64, 1e-7, 1e-7, id="fp64"),
    pytest.param(torch.float16, 1e-5, 1e-3, id="fp16"),
    pytest.param(torch.bfloat16, 1e-5, 1.6e-2, id="bf16"),
]
TOL = {p.values[0]: dict(atol=p.values[1], rtol=p.values[2]) for p in TOLERANCES}
DTYPE_IDS = {p.values[0]: p.id for p in TOLERANCES}
DTYPES = [pytest.param(p.values[0], id=p.id) for p in TOLERANCES]  # fp32, fp64, fp16, bf16
FULL = [torch.float32, torch.float64]
LOW = [torch.float16, torch.bfloat16]


def dtypes(*which):
    """pytest params (with the table's ids) of the given dtypes, in the given order."""
    return [pytest.param(d, id=DTYPE_IDS[d]) for d in which]


def tol(dtype) -> dict:
    """atol/rtol of the table for ``dtype``."""
    return dict(TOL[dtype])


def case_id(shape, dtype=None) -> str:
    """The one id style: B2-T63-C37-K5-N7[-float32] (C when Cc == Cz, else Cc16-Cz24)."""
    B, T, Cc, Cz, K, N = shape
    c = f"C{Cc}" if Cc == Cz else f"Cc{Cc}-Cz{Cz}"
    out = f"B{B}-T{T}-{c}-K{K}-N{N}"
    return out if dtype is None else f"{out}-{str(dtype).removeprefix('torch.')}"


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


LEAF_NAMES = ("context", "targets", "weight", "mu", "logvar")


class _Fields(NamedTuple):
    context: torch.Tensor
    targets: torch.Tensor
    weight: torch.Tensor
    neg_idx: torch.Tensor
    mu: Optional[torch.Tensor]
    logvar: Optional[torch.Tensor]


class Inputs(_Fields):
    """(context, targets, weight, neg_idx, mu, logvar): unpacks like a 6-tuple. Also carries the
    op-level weights ``loss_weight`` (K, B, T) and ``kl_weight`` (B, T) (float64 for float64 inputs,
    else float32) for torch.ops.sim_kernels.smooth_infonce_value_and_grad."""

    loss_weight: torch.Tensor
    kl_weight: torch.Tensor

    def leaves(self):
        """The floating inputs that are given (mu/logvar skipped when None)."""
        return [x for x in (self.context, self.targets, self.weight, self.mu, self.logvar) if x is not None]

    def as_dict(self, weights=False):
        out = self._asdict()
        if weights:
            out.update(loss_weight=self.loss_weight, kl_weight=self.kl_weight)
        return out

    def op_args(self, t_begin=0, t_end=None, with_kl=True):
        """Arguments of torch.ops.sim_kernels.smooth_infonce_fwd (neg_idx as given: (K, B, T, N))."""
        t_end = self.context.shape[1] if t_end is None else t_end
        mu, lv = (self.mu, self.logvar) if with_kl else (None, None)
        return (self.context, self.targets, self.weight, self.neg_idx, mu, lv, t_begin, t_end)

    def to(self, dtype=None, device=None, requires_grad=True):
        """Fresh leaf copies, cast to ``dtype`` (floating tensors only) and moved to ``device``."""
        def conv(x, keep_dtype=False):
            if x is None:
                return None
            x = x.detach().to(device=device or x.device)
            if x.is_floating_point():
                if dtype is not None and not keep_dtype:
                    x = x.to(dtype)
                return x.clone().requires_grad_(requires_grad) if not keep_dtype else x
            return x
        out = Inputs(*(conv(x) for x in self))
        acc = torch.float64 if (dtype or self.context.dtype) == torch.float64 else torch.float32
        out.loss_weight = conv(self.loss_weight, keep_dtype=True).to(acc)
        out.kl_weight = conv(self.kl_weight, keep_dtype=True).to(acc)
        return out

    def _replace(self, **kw):
        out = Inputs(*(kw.pop(n, getattr(self, n)) for n in self._fields))
        out.loss_weight, out.kl_weight = kw.pop("loss_weight", self.loss_weight), kw.pop("kl_weight", self.kl_weight)
        assert not kw, kw
        return out


def make_inputs(B, T, Cc, Cz, K, N, dtype=torch.float64, shared=False, with_kl=True, seed=0, requires_grad=True,
                *, device="cpu", expanded=False, ties=False) -> Inputs:
    """The one input builder: context (B,T,Cc), targets (B,T,Cz), weight (K,Cz,Cc) scaled by Cc^-1/2,
    neg_idx, mu (B,T,Cz), logvar (B,T,Cz) scaled by 1/2 (None when not ``with_kl``), plus
    loss_weight (K,B,T) and kl_weight (B,T) in [0, 1).

    Drawn in float64 on the CPU from ``seed``, then cast to ``dtype`` and moved to ``device``, so every
    dtype and device sees the same numbers. neg_idx: Greedy InfoMax's per-step sampler, (K,B,T,N), by
    default; ``shared``: one (B,T,N) for every step; ``expanded``: that (B,T,N) expanded over K
    (stride 0, shape (K,B,T,N)); ``ties``: negative 0 of every step is the anchor's step-1 positive
    row (an exact tie at k = 1). Floating tensors are leaves with ``requires_grad``.
    """
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        x = (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)
        return x.to(device).requires_grad_(requires_grad)

    context, targets = rnd(B, T, Cc), rnd(B, T, Cz)
    weight = rnd(K, Cz, Cc, scale=Cc ** -0.5)
    if shared or expanded:
        neg_idx = torch.randint(0, B * T, (B, T, N), generator=g)
        if expanded:
            neg_idx = neg_idx.as_strided((K, B, T, N), (0, *neg_idx.stride()))  # stride 0 even when K = 1
    else:
        neg_idx = sample_negatives("gim", B, T, N, K, generator=g)
    if ties:
        assert neg_idx.dim() == 4 and not expanded, "ties needs a per-step neg_idx"
        pos = (torch.arange(B).view(B, 1) * T + torch.arange(1, T)).view(1, B, T - 1)  # row of z[b, t + 1]
        neg_idx[:, :, : T - 1, 0] = pos
    neg_idx = neg_idx.to(device)
    mu = logvar = None
    if with_kl:
        mu, logvar = rnd(B, T, Cz), rnd(B, T, Cz, scale=0.5)
    out = Inputs(context, targets, weight, neg_idx, mu, logvar)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    out.loss_weight = torch.rand(K, B, T, generator=g, dtype=torch.float64).to(acc).to(device)
    out.kl_weight = torch.rand(B, T, generator=g, dtype=torch.float64).to(acc).to(device)
    return out


def differentiable(context, targets, weight, neg_idx, mu, logvar):
    return [x for x in (context, targets, weight, mu, logvar) if x is not None]
