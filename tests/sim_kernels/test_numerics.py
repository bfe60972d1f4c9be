"""Numerical stress and the NaN/Inf policy, on every backend: the reference, the native CPU kernel, the CUDA
kernel (its host emulation on the CPU, and the GPU where one is present) and Triton (its interpreter on the
CPU, compiled on a GPU).

Policy (documented in the README): NaN and Inf propagate as in torch. A non-finite input value makes
exactly the per-anchor losses (and the KL rows) that read it non-finite; nothing else changes,
nothing crashes, and the finite/non-finite pattern matches the reference. An anchor with a NaN score
never counts as a hit (s+ > NaN is false), and a +inf negative score gives a loss of +inf.
"""
import math
from typing import Callable, NamedTuple

import pytest
import torch

from sim_kernels import _ext, smooth_infonce
from sim_kernels.reference import per_anchor_terms

from .conftest import backend_for
from .emulation import load_cuda_emulation
from .inputs import dtypes, make_inputs, tol

KERNELS = ("reference", "native-cpu", "cuda-emulation", "cuda", "triton")


class Kernel(NamedTuple):
    """One backend at the op level: fwd(context, targets, weight, neg_idx (K, B, T, N), mu, logvar, t0, t1)
    -> (loss, correct, kl) on CPU tensors in and out."""
    id: str
    fwd: Callable


def _on(device, fn):
    def run(*args):
        moved = [a.to(device) if isinstance(a, torch.Tensor) else a for a in args]
        return tuple(o.cpu() if isinstance(o, torch.Tensor) else o for o in fn(*moved))
    return run


@pytest.fixture(params=KERNELS)
def kernel(request):
    """Each backend's per-anchor statistics op in turn; skips with the reason where one cannot run here."""
    if request.param == "reference":
        return Kernel("reference", lambda c, z, w, idx, mu, lv, t0, t1: per_anchor_terms(c, z, w, idx, mu, lv, t0, t1))
    if request.param == "cuda-emulation":
        return Kernel("cuda-emulation", load_cuda_emulation().smooth_infonce_fwd)
    backend = backend_for(request.param)
    ops = torch.ops.sim_kernels_triton if request.param == "triton" else torch.ops.sim_kernels
    return Kernel(request.param, _on(backend.device, ops.smooth_infonce_fwd))


def _fwd(kernel, c, z, w, idx, mu=None, lv=None):
    idx4 = idx if idx.dim() == 4 else idx.expand(w.shape[0], -1, -1, -1)
    loss, correct, kl = kernel.fwd(c, z, w, idx4, mu, lv, 0, c.shape[1])
    return loss, correct, (kl if mu is not None else None)


def _grads(loss, inputs):
    return torch.autograd.grad(loss, [x for x in inputs if x is not None and x.requires_grad])


@pytest.mark.parametrize("dtype", dtypes(torch.float64, torch.float32))
def test_huge_scores_are_finite_and_correct(backend, dtype):
    # |s| up to ~1e4: the online log-sum-exp must not overflow.
    c, z, w, idx, _, _ = make_inputs(2, 12, 4, 4, 3, 5, dtype=torch.float64, requires_grad=False)
    c = (c * 25).to(dtype).requires_grad_()
    z = (z * 25).to(dtype).requires_grad_()
    w = torch.eye(4, dtype=dtype).expand(3, 4, 4).contiguous().requires_grad_()
    scores = torch.einsum("btc,btc->bt", c.detach()[:, :-1], z.detach()[:, 1:])
    assert scores.abs().max() > 2e3
    out = {}
    for name, b in (("ours", backend), ("reference", "reference")):
        run = b.run if name == "ours" else (lambda fn, *a, **kw: fn(*a, backend="reference", **kw))
        loss = run(smooth_infonce, c, z, w, idx, reduction="none")
        g = _grads(loss.sum(), (c, z, w))
        assert torch.isfinite(loss).all() and all(torch.isfinite(x).all() for x in g)
        out[name] = (loss, g)
    # float32 at |s| ~ 1e4: absolute rounding of the scores ~ |s| * eps32 ~ 1e-3 (a looser, scaled bound)
    t = tol(torch.float64) if dtype == torch.float64 else dict(atol=5e-2, rtol=1e-4)
    torch.testing.assert_close(out["ours"][0], out["reference"][0], **t)
    for a, b in zip(out["ours"][1], out["reference"][1]):
        torch.testing.assert_close(a, b, **t)


def test_logvar_extremes_give_finite_kl(backend):
    c, z, w, idx, mu, _ = make_inputs(2, 8, 3, 3, 2, 2, dtype=torch.float32)
    lv = torch.linspace(-30, 30, 2 * 8 * 3).view(2, 8, 3).requires_grad_()
    loss = backend.run(smooth_infonce, c, z, w, idx, mu, lv, beta=1.0)
    g = _grads(loss, (c, z, w, mu, lv))
    assert torch.isfinite(loss) and all(torch.isfinite(x).all() for x in g)
    ref = smooth_infonce(c, z, w, idx, mu, lv, beta=1.0, backend="reference")
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-3)


def test_all_equal_scores(backend):
    # Zero weight: every score is 0, the loss is log(N+1) exactly, and no positive "wins".
    B, T, C, K, N = 2, 7, 3, 2, 4
    c, z, _, idx, _, _ = make_inputs(B, T, C, C, K, N)
    w = torch.zeros(K, C, C, dtype=torch.float64, requires_grad=True)
    from sim_kernels import smooth_infonce_with_metrics

    loss, m = backend.run(smooth_infonce_with_metrics, c, z, w, idx)
    torch.testing.assert_close(loss, torch.tensor(float(N + 1), dtype=torch.float64).log())
    assert (m["accuracy"] == 0).all()


@pytest.mark.parametrize("where", ["context", "targets"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_inputs_propagate_like_the_reference(kernel, where, bad):
    c, z, w, idx, mu, lv = make_inputs(2, 10, 4, 4, 3, 3, requires_grad=False)
    x = (c if where == "context" else z).clone()
    x[1, 4, 2] = bad
    c, z = (x, z) if where == "context" else (c, x)
    ref, ref_hit, _ = per_anchor_terms(c, z, w, idx)
    loss, hit, _ = _fwd(kernel, c, z, w, idx)
    assert not torch.isfinite(ref).all()
    torch.testing.assert_close(loss, ref, equal_nan=True)  # NaN where the reference has NaN, +-inf where it has them
    assert torch.equal(hit, ref_hit)


def test_nan_in_logvar_gives_nan_kl_rows_only(kernel):
    c, z, w, idx, mu, lv = make_inputs(2, 6, 3, 3, 2, 2, requires_grad=False)
    lv = lv.clone()
    lv[0, 3, 1] = float("nan")
    _, _, kl = _fwd(kernel, c, z, w, idx, mu, lv)
    assert torch.isnan(kl[0, 3]) and torch.isfinite(kl).sum() == kl.numel() - 1


def test_native_extension_present():
    assert _ext.has_kernel("cpu")


def test_nan_negative_score_is_never_a_hit(kernel):
    """s+ > NaN is false: an anchor with a NaN negative score must not count as correct."""
    c, z, w, idx, _, _ = make_inputs(2, 10, 4, 4, 3, 3, requires_grad=False)
    z = z.clone()
    z[0, 0, 1] = float("nan")  # row 0 is drawn as a negative by some anchors, never a positive
    idx4 = idx if idx.dim() == 4 else idx.expand(3, -1, -1, -1)
    assert (idx4 == 0).any()
    _, ref_hit, _ = per_anchor_terms(c, z, w, idx4)
    _, hit, _ = _fwd(kernel, c, z, w, idx4)
    assert torch.equal(hit, ref_hit)


# The smallest cases: one anchor (t = 0, step 1), its positive row 1 scores 2; row 0 is its negatives.
_C1 = torch.tensor([[[1.0], [0.0]]])
_W1 = torch.ones(1, 1, 1)


@pytest.mark.parametrize("negative,loss,hit", [
    (float("nan"), float("nan"), False),   # NaN: a NaN loss, never a hit
    (float("inf"), float("inf"), False),   # +inf outscores the positive: logsumexp = inf
    (float("-inf"), 0.0, True),            # -inf adds exp(-inf) = 0: loss log(1) = 0, a hit
    (2.0, None, False),                    # a tie counts as wrong; loss log(1 + N)
])
@pytest.mark.parametrize("num_negatives", [1, 2])
def test_one_anchor_with_a_non_finite_negative(kernel, negative, loss, hit, num_negatives):
    z = torch.tensor([[[negative], [2.0]]])
    idx = torch.zeros(1, 1, 2, num_negatives, dtype=torch.int64)
    got_loss, got_hit, _ = _fwd(kernel, _C1, z, _W1, idx)
    loss = math.log(1 + num_negatives) if loss is None else loss
    torch.testing.assert_close(got_loss[0, 0, 0], torch.tensor(loss), equal_nan=True)
    assert bool(got_hit[0, 0, 0]) is hit


@pytest.mark.parametrize("positive,loss,hit", [(float("nan"), float("nan"), False), (float("inf"), float("nan"), True),
                                               (float("-inf"), float("inf"), False)])
def test_one_anchor_with_a_non_finite_positive(kernel, positive, loss, hit):
    """A NaN positive: NaN, never a hit; +inf: inf - inf = NaN (torch.logsumexp(s) - s+), a hit (inf > 1);
    -inf: the loss is +inf."""
    z = torch.tensor([[[1.0], [positive]]])
    idx = torch.zeros(1, 1, 2, 1, dtype=torch.int64)
    got_loss, got_hit, _ = _fwd(kernel, _C1, z, _W1, idx)
    ref_loss, ref_hit, _ = per_anchor_terms(_C1, z, _W1, idx)
    torch.testing.assert_close(ref_loss[0, 0, 0], torch.tensor(loss), equal_nan=True)
    torch.testing.assert_close(got_loss, ref_loss, equal_nan=True)
    assert torch.equal(got_hit, ref_hit) and bool(got_hit[0, 0, 0]) is hit


@pytest.mark.parametrize("backend", ["native", "triton"])
def test_fp32_loss_and_softmax_rounded_relative_to_the_loss_not_the_lse(backend):
    # A positive and a negative with the same score |s| ~ 5e3 (the negative is the positive row): the
    # loss is log 2 and the two softmax gradients cancel. Rounded relative to lse (~5e3, ulp 5e-4), the
    # loss was off by ~1e-4 and grad_targets of that row by ~1e-4 * |W c|; the kernels round around
    # the max (csrc/smooth_infonce.h, OnlineLogSumExp::minus / softmax), so both are exact to fp32.
    B, T, C, K = 1, 4, 3, 1
    c = torch.full((B, T, C), 40.0)
    z = torch.full((B, T, C), 41.0)
    w = torch.eye(C).unsqueeze(0).clone()
    idx = torch.arange(1, T + 1).clamp(max=T - 1).view(K, B, T, 1)  # negative = the positive row t + 1
    leaves = [x.clone().requires_grad_() for x in (c, z, w)]
    loss = smooth_infonce(*leaves, idx, reduction="none", backend=backend)
    assert float(c[0, 0] @ z[0, 1]) > 4e3  # the scores are large: 40 * 41 * 3 = 4920
    torch.testing.assert_close(loss[0, 0, :T - 1], torch.full((T - 1,), math.log(2.0)), rtol=2e-7, atol=0)
    loss.sum().backward()
    torch.testing.assert_close(leaves[1].grad, torch.zeros_like(z), rtol=0, atol=1e-6)
