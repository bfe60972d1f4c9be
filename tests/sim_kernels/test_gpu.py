"""GPU-only checks of the CUDA and Triton backends through the public API (`make gpu-check` runs them).

What tests/sim_kernels/test_cuda.py (raw CUDA ops) and test_triton.py (same tests, interpreter or
GPU) do not already cover: CUDA against the CPU kernel, the low-precision 2x rule for Triton bf16
(the interpreter's bf16 dot is wrong, so only a GPU can check it), bitwise-repeatable Triton
gradients, non-contiguous inputs for the CUDA kernel, out-of-range indices and zero-size inputs
refused on CUDA, odd shapes, and a short hypothesis fuzz of both backends against the float64
reference (SIM_GPU_FUZZ_EXAMPLES examples each, default 30).

Every test skips with the reason when no GPU is visible. Nothing touches CUDA at import time.
"""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim_kernels import _ext, smooth_infonce

from .inputs import case_id, dtypes, make_inputs

NO_GPU = "no CUDA device: these tests need a GPU (make gpu-check runs them on one)"
pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_gpu():
    """A fixture, not a skipif mark: hypothesis' wrapper hides the module globals a string condition needs."""
    if not torch.cuda.is_available():
        pytest.skip(NO_GPU)

GRAD_NAMES = ("context", "targets", "weight", "mu", "logvar")
GPU_BACKENDS = ("native", "triton")
FUZZ_EXAMPLES = int(os.environ.get("SIM_GPU_FUZZ_EXAMPLES", "30"))


def _need(backend):
    if backend == "native" and not _ext.has_kernel("cuda"):
        pytest.fail("no CUDA kernel registered: sim_kernels._C was built without CUDA (FORCE_CUDA=1 builds it)")
    if backend == "triton":
        from sim_kernels.triton.ops import _interpreted

        if _interpreted():
            pytest.skip("TRITON_INTERPRET=1 is set: the GPU tests need compiled Triton (TRITON_INTERPRET=0)")


def make(B, T, Cc, Cz, K, N, dtype=torch.float32, device="cuda", shared=False, seed=0, kl=True):
    """tests/sim_kernels/inputs.py's make_inputs as a dict of leaves (no mu/logvar keys without ``kl``):
    drawn on the CPU (same numbers for every dtype and device), then cast and moved."""
    x = make_inputs(B, T, Cc, Cz, K, N, dtype=dtype, device=device, shared=shared, with_kl=kl, seed=seed).as_dict()
    return {k: v for k, v in x.items() if v is not None}


def run(x, backend, upstream=None, **kw):
    """Loss and the gradients of sum(upstream * loss) (the loss is not the last layer)."""
    leaves = [x[n] for n in GRAD_NAMES if n in x]
    out = smooth_infonce(x["context"], x["targets"], x["weight"], x["neg_idx"], x.get("mu"), x.get("logvar"),
                         beta=kw.pop("beta", 0.01), backend=backend, **kw)
    scalar = out.sum() * 3.0 if upstream is None else (out * upstream).sum()
    grads = torch.autograd.grad(scalar, leaves, allow_unused=True)
    return out.detach(), dict(zip([n for n in GRAD_NAMES if n in x], grads))


def moved(x, device=None, dtype=None):
    out = {}
    for k, v in x.items():
        v = v.detach().to(device=device or v.device)
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.requires_grad_() if v.is_floating_point() else v
    return out


def max_err(a, b):
    return (a.double().cpu() - b.double().cpu()).abs().max().item() if a.numel() else 0.0


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cuda_matches_cpu_kernel(backend, reduction):
    """The GPU backends and the fused CPU kernel compute the same loss and gradients (fp32)."""
    _need(backend)
    if not _ext.has_kernel("cpu"):
        pytest.fail("the native CPU kernel is missing")
    x = make(2, 63, 37, 29, 5, 7)
    g = torch.Generator().manual_seed(1)
    up = torch.rand(5, 2, 63, generator=g) if reduction == "none" else None
    gpu_loss, gpu_grads = run(x, backend, None if up is None else up.cuda(), reduction=reduction)
    cpu_loss, cpu_grads = run(moved(x, "cpu"), "native", up, reduction=reduction)
    torch.testing.assert_close(gpu_loss.cpu(), cpu_loss, rtol=1e-5, atol=1e-5)
    for n, g_cpu in cpu_grads.items():
        g_gpu = gpu_grads[n]
        if g_cpu is None:
            assert g_gpu is None or not g_gpu.any(), n
            continue
        torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=1e-4, atol=1e-6 + 1e-5 * float(g_cpu.abs().max()),
                                   msg=lambda m, n=n: f"{backend} grad of {n} vs the CPU kernel: {m}")


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", dtypes(torch.float16, torch.bfloat16))
def test_low_precision_within_twice_the_reference_error(backend, dtype):
    """flash-attention's rule: error vs float64 <= 2x the reference's own error in that dtype, plus a
    floor of one float32 rounding of the largest value (the kernels' accumulators are fp32)."""
    _need(backend)
    x = make(3, 40, 64, 48, 6, 10, dtype=dtype)
    ours = run(x, backend)
    lp = run(moved(x), "reference")
    hi = run(moved(x, dtype=torch.float64), "reference")
    for name, a, b, c in [("loss", ours[0], lp[0], hi[0])] + [
            (f"grad_{n}", ours[1][n], lp[1][n], hi[1][n]) for n in GRAD_NAMES]:
        assert a.dtype == b.dtype or name == "loss", name
        floor = 1e-5 + torch.finfo(torch.float32).eps * float(c.abs().max())
        e_ours, e_ref = max_err(a, c), max_err(b, c)
        assert e_ours <= 2 * e_ref + floor, f"{backend} {dtype} {name}: error {e_ours:.3g} > 2 x {e_ref:.3g} + {floor:.2g}"


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_gradients_bitwise_repeatable(backend):
    """Same inputs, same gradients, bit for bit (deterministic kernels: no atomics), with many duplicate negative rows."""
    _need(backend)
    x = make(2, 63, 37, 29, 5, 10, shared=True)
    first = run(x, backend)
    for _ in range(3):
        again = run(x, backend)
        assert torch.equal(first[0], again[0])
        for n in GRAD_NAMES:
            assert torch.equal(first[1][n], again[1][n]), f"{backend}: grad of {n} changed between runs"


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_non_contiguous_inputs(backend):
    _need(backend)
    x = make(2, 21, 17, 13, 4, 5)
    nc = {}
    for k, v in x.items():  # the same values behind transposed strides
        if v.is_floating_point():
            nc[k] = v.detach().transpose(-1, -2).contiguous().transpose(-1, -2).requires_grad_()
            assert not nc[k].is_contiguous()
        else:
            nc[k] = v
    a, b = run(x, backend), run(nc, backend)
    torch.testing.assert_close(a[0], b[0])
    for n in GRAD_NAMES:
        torch.testing.assert_close(a[1][n], b[1][n])


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("bad", [-2, 2 * 9], ids=["negative", "one-past-the-end"])  # -1: "no negative"
def test_out_of_range_index_refused(backend, bad):
    _need(backend)
    x = make(2, 9, 4, 4, 2, 3)
    x["neg_idx"] = x["neg_idx"].clone()
    x["neg_idx"][1, 0, 2, 1] = bad
    with pytest.raises(ValueError, match="neg_idx"):
        run(x, backend)
        torch.cuda.synchronize()


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("what", ["B0", "T0"])
def test_zero_size_refused_with_the_argument_named(backend, what):
    _need(backend)
    B, T = (0, 9) if what == "B0" else (2, 0)
    z = torch.zeros(B, T, 4, device="cuda")
    with pytest.raises(ValueError, match=r"B\*T"):
        smooth_infonce(z, z, torch.zeros(1, 4, 4, device="cuda"), torch.zeros(1, B, T, 1, dtype=torch.long, device="cuda"),
                       backend=backend)


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("shape", [(1, 2, 1, 1, 1, 1), (3, 7, 3, 130, 6, 1), (1, 300, 5, 7, 12, 33), (5, 13, 257, 3, 2, 4)],
                         ids=case_id)
def test_odd_shapes_against_float64_reference(backend, shape):
    _need(backend)
    x = make(*shape)
    ours = run(x, backend)
    hi = run(moved(x, dtype=torch.float64), "reference")
    torch.testing.assert_close(ours[0].double(), hi[0], rtol=1e-5, atol=1e-5)
    for n in GRAD_NAMES:
        h = hi[1][n]
        torch.testing.assert_close(ours[1][n].double(), h, rtol=1e-4, atol=1e-6 + 1e-5 * float(h.abs().max()),
                                   msg=lambda m, n=n: f"{backend} grad of {n}: {m}")


@st.composite
def problems(draw):
    B, T = draw(st.integers(1, 4)), draw(st.integers(2, 40))
    K, N = draw(st.integers(1, min(12, T - 1))), draw(st.integers(1, 16))
    Cc, Cz = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    return dict(shape=(B, T, Cc, Cz, K, N), shared=draw(st.booleans()), kl=draw(st.booleans()),
                reduction=draw(st.sampled_from(["mean", "sum", "none"])),
                kl_reduction=draw(st.sampled_from(["dims", "time"])), seed=draw(st.integers(0, 2**31 - 1)))


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(p=problems())
def test_fuzz_against_float64_reference(backend, p):
    """Values and every gradient (random upstream for reduction="none") against the float64 reference."""
    _need(backend)
    x = make(*p["shape"], shared=p["shared"], seed=p["seed"], kl=p["kl"])
    kw = dict(reduction=p["reduction"], kl_reduction=p["kl_reduction"])
    up = None
    if p["reduction"] == "none":
        B, T, _, _, K, _ = p["shape"]
        up = torch.rand(K, B, T, generator=torch.Generator().manual_seed(p["seed"])).cuda()
    ours = run(x, backend, up, **kw)
    hi = run(moved(x, dtype=torch.float64), "reference", None if up is None else up.double(), **kw)
    torch.testing.assert_close(ours[0].double(), hi[0], rtol=1e-5, atol=1e-5)
    for n, h in hi[1].items():
        if h is None:
            assert ours[1][n] is None or not ours[1][n].any(), n
            continue
        torch.testing.assert_close(ours[1][n].double(), h, rtol=1e-4, atol=1e-6 + 1e-5 * float(h.abs().max()),
                                   msg=lambda m, n=n: f"{backend} {p} grad of {n}: {m}")
