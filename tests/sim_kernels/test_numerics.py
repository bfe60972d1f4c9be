"""Numerical stress and the NaN/Inf policy, for every backend that exists on this machine.

Policy (documented in the README): NaN and Inf propagate as in torch. A non-finite input value makes
exactly the per-anchor losses (and the KL rows) that read it non-finite; nothing else changes,
nothing crashes, and the finite/non-finite pattern matches the reference.
"""
import math

import pytest
import torch

from sim_kernels import _ext, smooth_infonce

from .inputs import dtypes, make_inputs, tol

BACKENDS = ["reference", "native"]  # test_huge_scores_are_finite_and_correct compares these two


def _grads(loss, inputs):
    return torch.autograd.grad(loss, [x for x in inputs if x is not None and x.requires_grad])


@pytest.mark.parametrize("dtype", dtypes(torch.float64, torch.float32))
def test_huge_scores_are_finite_and_correct(dtype):
    # |s| up to ~1e4: the online log-sum-exp must not overflow.
    c, z, w, idx, _, _ = make_inputs(2, 12, 4, 4, 3, 5, dtype=torch.float64, requires_grad=False)
    c = (c * 25).to(dtype).requires_grad_()
    z = (z * 25).to(dtype).requires_grad_()
    w = torch.eye(4, dtype=dtype).expand(3, 4, 4).contiguous().requires_grad_()
    scores = torch.einsum("btc,btc->bt", c.detach()[:, :-1], z.detach()[:, 1:])
    assert scores.abs().max() > 2e3
    out = {}
    for b in BACKENDS:
        loss = smooth_infonce(c, z, w, idx, backend=b, reduction="none")
        g = _grads(loss.sum(), (c, z, w))
        assert torch.isfinite(loss).all() and all(torch.isfinite(x).all() for x in g)
        out[b] = (loss, g)
    # float32 at |s| ~ 1e4: absolute rounding of the scores ~ |s| * eps32 ~ 1e-3 (a looser, scaled bound)
    t = tol(torch.float64) if dtype == torch.float64 else dict(atol=5e-2, rtol=1e-4)
    torch.testing.assert_close(out["native"][0], out["reference"][0], **t)
    for a, b in zip(out["native"][1], out["reference"][1]):
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
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs_propagate_like_the_reference(where, bad):
    c, z, w, idx, mu, lv = make_inputs(2, 10, 4, 4, 3, 3, requires_grad=False)
    x = (c if where == "context" else z).clone()
    x[1, 4, 2] = bad
    c, z = (x, z) if where == "context" else (c, x)
    ref = smooth_infonce(c, z, w, idx, backend="reference", reduction="none")
    nat = smooth_infonce(c, z, w, idx, backend="native", reduction="none")
    assert not torch.isfinite(ref).all()
    assert torch.equal(torch.isfinite(nat), torch.isfinite(ref))
    fin = torch.isfinite(ref)
    torch.testing.assert_close(nat[fin], ref[fin])
    assert torch.isnan(smooth_infonce(c, z, w, idx, backend="native")) or \
        torch.isinf(smooth_infonce(c, z, w, idx, backend="native"))


def test_nan_in_logvar_gives_nan_kl_rows_only():
    c, z, w, idx, mu, lv = make_inputs(2, 6, 3, 3, 2, 2, requires_grad=False)
    lv = lv.clone()
    lv[0, 3, 1] = float("nan")
    out = torch.ops.sim_kernels.smooth_infonce_fwd(c, z, w, idx.expand(2, -1, -1, -1) if idx.dim() == 3 else idx,
                                                   mu, lv, 0, 6)
    kl = out[2]
    assert torch.isnan(kl[0, 3]) and torch.isfinite(kl).sum() == kl.numel() - 1


def test_native_extension_present():
    assert _ext.has_kernel("cpu")


def test_nan_negative_score_is_never_a_hit():
    """s+ > NaN is false: an anchor with a NaN negative score must not count as correct."""
    from sim_kernels.reference import per_anchor_terms

    c, z, w, idx, _, _ = make_inputs(2, 10, 4, 4, 3, 3, requires_grad=False)
    z = z.clone()
    z[0, 0, 1] = float("nan")  # row 0 is drawn as a negative by some anchors, never a positive
    idx4 = idx if idx.dim() == 4 else idx.expand(3, -1, -1, -1)
    _, ref_hit, _ = per_anchor_terms(c, z, w, idx4)
    _, hit, _ = torch.ops.sim_kernels.smooth_infonce_fwd(c, z, w, idx4, None, None, 0, 10)
    assert (idx4 == 0).any()
    assert torch.equal(hit, ref_hit)


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
