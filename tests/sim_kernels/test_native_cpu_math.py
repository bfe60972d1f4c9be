"""The CPU kernel's vector primitives (csrc/cpu/simd.h), through the loss and its gradients.

The fp32 path scores N+1 rows per call (dot_rows), takes a vectorised exp over vectors of 8
scores padded to a multiple of 8 (lse_terms, softmax; exp_vec flushes terms below e^-87.3 to 0),
builds dP 64 channels at a time (weighted_rows) and scatters grad_targets in channel slices
(scatter_rows). Each has a main loop and tails; these cases put every width and negative count
on both sides of those boundaries, and scores wide enough to reach the exp's flush and
Cody-Waite ranges. Reference: the same loss in float64.
"""
from __future__ import annotations

import pytest
import torch

from sim_kernels import smooth_infonce

from .inputs import make_inputs

pytestmark = pytest.mark.usefixtures("native_cpu_required")


@pytest.fixture
def native_cpu_required():
    from sim_kernels import _ext

    if not _ext.has_kernel("cpu"):
        pytest.fail(f"the native CPU kernel is missing (sim_kernels._C: {_ext.LOAD_ERROR})")


def _loss_and_grads(args, backend, beta=0.01):
    context, targets, weight, neg_idx, mu, logvar = args
    xs = [x.detach().clone().requires_grad_(True) for x in (context, targets, weight, mu, logvar)]
    loss = smooth_infonce(xs[0], xs[1], xs[2], neg_idx, xs[3], xs[4], beta=beta, backend=backend)
    loss.backward()
    return loss.detach(), [x.grad for x in xs]


def _check_fp32_against_fp64(args, rtol=2e-5, atol=2e-5):
    f64 = [x.double() if x is not None and x.is_floating_point() else x for x in args]
    f32 = [x.float() if x is not None and x.is_floating_point() else x for x in args]
    want, want_grads = _loss_and_grads(f64, "reference")
    got, got_grads = _loss_and_grads(f32, "native")
    torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol)
    for name, g, w in zip(("context", "targets", "weight", "mu", "logvar"), got_grads, want_grads):
        torch.testing.assert_close(g.double(), w, rtol=rtol, atol=atol, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("N", [1, 6, 7, 8, 15, 16, 17], ids=lambda n: f"N{n}")
def test_negative_counts_around_the_vector_width(N):
    """N+1 scores from 2 to 18: one partial vector, exactly one, one plus a lane, two, two plus one."""
    _check_fp32_against_fp64(make_inputs(2, 24, 16, 16, 3, N, seed=N))


@pytest.mark.parametrize("Cz", [1, 7, 8, 9, 63, 64, 65, 130], ids=lambda c: f"Cz{c}")
def test_widths_around_the_vector_and_block_sizes(Cz):
    """Channel tails of dot_rows (8 lanes), weighted_rows and scatter_rows (64-channel blocks)."""
    _check_fp32_against_fp64(make_inputs(2, 20, 12, Cz, 2, 9, seed=Cz))


def test_scores_spanning_the_exp_range():
    """Scores tens to hundreds apart: exp terms from 1 down to below e^-87.3 (flushed to 0)."""
    context, targets, weight, neg_idx, mu, logvar = make_inputs(2, 30, 8, 8, 4, 12, seed=3)
    g = torch.Generator().manual_seed(4)
    spread = torch.empty(2, 30, 1, dtype=torch.float64).uniform_(0.5, 12.0, generator=g)
    targets = (targets.detach() * spread).requires_grad_(True)
    context = (context.detach() * 3.0).requires_grad_(True)
    args = (context, targets, weight, neg_idx, mu, logvar)
    with torch.no_grad():
        scores = torch.einsum("btc,kzc,btz->kbt", context, weight, torch.roll(targets, -1, 1))
    assert scores.abs().max() > 88, "the case must reach the exp's flush range"
    _check_fp32_against_fp64(args, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("Cz", [24, 40, 72], ids=lambda c: f"Cz{c}")
def test_channel_sliced_scatter_is_bitwise_the_same_for_1_and_2_threads(Cz):
    """scatter_rows runs on channel slices whose edges move with the thread count (16-channel grain)."""
    args = [x.float() if x is not None and x.is_floating_point() else x
            for x in make_inputs(3, 40, 8, Cz, 4, 11, seed=Cz)]
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _loss_and_grads(args, "native")
        torch.set_num_threads(2)
        two = _loss_and_grads(args, "native")
    finally:
        torch.set_num_threads(prev)
    assert torch.equal(one[0], two[0])
    for a, b in zip(one[1], two[1]):
        assert torch.equal(a, b)


def test_exp_terms_to_a_few_ulp_on_exact_scores():
    """Cc = Cz = 1, c = W = 1: the scores are the target values themselves (multiples of 1/64, exact in
    fp32), so the only rounding left in the per-anchor losses and the targets' gradients is the
    log-sum-exp's exp terms, the softmax and one log: they must agree with float64 to ~1e-6 relative
    (a 1e-5 error in exp_vec's polynomial fails this; the wider cases above would not see it)."""
    g = torch.Generator().manual_seed(7)
    B, T, N = 2, 200, 40
    values = torch.randint(-20 * 64, 20 * 64, (B, T, 1), generator=g).double() / 64
    neg_idx = torch.randint(0, B * T, (1, B, T, N), generator=g)

    def run(dtype, backend):
        targets = values.to(dtype).clone().requires_grad_(True)
        context, weight = torch.ones(B, T, 1, dtype=dtype), torch.ones(1, 1, 1, dtype=dtype)
        per_anchor = smooth_infonce(context, targets, weight, neg_idx, reduction="none", backend=backend)
        per_anchor.sum().backward()
        return per_anchor.detach(), targets.grad

    want_loss, want_grad = run(torch.float64, "reference")
    got_loss, got_grad = run(torch.float32, "native")
    torch.testing.assert_close(got_loss.double(), want_loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_grad.double(), want_grad, rtol=1e-5, atol=1e-6)
