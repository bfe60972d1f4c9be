"""first_step (the positive at t + first_step + k - 1; 0 = the anchor's own frame, as wav2vec 2.0),
score="dot" / "cosine" without a weight, and reduction="anchor_sum", on every backend and the CUDA kernel's
host emulation.

Oracles that do not trust the reference's new code: first_step = 0 is first_step = 1 on targets shifted by one
frame; "dot" is "bilinear" with identity maps; "cosine" is "dot" on rows divided by their norms; "anchor_sum"
is the per-anchor losses summed.
"""
from __future__ import annotations

import pytest
import torch

from sim_kernels import SmoothInfoNCELoss, smooth_infonce, smooth_infonce_with_metrics
from sim_kernels.reference import per_anchor_terms

from .emulation import load_cuda_emulation

B, T, C, K, N = 2, 9, 4, 3, 5


def _inputs(seed=0, k=K, extra=0):
    """float64 leaves (context, targets (B + extra utterances), weight, mu, logvar) and (k, B, T, N) negatives
    with some excluded (-1)."""
    g = torch.Generator().manual_seed(seed)
    leaves = [torch.randn(B, T, C, generator=g, dtype=torch.float64),
              torch.randn(B + extra, T, C, generator=g, dtype=torch.float64),
              0.5 * torch.randn(k, C, C, generator=g, dtype=torch.float64),
              torch.randn(B, T, C, generator=g, dtype=torch.float64),
              0.3 * torch.randn(B, T, C, generator=g, dtype=torch.float64)]
    idx = torch.randint(0, (B + extra) * T, (k, B, T, N), generator=g)
    idx = idx.masked_fill(torch.rand(idx.shape, generator=g) < 0.15, -1)
    return leaves, idx


def _grads(out, leaves):
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    return [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, leaves)]


def _call(backend, leaves, idx, score, **kw):
    """smooth_infonce on fresh leaves (weight left out for the scores without one)."""
    c, z, w, mu, lv = [x.clone().requires_grad_() for x in leaves]
    used = [c, z] + ([w] if score == "bilinear" else []) + [mu, lv]
    out = backend.run(smooth_infonce, c, z, w if score == "bilinear" else None, idx, mu, lv, score=score, **kw) \
        if hasattr(backend, "run") else smooth_infonce(c, z, w if score == "bilinear" else None, idx, mu, lv,
                                                       score=score, backend=backend, **kw)
    return out, used


@pytest.mark.parametrize("first_step", [0, 1, 2])
@pytest.mark.parametrize("score", ["bilinear", "dot", "cosine"])
def test_every_backend_matches_the_reference(backend, first_step, score):
    leaves, idx = _inputs(first_step)
    kw = dict(beta=0.3, first_step=first_step, score_scale=2.5)
    got, a = _call(backend, leaves, idx, score, **kw)
    want, b = _call("reference", leaves, idx, score, **kw)
    torch.testing.assert_close(got, want)
    for x, y in zip(_grads(got, a), _grads(want, b)):
        torch.testing.assert_close(x, y)


@pytest.mark.parametrize("reduction", ["anchor_sum", "none", "sum"])
def test_reductions_with_masks_and_extra_targets_match_the_reference(backend, reduction):
    leaves, idx = _inputs(7, k=1, extra=1)
    g = torch.Generator().manual_seed(8)
    mask = torch.rand(B, T, generator=g) < 0.6
    lengths = torch.tensor([T, T - 3])
    kw = dict(beta=0.2, first_step=0, score_scale=10.0, anchor_mask=mask, lengths=lengths, reduction=reduction)
    got, a = _call(backend, leaves, idx, "cosine", **kw)
    want, b = _call("reference", leaves, idx, "cosine", **kw)
    torch.testing.assert_close(got, want)
    up = torch.rand(want.shape, dtype=want.dtype, generator=g)
    for x, y in zip(_grads((got * up).sum(), a), _grads((want * up).sum(), b)):
        torch.testing.assert_close(x, y)


def test_metrics_count_the_anchors_of_each_offset(backend):
    leaves, idx = _inputs(3)
    _, m = backend.run(smooth_infonce_with_metrics, *leaves[:2], None, idx, score="dot", first_step=0)
    _, hits, _ = per_anchor_terms(leaves[0], leaves[1], None, idx, first_step=0)
    counts = torch.tensor([B * (T - k) for k in range(0, K)], dtype=torch.float64)  # d_k = k - 1
    torch.testing.assert_close(m["accuracy"], hits.sum(dim=(1, 2)).double() / counts)


# ---- oracles independent of the reference's new code ------------------------------------------------

def _shift_rows(idx, T_new):
    """Row ids b*T + t of (B, T) targets -> b*(T+1) + t + 1 of the targets with one frame prepended; -1 stays."""
    b, t = idx.div(T, rounding_mode="floor"), idx.remainder(T)
    return torch.where(idx < 0, idx, b * T_new + t + 1)


@pytest.mark.parametrize("score", ["bilinear", "dot"])
def test_first_step_zero_is_first_step_one_on_targets_one_frame_later(score):
    """Prepend a frame to the targets and append one to the context: the next frame of the new sequence is the
    anchor's own frame of the old one, so first_step=1 there is first_step=0 here (per-anchor losses equal)."""
    leaves, idx = _inputs(4)
    c, z, w = leaves[:3]
    w = w if score == "bilinear" else None
    got = smooth_infonce(c, z, w, idx, reduction="none", first_step=0, score=score, backend="reference")
    c1 = torch.cat([c, torch.zeros(B, 1, C, dtype=c.dtype)], dim=1)
    z1 = torch.cat([torch.zeros(B, 1, C, dtype=z.dtype), z], dim=1)
    idx1 = torch.cat([_shift_rows(idx, T + 1), torch.zeros(K, B, 1, N, dtype=idx.dtype)], dim=2)
    want = smooth_infonce(c1, z1, w, idx1, reduction="none", first_step=1, score=score, backend="reference")
    # step k of the shifted call has one anchor more (its last row): compare the anchors both have
    for k in range(K):
        torch.testing.assert_close(got[k, :, : T - k], want[k, :, : T - k])


def test_dot_is_bilinear_with_identity_maps(backend):
    leaves, idx = _inputs(5)
    eye = torch.eye(C, dtype=torch.float64).expand(K, C, C).contiguous()
    got = backend.run(smooth_infonce, *leaves[:2], None, idx, score="dot", reduction="none", first_step=0)
    want = backend.run(smooth_infonce, *leaves[:2], eye, idx, reduction="none", first_step=0)
    torch.testing.assert_close(got, want)


def test_cosine_is_dot_on_unit_rows(backend):
    leaves, idx = _inputs(6)
    c, z = leaves[:2]
    z = z.clone()
    z[0, 3] = 0.0  # an all-zero row: divided by eps, it stays 0 (torch.nn.functional.cosine_similarity's rule)
    got = backend.run(smooth_infonce, c, z, None, idx, score="cosine", reduction="none", score_scale=10.0)
    unit = [x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8) for x in (c, z)]
    want = backend.run(smooth_infonce, *unit, None, idx, score="dot", reduction="none", score_scale=10.0)
    torch.testing.assert_close(got, want)
    cos = torch.nn.functional.cosine_similarity(c[1, 2], z[1, 3], dim=0)
    torch.testing.assert_close(unit[0][1, 2] @ unit[1][1, 3], cos)


def test_anchor_sum_is_the_sum_of_the_per_anchor_losses(backend):
    leaves, idx = _inputs(9)
    mask = torch.rand(B, T, generator=torch.Generator().manual_seed(1)) < 0.5
    per_anchor = backend.run(smooth_infonce, *leaves[:3], idx, reduction="none", anchor_mask=mask)
    total = backend.run(smooth_infonce, *leaves[:3], idx, reduction="anchor_sum", anchor_mask=mask)
    torch.testing.assert_close(total, per_anchor.sum())


# ---- the CUDA kernel's logic (host emulation) ----------------------------------------------------------

@pytest.mark.parametrize("first_step", [0, 2])
@pytest.mark.parametrize("with_weight", [True, False])
def test_cuda_emulation_matches_the_reference(first_step, with_weight):
    emu = load_cuda_emulation()
    leaves, idx = _inputs(10 + first_step)
    c, z, w, mu, lv = leaves
    w = w if with_weight else None
    loss, correct, kl = emu.smooth_infonce_fwd(c, z, w, idx, mu, lv, 0, T, False, first_step)
    ref_loss, ref_correct, _ = per_anchor_terms(c, z, w, idx, mu, lv, first_step=first_step)
    torch.testing.assert_close(loss, ref_loss)
    assert torch.equal(correct, ref_correct)
    lw = torch.rand(K, B, T, dtype=torch.float64)
    kw = torch.rand(B, T, dtype=torch.float64)
    value, *_, gc, gt, gw, gmu, glv = emu.smooth_infonce_value_and_grad(c, z, w, idx, mu, lv, 0, T, lw, kw, False,
                                                                        first_step)
    a = [x.clone().requires_grad_() for x in (c, z, mu, lv)] + ([w.clone().requires_grad_()] if with_weight else [])
    rl, _, rk = per_anchor_terms(a[0], a[1], a[4] if with_weight else None, idx, a[2], a[3], first_step=first_step)
    ref_value = (lw * rl).sum() + (kw * rk).sum()
    torch.testing.assert_close(value, ref_value.detach())
    ref = torch.autograd.grad(ref_value, a)
    for x, y in zip((gc, gt, gmu, glv), ref[:4]):
        torch.testing.assert_close(x, y)
    if with_weight:
        torch.testing.assert_close(gw, ref[4])
    else:
        assert gw.numel() == 0


# ---- bad combinations ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend_name", ["reference", "native"])
def test_bad_combinations_name_the_argument(backend_name):
    leaves, idx = _inputs()
    c, z, w = leaves[:3]
    cases = [
        (dict(weight=None), r"weight must be a \(K, Cz, Cc\) tensor for score='bilinear'"),
        (dict(score="dot"), r"weight must be None for score='dot'"),
        (dict(score="euclid", weight=None), r"score must be one of \('bilinear', 'dot', 'cosine'\)"),
        (dict(first_step=-1), r"first_step must be an int >= 0"),
        (dict(first_step=True), r"first_step must be an int >= 0"),
        (dict(first_step=T - K + 1), r"first_step \+ K - 1 \(first_step=7\) must be < T=9"),
        (dict(reduction="total"), r"reduction must be one of \('mean', 'sum', 'anchor_sum', 'none'\)"),
    ]
    for kw, msg in cases:
        args = dict(weight=w, score="bilinear")
        args.update(kw)
        with pytest.raises(ValueError, match=msg):
            smooth_infonce(c, z, args.pop("weight"), idx, backend=backend_name, **args)
    with pytest.raises(ValueError, match=r"same channels for a score without weight .* Cc=4, Cz=3"):
        smooth_infonce(c, z[..., :3], None, idx, score="dot", backend=backend_name)


def test_the_module_without_weight_has_no_parameters_and_trains():
    loss_fn = SmoothInfoNCELoss(C, prediction_steps=1, negative_samples=N, beta=0.1, sampler="within_sequence",
                                reduction="anchor_sum", first_step=0, score="cosine", score_scale=10.0)
    assert list(loss_fn.parameters()) == [] and "score='cosine'" in repr(loss_fn)
    c = torch.randn(B, T, C, requires_grad=True)
    z, mu, lv = torch.randn(B, T, C), torch.randn(B, T, C), torch.randn(B, T, C)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, ::2] = True
    out = loss_fn(c, z, mu, lv, generator=torch.Generator().manual_seed(0), anchor_mask=mask)
    out.backward()
    assert torch.isfinite(c.grad).all() and c.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="target_dim must equal context_dim"):
        SmoothInfoNCELoss(C, target_dim=C + 1, score="dot")
    with pytest.raises(ValueError, match="sampler='gim' lays its shared permutations out for first_step=1"):
        SmoothInfoNCELoss(C, sampler="gim", first_step=0, score="dot")
