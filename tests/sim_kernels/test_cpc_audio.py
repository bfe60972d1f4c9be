"""CPC_audio's unsupervised criterion as options of the fused loss (issue 17, item 4).

facebookresearch/CPC_audio (cpc/criterion/criterion.py, CPCUnsupersivedCriterion with linear
predictors), written here from its formula, not its code:
    window = T - K (one common anchor window for every step k)
    pred_k[b, t] = W_k c[b, t]                                  t < window
    s[b, t, k, j] = mean_c (pred_k[b, t, c] * cand_j[c])        cand_0 = z[b, t+k], cand_n = negative n,
                                                                  the same negatives for every k
    loss_k = cross-entropy(s[b, t, k, :], class 0), averaged over the B * window anchors
    criterion = sum_k loss_k                                    (their training loop sums the K losses)
Ours: smooth_infonce(..., anchor_window="common", score_scale="mean", reduction="sum") with a (B, T, N)
neg_idx shared over k. Checked on seeded draws for every backend, values and gradients.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sim_kernels import InfoNCELoss, sample_negatives, smooth_infonce, smooth_infonce_reference

from .conftest import CPU_NAMES, backend_for
from .inputs import cpu_backends, make_inputs


BACKENDS = cpu_backends()  # the formula tests pick a smaller float32 shape for triton (interpreter)


def cpc_audio_criterion(context, targets, weight, neg_rows):
    """Their formula, independently: context (B, T, Cc), targets (B, T, Cz), weight (K, Cz, Cc) (predictor
    k is nn.Linear(Cc, Cz, bias=False) with weight[k-1]), neg_rows (B, T, N) rows of targets.reshape(B*T, Cz)."""
    B, T, _ = context.shape
    K, Cz, N = weight.shape[0], targets.shape[-1], neg_rows.shape[-1]
    window = T - K
    negs = targets.reshape(B * T, Cz)[neg_rows[:, :window]]  # (B, window, N, Cz), shared over k
    total = 0.0
    for k in range(1, K + 1):
        pred = F.linear(context[:, :window], weight[k - 1])  # (B, window, Cz)
        cand = torch.cat([targets[:, k : k + window].unsqueeze(2), negs], dim=2)  # (B, window, N+1, Cz)
        scores = (pred.unsqueeze(2) * cand).mean(dim=3)  # (B, window, N+1)
        label = torch.zeros(B * window, dtype=torch.long)
        total = total + F.cross_entropy(scores.reshape(B * window, N + 1), label)
    return total


def _skip(backend):
    """conftest.py's rule: a missing native CPU kernel fails (the build is part of the product)."""
    backend_for(CPU_NAMES[backend])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_cpc_audio_formula(backend, seed):
    _skip(backend)
    shape = (2, 13, 7, 5, 3, 4) if backend == "triton" else (3, 29, 12, 9, 5, 8)
    dtype = torch.float32 if backend == "triton" else torch.float64
    B, T, Cc, Cz, K, N = shape
    c, z, w, _, _, _ = make_inputs(*shape, dtype=dtype, with_kl=False, seed=seed)
    w = (w.detach() * Cz ** 0.5).requires_grad_()  # scores of order 1 after the mean over channels
    neg = sample_negatives("cpc", B, T, N, K, generator=torch.Generator().manual_seed(seed))
    theirs = cpc_audio_criterion(c, z, w, neg)
    ours = smooth_infonce(c, z, w, neg, anchor_window="common", score_scale="mean", reduction="sum", backend=backend)
    torch.testing.assert_close(ours, theirs.to(ours.dtype))
    for a, b in zip(torch.autograd.grad(ours, [c, z, w]), torch.autograd.grad(theirs, [c, z, w])):
        torch.testing.assert_close(a, b)


def test_common_window_per_anchor_and_metrics(backend):
    """reduction="none" is 0 at t >= T-K for every k, and the metrics average over B*(T-K) anchors."""
    B, T, Cc, Cz, K, N = 2, 13, 7, 5, 3, 4
    c, z, w, neg, mu, lv = make_inputs(B, T, Cc, Cz, K, N, dtype=torch.float32, seed=3)
    per = backend.run(smooth_infonce, c, z, w, neg, anchor_window="common", reduction="none")
    assert (per[:, :, T - K:] == 0).all() and (per[:, :, : T - K] > 0).all()
    want = smooth_infonce_reference(c, z, w, neg, anchor_window="common", reduction="none")
    torch.testing.assert_close(per, want)
    full = backend.run(smooth_infonce, c, z, w, neg, mu, lv, beta=0.1, anchor_window="common", score_scale=0.5)
    torch.testing.assert_close(full, smooth_infonce_reference(c, z, w, neg, mu, lv, beta=0.1, anchor_window="common",
                                                              score_scale=0.5))


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_loss_module_reproduces_cpc_audio(backend):
    """InfoNCELoss with CPC_audio's options and sampler equals their formula on the same negatives."""
    _skip(backend)
    B, T, C, K, N = 2, 30, 8, 4, 6
    c, z, _, _, _, _ = make_inputs(B, T, C, C, K, N, dtype=torch.float64, with_kl=False, seed=4)
    mod = InfoNCELoss(C, C, K, N, sampler="cpc", reduction="sum", backend=backend, anchor_window="common",
                      score_scale="mean").double()
    got = mod(c, z, generator=torch.Generator().manual_seed(5))
    neg = sample_negatives("cpc", B, T, N, K, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, cpc_audio_criterion(c, z, mod.weight, neg))


@pytest.mark.parametrize("kw,err", [(dict(anchor_window="last"), ValueError), (dict(score_scale=0.0), ValueError),
                                    (dict(score_scale=float("nan")), ValueError), (dict(score_scale="sum"), ValueError),
                                    (dict(score_scale=True), TypeError), (dict(score_scale=None), TypeError)],
                         ids=["window", "zero", "nan", "word", "bool", "none"])
def test_bad_options_raise(kw, err):
    c, z, w, neg, _, _ = make_inputs(1, 6, 3, 3, 2, 2, dtype=torch.float32, with_kl=False)
    name = next(iter(kw))
    with pytest.raises(err, match=name):
        smooth_infonce(c, z, w, neg, **kw)
    with pytest.raises(err, match=name):
        InfoNCELoss(3, 3, 2, 2, **kw)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(anchor_window="commom"), ValueError, "anchor_window"),
    (dict(score_scale="sum"), ValueError, "score_scale"),
    (dict(score_scale=0.0), ValueError, "score_scale"),
    (dict(score_scale=float("nan")), ValueError, "score_scale"),
    (dict(score_scale=[1.0]), TypeError, "score_scale"),
])
def test_reference_refuses_bad_options_like_the_functional(kwargs, error, match):
    """The oracle checks the CPC_audio options with the functional's own check (sim_kernels/spec.py: LossSpec)."""
    from sim_kernels.reference import smooth_infonce_reference

    x = torch.randn(1, 6, 3)
    w, idx = torch.randn(2, 3, 3), torch.zeros(2, 1, 6, 1, dtype=torch.long)
    with pytest.raises(error, match=match):
        smooth_infonce_reference(x, x, w, idx, **kwargs)
