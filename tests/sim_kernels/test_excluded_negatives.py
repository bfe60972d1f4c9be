"""neg_idx entries of -1: no negative there (an excluded candidate scores -inf and gets no gradient), as
wav2vec 2.0 excludes negatives equal to the positive. Every backend, and the CUDA kernel's host emulation.

Oracle without the feature: a last column of -1 everywhere is the loss with one negative fewer.
"""
from __future__ import annotations

import math

import pytest
import torch

from sim_kernels import smooth_infonce, smooth_infonce_with_metrics
from sim_kernels.reference import per_anchor_terms

from .emulation import load_cuda_emulation

B, T, Cc, Cz, K, N = 2, 9, 4, 5, 3, 5


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    leaves = [torch.randn(B, T, Cc, generator=g, dtype=torch.float64), torch.randn(B, T, Cz, generator=g,
                                                                                    dtype=torch.float64),
              0.5 * torch.randn(K, Cz, Cc, generator=g, dtype=torch.float64),
              torch.randn(B, T, Cz, generator=g, dtype=torch.float64),
              0.3 * torch.randn(B, T, Cz, generator=g, dtype=torch.float64)]
    idx = torch.randint(0, B * T, (K, B, T, N), generator=g)
    return leaves, idx


def _grads(out, leaves):
    """Gradients w.r.t. the leaves, 0 for the unused ones (mu and logvar under reduction="none")."""
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    return [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, leaves)]


def test_a_column_of_minus_one_is_one_negative_fewer(backend):
    leaves, idx = _inputs()
    excluded = idx.clone()
    excluded[..., -1] = -1
    a = [x.clone().requires_grad_() for x in leaves]
    got = backend.run(smooth_infonce, *a[:3], excluded, *a[3:], beta=0.5)
    b = [x.clone().requires_grad_() for x in leaves]
    want = backend.run(smooth_infonce, *b[:3], idx[..., :-1].contiguous(), *b[3:], beta=0.5)
    torch.testing.assert_close(got, want)
    for x, y in zip(_grads(got, a), _grads(want, b)):
        torch.testing.assert_close(x, y)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_scattered_exclusions_match_the_reference(backend, reduction):
    leaves, idx = _inputs(1)
    g = torch.Generator().manual_seed(2)
    idx = idx.masked_fill(torch.rand(idx.shape, generator=g) < 0.3, -1)
    idx[0, 0, 0] = -1  # one anchor with every negative excluded: its loss is 0 and it is a hit
    a = [x.clone().requires_grad_() for x in leaves]
    got = backend.run(smooth_infonce, *a[:3], idx, *a[3:], beta=0.5, reduction=reduction)
    b = [x.clone().requires_grad_() for x in leaves]
    want = smooth_infonce(*b[:3], idx, *b[3:], beta=0.5, reduction=reduction, backend="reference")
    torch.testing.assert_close(got, want)
    up = torch.rand(want.shape, dtype=want.dtype, generator=g)
    for x, y in zip(_grads((got * up).sum(), a), _grads((want * up).sum(), b)):
        torch.testing.assert_close(x, y)
    if reduction == "none":
        assert float(got[0, 0, 0].detach()) == 0.0
    _, m = backend.run(smooth_infonce_with_metrics, *leaves[:3], idx, *leaves[3:], beta=0.5)
    _, hits, _ = per_anchor_terms(*leaves[:3], idx)
    counts = torch.tensor([B * (T - k) for k in range(1, K + 1)], dtype=torch.float64)
    torch.testing.assert_close(m["accuracy"], hits.sum(dim=(1, 2)).double() / counts)


def test_a_negative_equal_to_the_positive_excluded_gives_wav2vec2s_logits():
    """A duplicate of the positive counted as a negative costs log 2; excluded (-1), the loss is what the
    logits [s+, -inf, ...] give."""
    c = torch.tensor([[[1.0], [0.0], [0.0]]], dtype=torch.float64)
    z = torch.tensor([[[0.0], [2.0], [2.0]]], dtype=torch.float64)  # rows 1 and 2 are equal
    w = torch.ones(1, 1, 1, dtype=torch.float64)
    dup = torch.tensor([[[[2], [0], [0]]]])  # (K, B, T, N) = (1, 1, 3, 1): anchor t = 0's negative is row 2
    assert math.isclose(float(smooth_infonce(c, z, w, dup, reduction="none")[0, 0, 0]), math.log(2.0))
    assert float(smooth_infonce(c, z, w, torch.full_like(dup, -1), reduction="none")[0, 0, 0]) == 0.0


def test_cuda_emulation_excludes_the_same_candidates():
    emu = load_cuda_emulation()
    leaves, idx = _inputs(3)
    idx = idx.masked_fill(torch.rand(idx.shape, generator=torch.Generator().manual_seed(4)) < 0.3, -1)
    loss, correct, kl = emu.smooth_infonce_fwd(*leaves[:3], idx, *leaves[3:], 0, T)
    ref_loss, ref_correct, ref_kl = per_anchor_terms(*leaves[:3], idx, *leaves[3:])
    torch.testing.assert_close(loss, ref_loss)
    assert torch.equal(correct, ref_correct)
    lw = torch.rand(K, B, T, dtype=torch.float64)
    kw = torch.rand(B, T, dtype=torch.float64)
    value, *_, gc, gt, gw, gmu, glv = emu.smooth_infonce_value_and_grad(*leaves[:3], idx, *leaves[3:], 0, T, lw, kw)
    a = [x.clone().requires_grad_() for x in leaves]
    rl, _, rk = per_anchor_terms(*a[:3], idx, *a[3:])
    ref_value = (lw * rl).sum() + (kw * rk).sum()
    torch.testing.assert_close(value, ref_value.detach())
    for x, y in zip((gc, gt, gw, gmu, glv), torch.autograd.grad(ref_value, a)):
        torch.testing.assert_close(x, y)


def test_minus_one_is_the_only_negative_index_accepted(backend):
    leaves, idx = _inputs()
    idx[1, 0, 2, 3] = -2
    with pytest.raises(ValueError, match=r"neg_idx: .* or be -1 \(no negative\), found -2"):
        backend.run(smooth_infonce, *leaves[:3], idx)
