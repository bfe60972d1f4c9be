"""Targets with more utterances than context (B' > B): the anchors' own B utterances first, then extra ones
whose rows only serve as negatives (what negatives gathered across processes need; sim_kernels/distributed.py).

The oracle needs no new code path: the same loss on the whole (B', T) batch, with a context for the extra
utterances too, restricted to the first B utterances' anchors, is what the extra-targets call must give,
on every backend (and the CUDA kernel's host emulation), for the losses, hits, KL and every gradient.
"""
from __future__ import annotations

import pytest
import torch

from sim_kernels import smooth_infonce
from sim_kernels.reference import per_anchor_terms

from .emulation import load_cuda_emulation

B, EXTRA, T, Cc, Cz, K, N = 2, 3, 8, 5, 4, 3, 6


def _inputs(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    full_context = torch.randn(B + EXTRA, T, Cc, generator=g, dtype=dtype)
    targets = torch.randn(B + EXTRA, T, Cz, generator=g, dtype=dtype)
    weight = 0.5 * torch.randn(K, Cz, Cc, generator=g, dtype=dtype)
    mu = torch.randn(B, T, Cz, generator=g, dtype=dtype)
    logvar = 0.3 * torch.randn(B, T, Cz, generator=g, dtype=dtype)
    # negatives from every row of the B' utterances, the extra ones included
    full_idx = torch.randint(0, (B + EXTRA) * T, (K, B + EXTRA, T, N), generator=g)
    assert (full_idx[:, :B] >= B * T).any()
    return full_context, targets, weight, mu, logvar, full_idx


def _oracle(full_context, targets, weight, mu, logvar, full_idx, t0=0, t1=T):
    """(loss, correct, kl, grads of sum(loss[:, :B]) + sum(kl) w.r.t. context[:B], targets, weight, mu, logvar)
    from the plain (B' = B) path on the whole batch."""
    leaves = [x.clone().requires_grad_() for x in (full_context, targets, weight)]
    loss, correct, _ = per_anchor_terms(*leaves, full_idx, None, None, t0, t1)
    m, lv = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    kl = 0.5 * (m * m + lv.exp() - lv - 1).sum(-1)
    grads = torch.autograd.grad(loss[:, :B].sum() + kl.sum(), leaves + [m, lv])
    return loss[:, :B].detach(), correct[:, :B], kl.detach(), [grads[0][:B], *grads[1:]]


@pytest.mark.parametrize("window", [(0, T), (1, T - 1)], ids=["whole", "window"])
def test_extra_target_utterances_give_the_whole_batch_losses_and_gradients(backend, window):
    full_context, targets, weight, mu, logvar, full_idx = _inputs()
    loss, correct, kl, grads = _oracle(full_context, targets, weight, mu, logvar, full_idx, *window)
    from sim_kernels import smooth_infonce_with_metrics

    leaves = [x.clone().requires_grad_() for x in (full_context[:B], targets, weight, mu, logvar)]
    got = backend.run(smooth_infonce, leaves[0], leaves[1], leaves[2], full_idx[:, :B], leaves[3], leaves[4],
                      reduction="none") if window == (0, T) else None
    if got is not None:
        torch.testing.assert_close(got, loss)
    # The scalar path: sum over anchors via mean weights is awkward; use the value-and-grad op's form through
    # the functional's "sum" reduction with a window, and compare its gradients with the oracle's scaled ones.
    out, metrics = backend.run(smooth_infonce_with_metrics, *leaves[:3], full_idx[:, :B], *leaves[3:], beta=1.0,
                               reduction="sum", window=window)
    t0, t1 = window
    counts = torch.tensor([B * (t1 - t0 - k) for k in range(1, K + 1)], dtype=torch.float64)
    expected = (loss.sum(dim=(1, 2)) / counts).sum() + kl.sum() / (B * T)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(metrics["accuracy"], correct.sum(dim=(1, 2)).double() / counts)
    got_grads = torch.autograd.grad(out, leaves)
    # the oracle's gradients are of sum(loss) + sum(kl): rescale by the functional's weights
    w = torch.zeros(K, B, T, dtype=torch.float64)
    for k in range(1, K + 1):
        w[k - 1, :, t0:t1 - k] = 1.0 / counts[k - 1]
    scaled = _oracle_weighted(full_context, targets, weight, mu, logvar, full_idx, w, 1.0 / (B * T), window)
    for name, a, b in zip(("context", "targets", "weight", "mu", "logvar"), got_grads, scaled):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"grad_{name}: {m}")


def _oracle_weighted(full_context, targets, weight, mu, logvar, full_idx, loss_weight, kl_weight, window):
    leaves = [x.clone().requires_grad_() for x in (full_context, targets, weight, mu, logvar)]
    loss, _, _ = per_anchor_terms(*leaves[:3], full_idx, None, None, *window)
    kl = 0.5 * (leaves[3] ** 2 + leaves[4].exp() - leaves[4] - 1).sum(-1)
    value = (loss_weight * loss[:, :B]).sum() + kl_weight * kl.sum()
    g = torch.autograd.grad(value, leaves)
    return [g[0][:B], *g[1:]]


def test_cuda_emulation_with_extra_target_utterances():
    emu = load_cuda_emulation()
    full_context, targets, weight, mu, logvar, full_idx = _inputs()
    loss, correct, kl, _ = _oracle(full_context, targets, weight, mu, logvar, full_idx)
    got_loss, got_correct, got_kl = emu.smooth_infonce_fwd(full_context[:B], targets, weight, full_idx[:, :B], mu,
                                                          logvar, 0, T)
    torch.testing.assert_close(got_loss, loss)
    assert torch.equal(got_correct, correct)
    torch.testing.assert_close(got_kl, kl)
    lw = torch.rand(K, B, T, dtype=torch.float64)
    kw = torch.rand(B, T, dtype=torch.float64)
    value, *_, gc, gt, gw, gmu, glv = emu.smooth_infonce_value_and_grad(full_context[:B], targets, weight,
                                                                        full_idx[:, :B], mu, logvar, 0, T, lw, kw)
    leaves = [x.clone().requires_grad_() for x in (full_context, targets, weight, mu, logvar)]
    ref_loss, _, _ = per_anchor_terms(*leaves[:3], full_idx, None, None, 0, T)
    ref_kl = 0.5 * (leaves[3] ** 2 + leaves[4].exp() - leaves[4] - 1).sum(-1)
    ref_value = (lw * ref_loss[:, :B]).sum() + (kw * ref_kl).sum()
    ref = torch.autograd.grad(ref_value, leaves)
    torch.testing.assert_close(value, ref_value.detach())
    for name, a, b in zip(("context", "targets", "weight", "mu", "logvar"), (gc, gt, gw, gmu, glv),
                          (ref[0][:B], *ref[1:])):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"grad_{name}: {m}")


def test_extra_targets_index_range_and_shapes_are_checked(backend):
    full_context, targets, weight, mu, logvar, full_idx = _inputs()
    idx = full_idx[:, :B].clone()
    idx[0, 0, 0, 0] = (B + EXTRA) * T  # one past the last target row
    with pytest.raises(ValueError, match=r"neg_idx.*\[0, 40\)"):
        backend.run(smooth_infonce, full_context[:B], targets, weight, idx)
    with pytest.raises(ValueError, match="targets"):
        backend.run(smooth_infonce, full_context, targets[:B], weight, full_idx)  # fewer targets than anchors
    with pytest.raises(ValueError, match="mu"):
        backend.run(smooth_infonce, full_context[:B], targets, weight, full_idx[:, :B], targets, targets, beta=1.0)


def test_triton_wide_targets_with_extra_utterances():
    """Triton's chunked path (Cz in chunks of BLOCK_Z, scores summed in a buffer) with extra target rows."""
    pytest.importorskip("sim_kernels.triton", reason="triton is not importable")
    from sim_kernels.triton import block_sizes, override_block_sizes

    from .conftest import backend_for

    backend = backend_for("triton")
    g = torch.Generator().manual_seed(3)
    wide = 37
    full_context = torch.randn(B + EXTRA, T, Cc, generator=g, dtype=torch.float64)
    targets = torch.randn(B + EXTRA, T, wide, generator=g, dtype=torch.float64)
    weight = 0.3 * torch.randn(K, wide, Cc, generator=g, dtype=torch.float64)
    full_idx = torch.randint(0, (B + EXTRA) * T, (K, B + EXTRA, T, N), generator=g)
    with override_block_sizes(BLOCK_Z=16, BLOCK_M=16):
        assert block_sizes(Cc, wide)["Z_CHUNKS"] == 3
        leaves = [x.clone().requires_grad_() for x in (full_context[:B], targets, weight)]
        out = backend.run(smooth_infonce, *leaves, full_idx[:, :B], reduction="none")
        got = torch.autograd.grad(out.sum(), leaves)
    ref_leaves = [x.clone().requires_grad_() for x in (full_context, targets, weight)]
    ref, _, _ = per_anchor_terms(*ref_leaves, full_idx)
    torch.testing.assert_close(out, ref[:, :B].detach())
    ref_grads = torch.autograd.grad(ref[:, :B].sum(), ref_leaves)
    for a, b in zip(got, (ref_grads[0][:B], *ref_grads[1:])):
        torch.testing.assert_close(a, b)
