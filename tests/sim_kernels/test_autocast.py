"""smooth_infonce under torch.autocast (issue 17, fault 1).

The defined behaviour (README "Backends", sim_kernels/functional.py): autocast never lowers the
precision of the loss. Inputs keep their dtype (mixed floating dtypes, which autocast produces, are
cast once to the widest of them), every backend accumulates in fp32 (fp64 for fp64), and the result
is float32 (float64 for float64 inputs), as outside autocast. So a loss under autocast equals the
loss outside it to fp32 tolerance. CPU autocast here; the CUDA variant runs in tests/sim_kernels/test_cuda.py's
GPU group when a GPU is present. Triton runs in the interpreter (TRITON_INTERPRET=1, tests/conftest.py).
"""
from __future__ import annotations

import math

import pytest
import torch

from sim_kernels import SmoothInfoNCELoss, smooth_infonce

from .conftest import CPU_NAMES, backend_for
from .inputs import cpu_backends, dtypes, make_inputs

LOW = dtypes(torch.bfloat16, torch.float16)
BACKENDS = cpu_backends()  # CPU autocast: the backends that run on CPU tensors (not the fixture's cuda)


def _skip_missing(backend):
    """conftest.py's rule: a missing native CPU kernel fails (the build is part of the product)."""
    backend_for(CPU_NAMES[backend])


def issue_case():
    """The issue's smallest failing case: B=1, T=2, C=2, K=1, N=1; one context entry 1.001
    (not a bf16 number: bf16 rounds it to 1.0), the positive target 3.0, W = I."""
    context = torch.zeros(1, 2, 2)
    context[0, 0, 0] = 1.001
    targets = torch.zeros(1, 2, 2)
    targets[0, 1, 0] = 3.0
    weight = torch.eye(2).view(1, 2, 2)
    neg_idx = torch.zeros(1, 1, 2, 1, dtype=torch.int64)
    return context, targets, weight, neg_idx


# s+ = 3.003 (z = (3, 0) at t = 1, W c = (1.001, 0)), s- = 0 (row 0 is zeros): loss = log(1 + e^s+) - s+.
ISSUE_VALUE = math.log1p(math.exp(3.003)) - 3.003  # 0.0484453...


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", LOW)
def test_issue_case_keeps_fp32_under_autocast(backend, dtype):
    """Regression: under bf16 autocast the reference gave 0.0485873 (1.001 rounded to bf16)."""
    _skip_missing(backend)
    c, z, w, idx = issue_case()
    outside = smooth_infonce(c, z, w, idx, reduction="mean", backend=backend)
    with torch.autocast("cpu", dtype=dtype):
        inside = smooth_infonce(c, z, w, idx, reduction="mean", backend=backend)
    assert inside.dtype == torch.float32
    expected = torch.tensor(ISSUE_VALUE, dtype=torch.float32)
    torch.testing.assert_close(outside, expected)
    torch.testing.assert_close(inside, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_loss_and_grads_under_autocast_equal_outside(backend, dtype, reduction):
    """fp32 inputs: loss and every gradient under autocast equal those outside it (fp32 tolerance)."""
    _skip_missing(backend)
    shape = (2, 13, 7, 5, 3, 4) if backend == "triton" else (2, 40, 16, 24, 5, 10)
    x = make_inputs(*shape, dtype=torch.float32)
    leaves = [x[0], x[1], x[2], x[4], x[5]]
    up = torch.rand(shape[4], shape[0], shape[1], generator=torch.Generator().manual_seed(1))

    def run(autocast):
        with torch.autocast("cpu", dtype=dtype, enabled=autocast):
            out = smooth_infonce(*x, beta=0.1, reduction=reduction, backend=backend)
            scalar = out if reduction == "mean" else (out * up).sum()
        assert out.dtype == torch.float32
        return (out, *torch.autograd.grad(scalar, [t for t in leaves if t is not None], allow_unused=True))

    for a, b in zip(run(True), run(False)):
        if b is None:
            assert a is None
            continue
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_mixed_dtypes_under_autocast_are_promoted_once(backend):
    """Under autocast, bf16 activations with an fp32 weight (what autocast produces) are cast once to
    the widest dtype (fp32) instead of raising; outside autocast the mismatch still raises TypeError."""
    _skip_missing(backend)
    c, z, w, idx, mu, lv = make_inputs(2, 13, 7, 5, 3, 4, dtype=torch.float32, requires_grad=False)
    cb, zb = c.bfloat16().requires_grad_(), z.bfloat16().requires_grad_()
    w = w.requires_grad_()
    with pytest.raises(TypeError, match="weight"):
        smooth_infonce(cb, zb, w, idx, backend=backend)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = smooth_infonce(cb, zb, w, idx, backend=backend)
    expected = smooth_infonce(cb.detach().float(), zb.detach().float(), w.detach(), idx, backend="reference")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)
    got.backward()
    assert cb.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32


def test_native_op_called_directly_under_autocast():
    """The op itself (not only the functional) is defined under autocast: fp32 in, fp32 computed."""
    c, z, w, idx = issue_case()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, _ = torch.ops.sim_kernels.smooth_infonce_fwd(c, z, w, idx, None, None, 0, 2)
    torch.testing.assert_close(loss[0, 0, 0], torch.tensor(ISSUE_VALUE, dtype=torch.float32))


def test_loss_module_under_autocast():
    """SmoothInfoNCELoss under autocast equals itself outside (fp32 inputs, fp32 weight)."""
    c, z, _, idx, mu, lv = make_inputs(2, 20, 8, 8, 4, 5, dtype=torch.float32, requires_grad=False)
    torch.manual_seed(0)
    mod = SmoothInfoNCELoss(8, 8, 4, 5, beta=0.1)
    outside = mod(c, z, mu, lv, neg_idx=idx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = mod(c, z, mu, lv, neg_idx=idx)
    torch.testing.assert_close(inside, outside)


def test_loss_module_keeps_its_fp32_weight_with_bf16_activations_under_autocast():
    """What sim_models meets: conv outputs in bf16 under autocast, the module's W in fp32. The module
    must hand the fp32 W to the functional (which lifts the activations once), not round W to bf16."""
    c, z, _, idx, mu, lv = make_inputs(2, 20, 8, 8, 4, 5, dtype=torch.float32, requires_grad=False)
    torch.manual_seed(0)
    mod = SmoothInfoNCELoss(8, 8, 4, 5, beta=0.1)
    cb, zb, mub, lvb = (t.bfloat16() for t in (c, z, mu, lv))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = mod(cb, zb, mub, lvb, neg_idx=idx)
        functional = smooth_infonce(cb, zb, mod.weight, idx, mub, lvb, beta=0.1)
    expected = smooth_infonce(cb.float(), zb.float(), mod.weight.detach(), idx, mub.float(), lvb.float(), beta=0.1,
                              backend="reference")
    torch.testing.assert_close(got, functional)
    torch.testing.assert_close(got.detach(), expected)


@pytest.mark.skipif("not torch.cuda.is_available()", reason="no CUDA device: CUDA autocast needs a GPU")
@pytest.mark.parametrize("backend", ["reference", "native", "triton"])
@pytest.mark.parametrize("dtype", LOW)
def test_cuda_autocast_equals_outside(backend, dtype):
    """The same rule on CUDA: fp32 inputs under CUDA autocast give the fp32 loss and gradients."""
    if backend == "triton" and "triton" not in BACKENDS:
        pytest.skip("triton is not importable")
    x = [t.cuda() if t is not None else None for t in make_inputs(2, 40, 16, 24, 5, 10, dtype=torch.float32,
                                                                    requires_grad=False)]
    for t in (x[0], x[1], x[2], x[4], x[5]):
        t.requires_grad_()

    def run(autocast):
        with torch.autocast("cuda", dtype=dtype, enabled=autocast):
            out = smooth_infonce(*x, beta=0.1, backend=backend)
        assert out.dtype == torch.float32
        return (out, *torch.autograd.grad(out, [x[0], x[1], x[2], x[4], x[5]]))

    for a, b in zip(run(True), run(False)):
        torch.testing.assert_close(a, b)
