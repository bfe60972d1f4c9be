"""The one test matrix: every backend of the shared ``backend`` fixture (reference, native-cpu, cuda,
triton; conftest.py) on the same cases, tests/sim_kernels/inputs.py's SHAPES x (float32, float64),
against the independent float64 loops of naive.py: the loss and the gradients of all five inputs.

Ids: ``B2-T63-C37-K5-N7-float32`` (inputs.case_id). Tolerances: inputs.TOL of the backend's dtype,
the oracle rounded to that dtype. neg_idx: per step (K, B, T, N) (Greedy InfoMax's sampler), shared
(B, T, N), or shared expanded over K (stride 0).
"""
from __future__ import annotations

import pytest
import torch

from sim_kernels import smooth_infonce

from .inputs import FULL, LEAF_NAMES, SHAPES, case_id, make_inputs, tol
from .naive import naive_smooth_infonce

MATRIX = [(shape, dtype) for shape in SHAPES for dtype in FULL]
VARIANTS = [("mean", "per-step"), ("none", "per-step"), ("mean", "shared"), ("sum", "expanded")]


@pytest.mark.parametrize("reduction,neg", VARIANTS, ids=[f"{r}-{n}" for r, n in VARIANTS])
@pytest.mark.parametrize("shape,dtype", MATRIX, ids=[case_id(s, d) for s, d in MATRIX])
def test_backend_matches_naive(backend, shape, dtype, reduction, neg):
    x = make_inputs(*shape, dtype=dtype, shared=neg == "shared", expanded=neg == "expanded", seed=sum(shape))
    if neg == "expanded":
        assert x.neg_idx.stride(0) == 0
    kw = dict(beta=0.1, kl_reduction="dims", reduction=reduction)
    out = backend.run(smooth_infonce, *x, **kw)
    assert out.dtype == dtype

    x64 = x.to(torch.float64)  # the same numbers, in float64
    want = naive_smooth_infonce(*x64, **kw)
    torch.testing.assert_close(out, want.to(dtype), **tol(dtype))

    K, B, T = x.weight.shape[0], shape[0], shape[1]
    up = torch.rand(K, B, T, generator=torch.Generator().manual_seed(1), dtype=torch.float64) if reduction == "none" \
        else torch.tensor(1.0, dtype=torch.float64)
    got = torch.autograd.grad(out, x.leaves(), up.to(dtype), allow_unused=True)
    ref = torch.autograd.grad(want, x64.leaves(), up, allow_unused=True)
    for name, a, b in zip(LEAF_NAMES, got, ref):
        if b is None:  # reduction="none" has no KL term: mu and logvar are not in the graph
            assert a is None or not a.any(), name
            continue
        assert a.dtype == dtype, name
        torch.testing.assert_close(a, b.to(dtype), **tol(dtype),
                                   msg=lambda m, n=name: f"{backend.id} {case_id(shape, dtype)} grad of {n}: {m}")
