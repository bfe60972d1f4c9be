"""Padded batches (``lengths``) and masked anchors (``anchor_mask``) on every backend, against the reference's
definition (explicit loops over the counted anchors, sim_kernels/reference.py), and an oracle that needs
neither option: a batch of one utterance cropped to its length is the same loss.
"""
from __future__ import annotations

import pytest
import torch

from sim_kernels import smooth_infonce, smooth_infonce_reference, smooth_infonce_with_metrics

B, T, Cc, Cz, K, N = 3, 11, 4, 5, 3, 4
LENGTHS = [11, 7, 5]


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(B, T, Cc, generator=g, dtype=torch.float64)
    z = torch.randn(B, T, Cz, generator=g, dtype=torch.float64)
    w = 0.5 * torch.randn(K, Cz, Cc, generator=g, dtype=torch.float64)
    mu = torch.randn(B, T, Cz, generator=g, dtype=torch.float64)
    lv = 0.3 * torch.randn(B, T, Cz, generator=g, dtype=torch.float64)
    # negatives from real frames only (a padded frame is never a negative)
    real = torch.tensor([b * T + t for b in range(B) for t in range(LENGTHS[b])])
    idx = real[torch.randint(0, len(real), (K, B, T, N), generator=g)]
    mask = torch.rand(B, T, generator=g) < 0.6
    return [c, z, w, mu, lv], idx, torch.tensor(LENGTHS), mask


CASES = {"lengths": (True, False), "anchor_mask": (False, True), "both": (True, True)}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kl_reduction", ["dims", "time"])
@pytest.mark.parametrize("anchor_window", ["per_step", "common"])
def test_every_backend_matches_the_reference(backend, case, reduction, kl_reduction, anchor_window):
    leaves, idx, lengths, mask = _inputs()
    use_len, use_mask = CASES[case]
    opts = dict(lengths=lengths if use_len else None, anchor_mask=mask if use_mask else None, beta=0.7,
                reduction=reduction, kl_reduction=kl_reduction, anchor_window=anchor_window)
    ref_leaves = [x.clone().requires_grad_() for x in leaves]
    ref = smooth_infonce_reference(*ref_leaves[:3], idx, *ref_leaves[3:], **opts)
    got_leaves = [x.clone().requires_grad_() for x in leaves]
    got = backend.run(smooth_infonce, *got_leaves[:3], idx, *got_leaves[3:], **opts)
    torch.testing.assert_close(got, ref)
    upstream = torch.rand(ref.shape, dtype=ref.dtype, generator=torch.Generator().manual_seed(1))
    for name, a, b in zip(("context", "targets", "weight", "mu", "logvar"),
                          torch.autograd.grad((got * upstream).sum(), got_leaves, allow_unused=True),
                          torch.autograd.grad((ref * upstream).sum(), ref_leaves, allow_unused=True)):
        if b is None:
            assert a is None or a.abs().max() == 0, name
        else:
            torch.testing.assert_close(a, b, msg=lambda m, name=name: f"grad_{name}: {m}")


def test_metrics_count_only_the_counted_anchors(backend):
    leaves, idx, lengths, mask = _inputs()
    _, m = backend.run(smooth_infonce_with_metrics, *leaves[:3], idx, *leaves[3:], beta=0.7, lengths=lengths,
                       anchor_mask=mask)
    loss = smooth_infonce_reference(*leaves[:3], idx, reduction="none", lengths=lengths, anchor_mask=mask)
    counted = torch.zeros(K, B, T, dtype=torch.bool)
    for k in range(1, K + 1):
        for b in range(B):
            counted[k - 1, b, :max(0, LENGTHS[b] - k)] = mask[b, :max(0, LENGTHS[b] - k)]
    torch.testing.assert_close(m["nce"], loss.sum(dim=(1, 2)) / counted.sum(dim=(1, 2)).double())


def test_a_padded_utterance_is_the_same_loss_as_the_cropped_one(backend):
    """B = 1: lengths = L on a batch padded to T with garbage equals the unpadded batch of length L (negatives
    from the real frames), losses and the gradients of the real frames; the padding gets no gradient."""
    g = torch.Generator().manual_seed(5)
    L = 7
    c, z, mu, lv = (torch.randn(1, T, Cz, generator=g, dtype=torch.float64) for _ in range(4))
    w = 0.5 * torch.randn(K, Cz, Cz, generator=g, dtype=torch.float64)
    idx = torch.randint(0, L, (K, 1, T, N), generator=g)
    padded = [x.clone().requires_grad_() for x in (c, z, w, mu, lv)]
    got = backend.run(smooth_infonce, *padded[:3], idx, *padded[3:], beta=0.4, lengths=torch.tensor([L]))
    cropped = [c[:, :L].clone(), z[:, :L].clone(), w.clone(), mu[:, :L].clone(), lv[:, :L].clone()]
    cropped = [x.requires_grad_() for x in cropped]
    want = smooth_infonce(*cropped[:3], idx[:, :, :L].contiguous(), *cropped[3:], beta=0.4, backend="reference")
    torch.testing.assert_close(got, want)
    got_g = torch.autograd.grad(got, padded)
    want_g = torch.autograd.grad(want, cropped)
    for i, (a, b) in enumerate(zip(got_g, want_g)):
        if i == 2:
            torch.testing.assert_close(a, b)
        else:
            torch.testing.assert_close(a[:, :L], b)
            assert a[:, L:].abs().max() == 0  # padding is neither anchor, positive, negative nor a KL frame


@pytest.mark.parametrize("bad, match", [
    (dict(lengths=torch.tensor([11, 7])), "lengths must be an int64 tensor of shape"),
    (dict(lengths=torch.tensor([11.0, 7.0, 5.0])), "lengths must be an int64"),
    (dict(lengths=torch.tensor([11, 0, 5])), r"lengths: every length must lie in \[1, T=11\]"),
    (dict(lengths=torch.tensor([12, 7, 5])), r"lengths: every length must lie in \[1, T=11\]"),
    (dict(anchor_mask=torch.ones(B, T)), "anchor_mask must be a bool tensor"),
    (dict(anchor_mask=torch.ones(B, T + 1, dtype=torch.bool)), "anchor_mask must be a bool tensor of shape"),
])
def test_bad_lengths_and_masks_are_refused(bad, match):
    leaves, idx, _, _ = _inputs()
    with pytest.raises(ValueError, match=match):
        smooth_infonce(*leaves[:3], idx, **bad)


@pytest.mark.parametrize("sampler", ["gim", "within_sequence", "cpc"])
def test_samplers_never_draw_a_padded_frame(sampler):
    from sim_kernels import sample_negatives

    lengths = torch.tensor(LENGTHS)
    idx = sample_negatives(sampler, B, T, 50, K, generator=torch.Generator().manual_seed(2), lengths=lengths)
    used = idx[idx >= 0] if sampler != "gim" else idx[:, :, :T - 1].reshape(-1)  # gim: 0 outside each step's anchors
    b, t = used // T, used % T
    assert (t < lengths[b]).all(), "a padded frame was drawn"
    # every real frame can be drawn (a uniform sampler over them, not a constant)
    assert len(torch.unique(used)) > 0.8 * sum(LENGTHS)
    if sampler == "within_sequence":  # the anchor's own utterance
        utter = torch.arange(B).view(B, 1, 1).expand(B, T, 50)
        assert torch.equal(idx // T, utter)
    if sampler == "cpc":  # never frame t of the drawn utterance
        assert not ((idx % T) == torch.arange(T).view(1, T, 1)).any()


@pytest.mark.parametrize("backend_name", ["reference", "native", "triton"])
def test_the_module_samples_real_frames_and_counts_real_anchors(backend_name):
    from sim_kernels import SmoothInfoNCELoss

    from .conftest import CPU_NAMES, backend_for

    backend_for(CPU_NAMES[backend_name])  # skips where it cannot run on CPU tensors here
    leaves, _, lengths, mask = _inputs()
    loss_fn = SmoothInfoNCELoss(Cc, Cz, prediction_steps=K, negative_samples=N, beta=0.5, backend=backend_name)
    loss_fn = loss_fn.double()
    g = torch.Generator().manual_seed(3)
    got = loss_fn(leaves[0], leaves[1], leaves[3], leaves[4], generator=g, lengths=lengths, anchor_mask=mask)
    g = torch.Generator().manual_seed(3)
    idx = loss_fn.sample(B, T, None, g, lengths=lengths)
    want = smooth_infonce_reference(leaves[0], leaves[1], loss_fn.weight.detach(), idx, leaves[3], leaves[4], beta=0.5,
                                    lengths=lengths, anchor_mask=mask)
    torch.testing.assert_close(got, want)
