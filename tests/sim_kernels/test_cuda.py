"""Tests of the fused CUDA kernel (csrc/cuda/) and of the shared math header (csrc/smooth_infonce.h).

Three groups:
  * build/registration and shared-math tests: CPU only, always run (or skip with the reason);
  * emulation tests: the CUDA kernel's host driver and per-warp bodies compiled for the CPU
    (csrc/cuda/host_emulation.cpp, lane 0 of 1) against sim_kernels.reference: they run without a GPU
    and check the indexing, the anchor window, the tiling, the gradients and grad_targets' segments;
  * GPU tests: the real kernel against the reference; they skip with a reason when no GPU is present.

Nothing here touches CUDA at import time. Shapes: B batch, T time, Cc/Cz channels, K steps, N negatives.
"""
from __future__ import annotations

import os

import pytest
import torch

from sim_kernels import _ext
from sim_kernels.reference import per_anchor_terms

from .emulation import load_cuda_emulation
from .inputs import FULL, LOW, case_id, dtypes, make_inputs, tol


# ((B, T, Cc, Cz, K, N), (t_begin, t_end)): odd sizes, a window, K = 1, N = 1, Cz > 32 (several lanes' worth).
CASES = [
    ((2, 63, 37, 29, 5, 7), (0, 63)),
    ((1, 9, 3, 4, 1, 1), (0, 9)),
    ((3, 20, 16, 40, 12, 10), (2, 19)),
]
CASE_IDS = [f"{case_id(shape)}-W{t0}:{t1}" for shape, (t0, t1) in CASES]
NO_GPU = "no CUDA device: the fused CUDA kernel needs a GPU (the emulation tests cover its logic on the CPU)"
gpu = pytest.mark.skipif("not torch.cuda.is_available()", reason=NO_GPU)
GRAD_NAMES = ("context", "targets", "weight", "mu", "logvar")


def inputs(case, dtype=torch.float32, device="cpu", seed=0, expanded=False):
    """tests/sim_kernels/inputs.py's make_inputs as a dict (the op-level form): context, targets, weight,
    neg_idx (K,B,T,N), mu, logvar, loss_weight (K,B,T), kl_weight (B,T), window. ``expanded``: neg_idx is
    a (B,T,N) tensor expanded over K (stride 0); otherwise negative 0 is the anchor's step-1 positive row
    (an exact tie)."""
    shape, window = case
    x = make_inputs(*shape, dtype=dtype, device=device, seed=seed, expanded=expanded, ties=not expanded,
                    requires_grad=False).as_dict(weights=True)
    x["window"] = window
    return x


def reference_value_and_grad(x, dtype=None, common_window=False):
    """(value, loss, correct, kl, grads dict) of the reference, run in ``dtype`` (default: the inputs')."""
    cast = (lambda t: t.detach().to(dtype)) if dtype is not None else (lambda t: t.detach())
    leaves = {n: cast(x[n]).requires_grad_() for n in GRAD_NAMES}
    t0, t1 = x["window"]
    loss, correct, kl = per_anchor_terms(leaves["context"], leaves["targets"], leaves["weight"], x["neg_idx"],
                                         leaves["mu"], leaves["logvar"], t0, t1, common_window)
    acc = loss.dtype
    value = (x["loss_weight"].to(acc) * loss).sum() + (x["kl_weight"].to(acc) * kl).sum()
    grads = torch.autograd.grad(value, [leaves[n] for n in GRAD_NAMES])
    return value.detach(), loss.detach(), correct, kl.detach(), dict(zip(GRAD_NAMES, grads))


def op_args(x, with_kl=True):
    t0, t1 = x["window"]
    mu, lv = (x["mu"], x["logvar"]) if with_kl else (None, None)
    return (x["context"], x["targets"], x["weight"], x["neg_idx"], mu, lv, t0, t1)


def positive_margin(x):
    """(K, B, T) float64 s+ - max_n s-_n of the inputs, to skip near-ties when comparing `correct`."""
    B, T, _ = x["context"].shape
    K = x["weight"].shape[0]
    c, z, w = (x[n].detach().double().cpu() for n in ("context", "targets", "weight"))
    zf, neg = z.reshape(B * T, -1), x["neg_idx"].cpu()
    out = torch.zeros(K, B, T, dtype=torch.float64)
    for k in range(1, K + 1):
        p = torch.einsum("btc,zc->btz", c[:, : T - k], w[k - 1])
        pos = (z[:, k:] * p).sum(-1)
        negs = torch.einsum("btnz,btz->btn", zf[neg[k - 1, :, : T - k]], p).max(-1).values
        out[k - 1, :, : T - k] = pos - negs
    return out


def assert_correct_matches(correct, ref_correct, x, tol=1e-3):
    """`correct` must equal the reference except at near-ties (|margin| <= tol), where the rounding of
    two different summation orders decides; at exact duplicates of the positive it must be False."""
    margin = positive_margin(x)
    clear = margin.abs() > tol * (1 + margin.abs())
    torch.testing.assert_close(correct.cpu()[clear], ref_correct.cpu()[clear])
    B, T, _ = x["context"].shape
    neg = x["neg_idx"].cpu()
    t = torch.arange(T - 1)
    dup = (neg[0, :, : T - 1, :] == (torch.arange(B).view(B, 1) * T + t + 1).unsqueeze(-1)).any(-1)  # (B, T-1), k = 1
    t0, t1 = x["window"]
    dup &= ((t >= t0) & (t < t1 - 1)).view(1, T - 1)
    assert not correct.cpu()[0, :, : T - 1][dup].any(), "a negative equal to the positive must count as wrong"


def max_err(a, b):
    return (a.double().cpu() - b.double().cpu()).abs().max().item() if a.numel() else 0.0


def assert_low_precision_ok(ours, ref_lp, ref_hi, name, floor=1e-5):
    """flash-attention's rule: our error vs the float64 reference <= 2x the reference's own error in
    the low-precision dtype, plus a small floor for tensors the low-precision reference gets exact:
    ``floor`` and one float32 rounding of the largest value (the fp32 accumulators' last rounding:
    a value of ~2600 is stored to +-1.2e-4 however well it was summed)."""
    e_ours, e_ref = max_err(ours, ref_hi), max_err(ref_lp, ref_hi)
    floor = floor + torch.finfo(torch.float32).eps * (ref_hi.abs().max().item() if ref_hi.numel() else 0.0)
    assert e_ours <= 2 * e_ref + floor, f"{name}: error {e_ours:.3g} > 2 x reference error {e_ref:.3g}"


def check_against_reference(out_fwd, out_w, x, dtype):
    """Compare fwd outputs (loss, correct, kl) and weighted outputs (value, loss, correct, kl, 5 grads)."""
    value, loss, correct, kl, *grads = out_w
    grads = dict(zip(GRAD_NAMES, grads))
    if dtype in FULL:
        r_value, r_loss, r_correct, r_kl, r_grads = reference_value_and_grad(x)
        t = tol(dtype)
        for got in (out_fwd[0], loss):
            torch.testing.assert_close(got.cpu(), r_loss, **t)
        for got in (out_fwd[2], kl):
            torch.testing.assert_close(got.cpu(), r_kl, **t)
        torch.testing.assert_close(value.cpu(), r_value, **t)
        for n in GRAD_NAMES:
            assert grads[n].dtype == dtype, n
            torch.testing.assert_close(grads[n].cpu(), r_grads[n].cpu(), **t, msg=lambda m, n=n: f"grad_{n}: {m}")
    else:
        hi = reference_value_and_grad(x, torch.float64)
        lp = reference_value_and_grad(x)
        for i, name in ((0, "value"), (1, "loss"), (3, "kl")):
            assert_low_precision_ok(out_w[i], lp[i], hi[i], name)
        assert_low_precision_ok(out_fwd[0], lp[1], hi[1], "fwd loss")
        for n in GRAD_NAMES:
            assert grads[n].dtype == dtype, n
            assert_low_precision_ok(grads[n], lp[4][n], hi[4][n], f"grad_{n}")
        r_correct = hi[2]
    assert correct.dtype == torch.bool
    assert torch.equal(out_fwd[1].cpu(), correct.cpu())
    assert_correct_matches(correct, r_correct, x)


# ----------------------------------------------------------------------------------------------
# Build / registration and the shared math header (CPU).


def test_force_cuda_build_registered_cuda_kernels():
    if os.environ.get("FORCE_CUDA") != "1":
        pytest.skip("only meaningful for a FORCE_CUDA=1 build (CI builds and tests with FORCE_CUDA=1 set)")
    assert _ext.available(), f"FORCE_CUDA=1 but sim_kernels._C did not load: {_ext.LOAD_ERROR}"
    ops = ["smooth_infonce_fwd", "smooth_infonce_value_and_grad"]
    if os.environ.get("SIM_SELFTEST_OPS") == "1":
        ops.append("_shared_math_selftest")
    for op in ops:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"sim_kernels::{op}", "CUDA"), op
    assert _ext.has_kernel("cuda")


def _selftest_cases(dtype):
    g = torch.Generator().manual_seed(1)
    scores = torch.cat([torch.randn(6, 11, generator=g), 300 * torch.randn(4, 11, generator=g)]).to(dtype)
    inf = float("inf")
    special = torch.tensor([[-inf, 0.0, 1.0, -inf], [-inf, -inf, -inf, -inf], [inf, 2.0, -inf, 0.0],
                            [3.0, 3.0, 3.0, 3.0], [1e4, -1e4, 1e4 - 1, 0.0], [float("nan"), 1.0, 2.0, 3.0]], dtype=dtype)
    mu, lv = torch.randn(10, 37, generator=g).to(dtype), torch.randn(10, 37, generator=g).to(dtype)
    return [(scores, mu, lv), (special, mu[:6, :5], lv[:6, :5])]


def _check_selftest(fn, dtype, device):
    for scores, mu, lv in _selftest_cases(dtype):
        lse, kl = fn(scores.to(device), mu.to(device), lv.to(device))
        ref_lse = torch.logsumexp(scores.double(), dim=1)
        ref_kl = (0.5 * (mu.double() ** 2 + lv.double().exp() - lv.double() - 1)).sum(1)
        torch.testing.assert_close(lse.cpu().double(), ref_lse, equal_nan=True, rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(kl.cpu().double(), ref_kl, rtol=1e-5, atol=1e-5)


def test_selftest_op_only_in_test_builds():
    """The test hook _shared_math_selftest is in the schema exactly when the build set SIM_SELFTEST_OPS=1
    (the GPU check's build); a user's build ships only the two loss ops."""
    if not _ext.available():
        pytest.skip(f"sim_kernels._C is not built: {_ext.LOAD_ERROR}")
    registered = "sim_kernels::_shared_math_selftest" in torch._C._dispatch_get_all_op_names()
    assert registered == (os.environ.get("SIM_SELFTEST_OPS") == "1")


# ----------------------------------------------------------------------------------------------
# The CUDA kernel's driver and per-warp bodies, emulated on the CPU.


@pytest.fixture(scope="module")
def emulation():
    return load_cuda_emulation()


def _emulated(emu, x, with_kl=True):
    args = op_args(x, with_kl)
    kw = x["kl_weight"] if with_kl else None
    return emu.smooth_infonce_fwd(*args), emu.smooth_infonce_value_and_grad(*args, x["loss_weight"], kw)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", dtypes(*FULL, *LOW))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_emulation_matches_reference(emulation, case, dtype):
    x = inputs(case, dtype)
    out_fwd, out_w = _emulated(emulation, x)
    check_against_reference(out_fwd, out_w, x, dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", dtypes(*FULL))
def test_emulation_shared_math(emulation, dtype):
    """The header's online log-sum-exp and KL through the kernel's selftest body, on the CPU."""
    _check_selftest(emulation.shared_math_selftest, dtype, "cpu")


@pytest.mark.slow
def test_emulation_shared_math_wide_range(emulation):
    """Scores spanning 1..1e4 and equal rows, logvar in [-30, 30], float64 (moved from the CPU self-test op)."""
    g = torch.Generator().manual_seed(1)
    scales = torch.tensor([1, 10, 100, 1e3, 1e4, 0.0], dtype=torch.float64).view(6, 1)
    scores = torch.randn(6, 9, generator=g, dtype=torch.float64) * scales
    scores[5] = 3.0  # all equal
    mu = torch.randn(6, 7, generator=g, dtype=torch.float64)
    lv = torch.empty(6, 7, dtype=torch.float64).uniform_(-30, 30, generator=g)
    lse, kl = emulation.shared_math_selftest(scores, mu, lv)
    torch.testing.assert_close(lse, torch.logsumexp(scores, dim=1))
    torch.testing.assert_close(kl, 0.5 * (mu**2 + lv.exp() - lv - 1).sum(1))


@pytest.mark.slow
@pytest.mark.parametrize("tile_rows", [1, 7])
def test_emulation_many_tiles_and_expanded_neg_idx(emulation, monkeypatch, tile_rows):
    """Tiles smaller than B*T (and not dividing it), a stride-0 neg_idx and non-contiguous inputs."""
    x = inputs(CASES[0], torch.float64, expanded=True)
    assert x["neg_idx"].stride(0) == 0
    x["context"] = x["context"].transpose(0, 1).contiguous().transpose(0, 1)
    x["loss_weight"] = x["loss_weight"][:, :1].expand_as(x["loss_weight"])
    monkeypatch.setenv("SIM_CUDA_TILE_ROWS", str(tile_rows))
    out_fwd, out_w = _emulated(emulation, x)
    check_against_reference(out_fwd, out_w, x, torch.float64)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_emulation_common_window(emulation, case):
    """CPC_audio's common anchor window (t < t_end - K for every step) through the CUDA driver and bodies."""
    x = inputs(case, torch.float64)
    args = op_args(x)
    loss, correct, kl = emulation.smooth_infonce_fwd(*args, common_window=True)
    value, w_loss, w_correct, w_kl, *grads = emulation.smooth_infonce_value_and_grad(*args, x["loss_weight"], x["kl_weight"],
                                                                                common_window=True)
    r_value, r_loss, r_correct, r_kl, r_grads = reference_value_and_grad(x, common_window=True)
    t0, t1 = x["window"]
    K = x["weight"].shape[0]
    assert (loss[:, :, t1 - K:] == 0).all() and not correct[:, :, t1 - K:].any()
    for got in (loss, w_loss):
        torch.testing.assert_close(got, r_loss)
    torch.testing.assert_close(value, r_value)
    for n, g in zip(GRAD_NAMES, grads):
        torch.testing.assert_close(g, r_grads[n], msg=lambda m, n=n: f"grad_{n}: {m}")
    # An out-of-range index used only at t in [t_end - K, t_end - 1) (an anchor of step 1 per step, not of the
    # common window) is not read, so it is not an error.
    if K < 2:
        return
    bad = x["neg_idx"].clone()
    bad[0, :, t1 - 2, :] = -5
    emulation.smooth_infonce_fwd(*args[:3], bad, *args[4:], common_window=True)
    with pytest.raises(ValueError, match="neg_idx"):
        emulation.smooth_infonce_fwd(*args[:3], bad, *args[4:])


@pytest.mark.slow
def test_emulation_without_kl(emulation):
    x = inputs(CASES[1], torch.float64)
    loss, correct, kl = emulation.smooth_infonce_fwd(*op_args(x, with_kl=False))
    assert kl.shape == (0,)
    out = emulation.smooth_infonce_value_and_grad(*op_args(x, with_kl=False), x["loss_weight"], None)
    assert out[3].shape == (0,) and out[7].shape == (0,) and out[8].shape == (0,)
    assert out[7].dtype == out[8].dtype == torch.float64
    x["kl_weight"] = torch.zeros_like(x["kl_weight"])  # the reference with the KL term weighted 0
    r_value, r_loss, _, _, r_grads = reference_value_and_grad(x)
    torch.testing.assert_close(loss, r_loss)
    torch.testing.assert_close(out[0], r_value)
    for i, n in enumerate(GRAD_NAMES[:3]):
        torch.testing.assert_close(out[4 + i], r_grads[n])


@pytest.mark.slow
def test_emulation_determinism(emulation):
    x = inputs(CASES[0], torch.float32)
    a, b = _emulated(emulation, x)[1], _emulated(emulation, x)[1]
    for u, v in zip(a, b):
        assert torch.equal(u, v)


@pytest.mark.slow
def test_emulation_rejects_bad_arguments(emulation):
    x = inputs(CASES[1], torch.float32)
    args = list(op_args(x))
    bad = x["neg_idx"].clone()
    bad[0, 0, 2, 0] = 9 * 1  # B*T = 9: out of range
    with pytest.raises(ValueError, match=r"neg_idx.*\[0, 9\).*found 9"):
        emulation.smooth_infonce_fwd(*args[:3], bad, *args[4:])
    bad[0, 0, 2, 0] = -2  # -1 is the "no negative" sentinel
    with pytest.raises(ValueError, match="neg_idx"):
        emulation.smooth_infonce_fwd(*args[:3], bad, *args[4:])
    unused = x["neg_idx"].clone()
    unused[0, 0, 8, 0] = 1000  # t = 8 = T - 1 has no positive at k = 1: never read, so accepted
    emulation.smooth_infonce_fwd(*args[:3], unused, *args[4:])
    with pytest.raises(TypeError, match="neg_idx must be int64"):
        emulation.smooth_infonce_fwd(*args[:3], x["neg_idx"].int(), *args[4:])
    with pytest.raises(TypeError, match="targets must have the dtype of context"):
        emulation.smooth_infonce_fwd(args[0], args[1].double(), *args[2:])
    with pytest.raises(ValueError, match=r"weight must have shape \(K, Cz, Cc\)"):
        emulation.smooth_infonce_fwd(*args[:2], args[2][:, :, :2], *args[3:])
    with pytest.raises(ValueError, match="mu and logvar must be given together"):
        emulation.smooth_infonce_fwd(*args[:5], None, *args[6:])
    with pytest.raises(ValueError, match="t_begin, t_end"):
        emulation.smooth_infonce_fwd(*args[:6], 3, 10)
    with pytest.raises(ValueError, match="t_begin, t_end"):
        emulation.smooth_infonce_fwd(*args[:6], 4, 4)
    with pytest.raises(ValueError, match=r"K \(prediction steps\) \+ first_step - 1 must be < the anchor window 1, got K=1, first_step=1"):
        emulation.smooth_infonce_fwd(*args[:6], 4, 5)
    with pytest.raises(ValueError, match=r"loss_weight must have shape \(K, B, T\)"):
        emulation.smooth_infonce_value_and_grad(*args, x["loss_weight"][:, :, :3], x["kl_weight"])
    with pytest.raises(TypeError, match="loss_weight must be Float"):
        emulation.smooth_infonce_value_and_grad(*args, x["loss_weight"].double(), x["kl_weight"])
    with pytest.raises(ValueError, match="kl_weight must be given exactly when mu and logvar are"):
        emulation.smooth_infonce_value_and_grad(*args, x["loss_weight"], None)
    with pytest.raises(ValueError, match="kl_weight must be given exactly when mu and logvar are"):
        emulation.smooth_infonce_value_and_grad(*args[:4], None, None, *args[6:], x["loss_weight"], x["kl_weight"])


# ----------------------------------------------------------------------------------------------
# The real kernel on a GPU.


def _cuda_ops():
    if not _ext.has_kernel("cuda"):
        pytest.fail(f"a GPU is present but no CUDA kernel is registered (build with FORCE_CUDA=1): {_ext.LOAD_ERROR}")
    from sim_kernels import ops  # noqa: F401  (register_fake + register_autograd)

    return torch.ops.sim_kernels


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", dtypes(*FULL, *LOW))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gpu_matches_reference(case, dtype):
    ops = _cuda_ops()
    x = inputs(case, dtype, device="cuda")
    args = op_args(x)
    out_fwd = ops.smooth_infonce_fwd(*args)
    out_w = ops.smooth_infonce_value_and_grad(*args, x["loss_weight"], x["kl_weight"])
    assert out_fwd[0].is_cuda and out_w[4].is_cuda
    check_against_reference(out_fwd, out_w, {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in x.items()}, dtype)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", dtypes(torch.float32, torch.float16, torch.bfloat16))
def test_gpu_public_api_loss_and_grads(dtype):
    """sim_kernels.smooth_infonce(backend="native") on CUDA tensors, loss not the last layer."""
    from sim_kernels import smooth_infonce

    _cuda_ops()
    x = inputs(CASES[0], dtype, device="cuda")

    def run(backend, cast):
        leaves = {n: x[n].detach().to(cast).requires_grad_() for n in GRAD_NAMES}
        loss = smooth_infonce(leaves["context"], leaves["targets"], leaves["weight"], x["neg_idx"], leaves["mu"],
                              leaves["logvar"], beta=0.01, backend=backend)
        (loss * 3.0).backward()
        return loss.detach(), {n: leaves[n].grad for n in GRAD_NAMES}

    ours = run("native", dtype)
    hi = run("reference", torch.float64)
    if dtype == torch.float32:
        torch.testing.assert_close(ours[0].double(), hi[0], rtol=1e-5, atol=1e-5)
        for n in GRAD_NAMES:
            torch.testing.assert_close(ours[1][n].double(), hi[1][n], rtol=1e-4, atol=1e-6)
    else:
        lp = run("reference", dtype)
        assert_low_precision_ok(ours[0], lp[0], hi[0], "loss")
        for n in GRAD_NAMES:
            assert_low_precision_ok(ours[1][n], lp[1][n], hi[1][n], f"grad_{n}")


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gpu_common_window(case):
    """CPC_audio's common anchor window on the GPU (the emulation test checks the same on the CPU)."""
    ops = _cuda_ops()
    x = inputs(case, torch.float64, device="cuda")
    out = ops.smooth_infonce_value_and_grad(*op_args(x), x["loss_weight"], x["kl_weight"], True)
    value, loss, _, _, *grads = out
    xc = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in x.items()}
    r_value, r_loss, _, _, r_grads = reference_value_and_grad(xc, common_window=True)
    torch.testing.assert_close(loss.cpu(), r_loss)
    torch.testing.assert_close(value.cpu(), r_value)
    for n, g in zip(GRAD_NAMES, grads):
        torch.testing.assert_close(g.cpu(), r_grads[n], msg=lambda m, n=n: f"grad_{n}: {m}")


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("with_kl", [True, False], ids=["kl", "nokl"])
def test_gpu_opcheck(with_kl):
    ops = _cuda_ops()
    x = inputs(CASES[1], torch.float32, device="cuda")
    args = op_args(x, with_kl)
    torch.library.opcheck(ops.smooth_infonce_fwd.default, args)
    torch.library.opcheck(ops.smooth_infonce_value_and_grad.default,
                          (*args, x["loss_weight"], x["kl_weight"] if with_kl else None))


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("tile_rows", ["", "5"], ids=["one-tile", "tiles-of-5"])
def test_gpu_deterministic_grads(monkeypatch, tile_rows):
    ops = _cuda_ops()
    if tile_rows:
        monkeypatch.setenv("SIM_CUDA_TILE_ROWS", tile_rows)
    # Many duplicate target rows (N = 10 negatives from only 2*63 rows) stress grad_targets' segments.
    x = inputs(CASES[0], torch.float32, device="cuda", expanded=True)
    args = (*op_args(x), x["loss_weight"], x["kl_weight"])
    first = ops.smooth_infonce_value_and_grad(*args)
    for _ in range(3):
        again = ops.smooth_infonce_value_and_grad(*args)
        for a, b in zip(first, again):
            assert torch.equal(a, b)


@gpu
@pytest.mark.gpu
def test_gpu_side_stream():
    ops = _cuda_ops()
    x = inputs(CASES[2], torch.float32, device="cuda")
    args = (*op_args(x), x["loss_weight"], x["kl_weight"])
    base = ops.smooth_infonce_value_and_grad(*args)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        side = ops.smooth_infonce_value_and_grad(*args)
    torch.cuda.current_stream().wait_stream(s)
    # Not bitwise: cuBLAS may pick other GEMM algorithms on another stream (workspace per stream).
    for a, b in zip(base, side):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@gpu
@pytest.mark.gpu
def test_gpu_shared_math():
    """The header's online log-sum-exp and KL run on the device (the hook exists in SIM_SELFTEST_OPS=1 builds)."""
    _cuda_ops()
    if not hasattr(torch.ops.sim_kernels, "_shared_math_selftest"):
        pytest.skip("sim_kernels._C was built without SIM_SELFTEST_OPS=1 (the GPU check's build sets it)")
    for dtype in FULL:
        _check_selftest(torch.ops.sim_kernels._shared_math_selftest, dtype, "cuda")


@gpu
@pytest.mark.gpu
def test_gpu_rejects_bad_index():
    ops = _cuda_ops()
    x = inputs(CASES[1], torch.float32, device="cuda")
    args = list(op_args(x))
    bad = x["neg_idx"].clone()
    bad[0, 0, 1, 0] = 9
    with pytest.raises(ValueError, match=r"neg_idx.*found 9"):
        ops.smooth_infonce_fwd(*args[:3], bad, *args[4:])
    with pytest.raises(ValueError, match="neg_idx must be on the device of context"):
        ops.smooth_infonce_fwd(*args[:3], x["neg_idx"].cpu(), *args[4:])
