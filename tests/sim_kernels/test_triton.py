"""Triton backend vs the reference. Runs in the Triton interpreter on CPU tensors (tests/conftest.py
sets TRITON_INTERPRET=1 before triton is imported), so shapes are tiny; with TRITON_INTERPRET=0 and
a GPU the same tests run on CUDA. No CUDA is touched at import time.
"""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

triton_backend = pytest.importorskip("sim_kernels.triton", reason="triton is not importable")

from sim_kernels import backends  # noqa: E402
from sim_kernels.functional import smooth_infonce, smooth_infonce_with_metrics  # noqa: E402
from sim_kernels.reference import per_anchor_terms  # noqa: E402
from sim_kernels.spec import LossSpec  # noqa: E402
from sim_kernels.triton import BACKEND, block_sizes, override_block_sizes, set_block_sizes  # noqa: E402
from sim_kernels.triton.ops import _interpreted  # noqa: E402

from .inputs import case_id, make_inputs, tol  # noqa: E402

# Multiple row tiles, channel chunks and weight-gradient tiles even on tiny shapes.
SMALL_BLOCKS = dict(BLOCK_M=16, BLOCK_C=16, BLOCK_WZ=16, BLOCK_WC=16, BLOCK_R=16)


@pytest.fixture
def device():
    if _interpreted():
        return "cpu"
    if not torch.cuda.is_available():
        pytest.skip("triton is compiled (TRITON_INTERPRET unset) but no GPU is visible")
    return "cuda"


def make(B, T, Cc, Cz, K, N, device, dtype=torch.float32, per_k=False, kl=True, seed=0):
    """tests/sim_kernels/inputs.py's make_inputs as keyword arguments of smooth_infonce: neg_idx shared
    over the steps (B, T, N), or per step (K, B, T, N) with ``per_k``; mu/logvar None without ``kl``."""
    return make_inputs(B, T, Cc, Cz, K, N, dtype=dtype, shared=not per_k, with_kl=kl, seed=seed,
                       device=device).as_dict()


def diff_inputs(x):
    return [x[k] for k in ("context", "targets", "weight", "mu", "logvar") if x.get(k) is not None]


def loss_and_grads(x, upstream=None, **kw):
    """The loss and d(sum(upstream * loss))/d(every float input)."""
    out = smooth_infonce(**x, **kw)
    scalar = out if upstream is None else (out * upstream).sum()
    grads = torch.autograd.grad(scalar, diff_inputs(x), allow_unused=True)
    return out, grads


def assert_matches_reference(x, upstream=None, **kw):
    got, got_g = loss_and_grads(x, upstream, backend="triton", **kw)
    ref, ref_g = loss_and_grads(x, upstream, backend="reference", **kw)
    assert got.dtype == ref.dtype
    assert_close(got, ref, **tol(got.dtype))
    for name, a, b in zip(("context", "targets", "weight", "mu", "logvar"), got_g, ref_g):
        if b is None:  # input not used (reduction="none" has no KL term)
            assert a is None or not a.any(), name
        else:
            assert_close(a, b, **tol(b.dtype), msg=lambda m, name=name: f"d/d{name}: {m}")


@pytest.mark.parametrize("per_k", [False, True], ids=["shared-neg", "per-k-neg"])
@pytest.mark.parametrize("reduction,kl_reduction", [("mean", "dims"), ("sum", "time"), ("none", "dims")])
def test_matches_reference_B2_T13_C7_K3_N5(device, reduction, kl_reduction, per_k):
    x = make(2, 13, 7, 7, 3, 5, device, per_k=per_k)
    # reduction="none": the loss is not the last layer, so use a random upstream gradient.
    upstream = torch.randn(3, 2, 13, device=device) if reduction == "none" else None
    assert_matches_reference(x, upstream, beta=0.3, reduction=reduction, kl_reduction=kl_reduction)


@pytest.mark.parametrize("shape", [(1, 9, 5, 11, 2, 3), (2, 21, 37, 19, 4, 7)], ids=case_id)
def test_odd_shapes_with_small_blocks(device, shape):
    x = make(*shape, device, per_k=True)
    with override_block_sizes(**SMALL_BLOCKS):
        assert_matches_reference(x, beta=0.1)


def test_without_kl_and_beta_zero(device):
    x = make(2, 10, 6, 9, 3, 4, device, kl=False)
    assert_matches_reference(x)


def test_window_and_metrics(device):
    x = make(2, 15, 8, 8, 3, 4, device)
    kw = dict(beta=0.2, window=(2, 13))
    got, gm = smooth_infonce_with_metrics(**x, backend="triton", **kw)
    ref, rm = smooth_infonce_with_metrics(**x, backend="reference", **kw)
    assert_close(got, ref)
    for key in ("nce", "accuracy", "kl"):
        assert_close(gm[key], rm[key])
    for a, b in zip(torch.autograd.grad(got, diff_inputs(x)), torch.autograd.grad(ref, diff_inputs(x))):
        assert_close(a, b)


def test_fwd_terms_and_strict_correct(device):
    """Per-anchor outputs of BACKEND.fwd; a negative equal to the positive (a tie) is not correct."""
    x = make(2, 11, 6, 5, 3, 4, device, per_k=True)
    idx = x["neg_idx"].clone()
    idx[1, 0, 2, :] = 4  # anchor (b=0, t=2) at k=2: every negative is its positive, row 0*T + 2 + 2
    args = (x["context"], x["targets"], x["weight"], idx, x["mu"], x["logvar"])
    with torch.no_grad():
        got, ref = BACKEND.fwd(*args, LossSpec(t_begin=1, t_end=10)), per_anchor_terms(*args, 1, 10)
    assert_close(got[0], ref[0])
    assert torch.equal(got[1], ref[1]) and got[1].dtype == torch.bool
    assert not got[1][1, 0, 2]
    assert_close(got[2], ref[2])
    assert (got[0][:, :, 0] == 0).all() and (got[0][0, :, 9:] == 0).all() and not got[1][2, :, 7:].any()


def test_value_and_grad_scaled_gradients(device):
    """value_and_grad(): value = sum(lw*loss) + sum(kw*kl); backward gives grad_value times the in-pass grads."""
    x = make(2, 9, 5, 6, 2, 3, device, per_k=True)
    lw, kw = torch.rand(2, 2, 9, device=device), torch.rand(2, 9, device=device)
    args = (x["context"], x["targets"], x["weight"], x["neg_idx"], x["mu"], x["logvar"])
    value, loss, correct, kl = BACKEND.value_and_grad(*args, lw, kw, LossSpec(t_begin=0, t_end=9))
    r_loss, r_correct, r_kl = per_anchor_terms(*args, 0, 9)
    ref = (lw * r_loss).sum() + (kw * r_kl).sum()
    assert_close(value, ref)
    assert not loss.requires_grad and not kl.requires_grad
    got_g = torch.autograd.grad(2.5 * value, diff_inputs(x))
    ref_g = torch.autograd.grad(2.5 * ref, diff_inputs(x))
    for a, b in zip(got_g, ref_g):
        assert_close(a, b)


def test_deterministic_bitwise(device):
    x = make(2, 13, 7, 7, 3, 5, device)  # shared negatives: many target rows are used many times
    with override_block_sizes(**SMALL_BLOCKS):
        first = loss_and_grads(x, beta=0.1, backend="triton")
        second = loss_and_grads(x, beta=0.1, backend="triton")
    assert torch.equal(first[0], second[0])
    for a, b in zip(first[1], second[1]):
        assert torch.equal(a, b)


def test_fp16_error_within_twice_reference_error(device):
    """The 2x rule (flash-attention's): our fp16 error vs an fp32 reference <= 2x the reference's own fp16 error."""
    x32 = make(2, 13, 7, 7, 3, 5, device, per_k=True)
    x16 = {k: (v.detach().half().requires_grad_() if v.is_floating_point() else v) for k, v in x32.items()}
    truth, truth_g = loss_and_grads(x32, beta=0.1, backend="reference")
    ours, ours_g = loss_and_grads(x16, beta=0.1, backend="triton")
    ref, ref_g = loss_and_grads(x16, beta=0.1, backend="reference")
    assert ours.dtype == torch.float32 and ours_g[0].dtype == torch.float16
    for name, o, r, t in zip(("loss", "context", "targets", "weight", "mu", "logvar"),
                             (ours, *ours_g), (ref, *ref_g), (truth, *truth_g)):
        ours_err = (o.float() - t).abs().max().item()
        ref_err = (r.float() - t).abs().max().item()
        print(f"fp16 {name}: ours {ours_err:.3g}, reference {ref_err:.3g}")
        # The small floor covers outputs the fp16 reference happens to hit exactly.
        assert ours_err <= 2 * ref_err + 1e-4 * t.abs().max().item(), (name, ours_err, ref_err)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_float64_gradcheck(device, reduction):
    """float64 accumulates in float64: the analytic gradients pass torch.autograd.gradcheck."""
    x = make(1, 6, 3, 4, 2, 2, device, dtype=torch.float64, per_k=True)
    idx = x.pop("neg_idx")

    def f(context, targets, weight, mu, logvar):
        return smooth_infonce(context, targets, weight, idx, mu, logvar, beta=0.3, reduction=reduction,
                              backend="triton")

    out = f(*diff_inputs(x))
    assert out.dtype == torch.float64
    assert_close(out, smooth_infonce(*diff_inputs(x)[:3], idx, *diff_inputs(x)[3:], beta=0.3, reduction=reduction,
                                     backend="reference"))
    assert torch.autograd.gradcheck(f, tuple(diff_inputs(x)), fast_mode=True)


def test_noncontiguous_inputs(device):
    x = make(2, 9, 6, 6, 2, 3, device)
    wide = torch.randn(2, 9, 12, device=device)
    x["context"] = wide[..., ::2].requires_grad_()  # stride 2 in channels
    x["targets"] = torch.randn(9, 2, 6, device=device).transpose(0, 1).requires_grad_()
    assert not x["context"].is_contiguous() and not x["targets"].is_contiguous()
    assert_matches_reference(x, beta=0.1)


@pytest.mark.parametrize("compiler", ["aot_eager", "inductor"])
def test_torch_compile(device, compiler):
    """torch.compile over smooth_infonce(backend="triton"), forward and backward, one graph.
    In the interpreter the op stays opaque to Inductor (see sim_kernels/triton/ops.py)."""
    x = make(2, 9, 5, 5, 2, 3, device)

    def f(context, targets, weight, neg_idx, mu, logvar):
        return smooth_infonce(context, targets, weight, neg_idx, mu, logvar, beta=0.2, backend="triton")

    torch._dynamo.reset()
    got = torch.compile(f, backend=compiler, fullgraph=True)(**x)
    ref = f(**x)
    assert_close(got, ref)
    for a, b in zip(torch.autograd.grad(got, diff_inputs(x)), torch.autograd.grad(ref, diff_inputs(x))):
        assert_close(a, b)


@pytest.mark.parametrize("op", ["smooth_infonce_fwd", "smooth_infonce_value_and_grad"])
def test_opcheck(device, op):
    x = make(1, 7, 5, 5, 2, 3, device, per_k=True)
    args = [x["context"], x["targets"], x["weight"], x["neg_idx"], x["mu"], x["logvar"], 1, 7]
    if op == "smooth_infonce_value_and_grad":
        args += [torch.rand(2, 1, 7, device=device), torch.rand(1, 7, device=device)]
    torch.library.opcheck(getattr(torch.ops.sim_kernels_triton, op), args,
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_backend_choice_and_errors(device):
    x = make(1, 6, 4, 4, 2, 3, device)
    assert backends.choose("triton", x["context"]) is BACKEND
    bad = x["neg_idx"].clone()
    bad[0, 0, 0] = 6
    with pytest.raises(ValueError, match="neg_idx"):
        smooth_infonce(**{**x, "neg_idx": bad}, backend="triton")


def test_block_size_overrides():
    base = block_sizes(37, 19)
    assert base["BLOCK_Z"] == 32 and all(base[k] >= 16 for k in ("BLOCK_M", "BLOCK_C", "BLOCK_WZ", "BLOCK_WC"))
    with override_block_sizes(BLOCK_M=32, num_warps=2):
        assert block_sizes(37, 19)["BLOCK_M"] == 32 and block_sizes(37, 19)["num_warps"] == 2
    assert block_sizes(37, 19) == base
    with pytest.raises(ValueError, match="BLOCK_Q"):
        set_block_sizes(BLOCK_Q=16)
    with pytest.raises(ValueError, match="BLOCK_M"):
        set_block_sizes(BLOCK_M=8)
    assert block_sizes(37, 19) == base


def test_kernels_compile_for_a_real_gpu():
    """The interpreter accepts code a GPU build rejects: compile every kernel for sm_80 (fp32, fp64,
    and bf16, whose tl.dot the interpreter gets wrong) with Triton's real compiler, no GPU needed."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="0")  # Triton's usual cache makes reruns fast
    code = ("from sim_kernels.triton.compile_check import compile_all\n"
            "rows = compile_all(80, ('fp32', 'bf16', 'fp64'), (16,))\n"
            "print(len(rows))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "27"  # 9 kernel variants (6, and 3 without a weight) x 3 dtypes
