"""smooth_infonce (every backend of the shared ``backend`` fixture: reference, native-cpu, cuda,
triton) against a hand-computed case and against the independent float64 loops of
tests/sim_kernels/naive.py: values and gradients, every option.

The native CPU kernel is part of the product: when sim_kernels._C did not build, the native-cpu
tests fail (they do not skip); cuda skips without a GPU; triton runs in its interpreter here.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sim_kernels import smooth_infonce, smooth_infonce_with_metrics

from .conftest import BACKENDS, backend_for
from .inputs import case_id, dtypes, make_inputs, tol
from .naive import naive_metrics, naive_smooth_infonce

REDUCTIONS = ("mean", "sum", "none")
KL_REDUCTIONS = ("dims", "time")




def _grads(out, inputs, upstream=None):
    """d out / d inputs (zeros for inputs out does not depend on, e.g. mu under reduction="none")."""
    return torch.autograd.grad(out, inputs, upstream, allow_unused=True, materialize_grads=True)


# ---------------------------------------------------------------------------------------------
# 1. A tiny case by hand: B=1, T=3, Cc=Cz=1, K=2, N=1, shared neg_idx.
#
#   context c = [1, 2, 5], targets z = [4, 2, 2], W_1 = 0.5, W_2 = 1, neg_idx[0, t, 0] = [2, 0, 1]
#   k=1: W_1 c = [0.5, 1, 2.5]; anchors t = 0, 1
#        t=0: s+ = z1*0.5 = 1, s- = z2*0.5 = 1      -> l = log(e^1 + e^1) - 1 = ln 2
#        t=1: s+ = z2*1   = 2, s- = z0*1   = 4      -> l = log(e^2 + e^4) - 2 = ln(1 + e^2)
#   k=2: W_2 c = [1, 2, 5]; anchor t = 0
#        t=0: s+ = z2*1   = 2, s- = z2*1   = 2      -> l = ln 2  (the positive drawn as negative)
#   per-k means: [(ln 2 + ln(1 + e^2)) / 2, ln 2] = [1.4100376, 0.6931472]
#   "mean" = 1.0515924, "sum" = 2.1031848, "none" = [[[ln 2, ln(1+e^2), 0]], [[ln 2, 0, 0]]]
#   (neg_idx[0, 2, 0] = 1 is never read: t = 2 >= T - k for every k.)
#
#   mu = [1, 0, 2], logvar = [0, ln 2, 0]:
#        KL(t) = 1/2 (mu^2 + e^lv - lv - 1) = [1/2, (1 - ln 2)/2, 2], sum = 2.6534264
#        "dims" = sum / (B*T) = 0.8844755, "time" = sum / (B*Cz) = 2.6534264
#
#   Gradients of "mean" (no KL), with dl/ds+ = p+ - 1 and dl/ds- = p-, ds/dW_k = z_r c_t:
#        k=1,t=0: p = (1/2, 1/2): dl/dW_1 = -1/2*2*1 + 1/2*2*1 = 0,   dl/dc0 = 0
#        k=1,t=1: p = (s(-2), s(2)), s = sigmoid: dl/dW_1 = -s(2)*2*2 + s(2)*4*2 = 4 s(2),
#                 dl/dc1 = -s(2)*2*0.5 + s(2)*4*0.5 = s(2)
#        k=2,t=0: p = (1/2, 1/2): dl/dW_2 = 0, dl/dc0 = 0
#        L = 1/2 (1/2 (l10 + l11) + l20)  ->  dL/dW = [s(2), 0] = [0.8807971, 0],
#        dL/dc = [0, s(2)/4, 0] = [0, 0.2201993, 0]
#   KL gradients ("dims", beta = 0.1): dL/dmu = beta/3 * mu, dL/dlogvar = beta/3 * (e^lv - 1)/2
# ---------------------------------------------------------------------------------------------
LN2, LN1E2 = math.log(2.0), math.log1p(math.exp(2.0))
SIG2 = 1.0 / (1.0 + math.exp(-2.0))
KL_SUM = 0.5 + 0.5 * (1.0 - LN2) + 2.0
HAND_NCE = {"mean": ((LN2 + LN1E2) / 2 + LN2) / 2, "sum": (LN2 + LN1E2) / 2 + LN2}
HAND_KL = {"dims": KL_SUM / 3, "time": KL_SUM / 1}


def _hand_inputs():
    f64 = torch.float64
    context = torch.tensor([1.0, 2.0, 5.0], dtype=f64).view(1, 3, 1)
    targets = torch.tensor([4.0, 2.0, 2.0], dtype=f64).view(1, 3, 1)
    weight = torch.tensor([0.5, 1.0], dtype=f64).view(2, 1, 1)
    neg_idx = torch.tensor([2, 0, 1]).view(1, 3, 1)
    mu = torch.tensor([1.0, 0.0, 2.0], dtype=f64).view(1, 3, 1)
    logvar = torch.tensor([0.0, LN2, 0.0], dtype=f64).view(1, 3, 1)
    return context, targets, weight, neg_idx, mu, logvar


def _loss_fn(impl):
    """smooth_infonce with a backend (inputs moved to its device, the output back to the CPU), or the
    naive oracle itself (checked by hand here too)."""
    if impl == "naive":
        return naive_smooth_infonce
    b = backend_for(impl)
    return lambda *a, **kw: b.run(smooth_infonce, *a, **kw)


@pytest.mark.parametrize("impl", ("naive",) + BACKENDS)
@pytest.mark.parametrize("reduction", ("mean", "sum"))
@pytest.mark.parametrize("kl_reduction", KL_REDUCTIONS)
def test_hand_case_values(impl, reduction, kl_reduction):
    fn = _loss_fn(impl)
    c, z, w, idx, mu, lv = _hand_inputs()
    f64 = torch.float64
    torch.testing.assert_close(fn(c, z, w, idx, reduction=reduction), torch.tensor(HAND_NCE[reduction], dtype=f64))
    # beta = 0 with mu: the KL term vanishes
    torch.testing.assert_close(fn(c, z, w, idx, mu, lv, beta=0.0, kl_reduction=kl_reduction, reduction=reduction),
                               torch.tensor(HAND_NCE[reduction], dtype=f64))
    out = fn(c, z, w, idx, mu, lv, beta=0.1, kl_reduction=kl_reduction, reduction=reduction)
    torch.testing.assert_close(out, torch.tensor(HAND_NCE[reduction] + 0.1 * HAND_KL[kl_reduction], dtype=f64))
    # per-k neg_idx equal to the shared one gives the same loss
    out_k = fn(c, z, w, idx.unsqueeze(0).expand(2, -1, -1, -1).contiguous(), mu, lv, beta=0.1,
               kl_reduction=kl_reduction, reduction=reduction)
    torch.testing.assert_close(out_k, out)


@pytest.mark.parametrize("impl", ("naive",) + BACKENDS)
def test_hand_case_none(impl):
    c, z, w, idx, mu, lv = _hand_inputs()
    expected = torch.tensor([[[LN2, LN1E2, 0.0]], [[LN2, 0.0, 0.0]]], dtype=torch.float64)
    fn = _loss_fn(impl)
    torch.testing.assert_close(fn(c, z, w, idx, reduction="none"), expected)
    # "none" has no KL term, whatever beta
    torch.testing.assert_close(fn(c, z, w, idx, mu, lv, beta=0.5, reduction="none"), expected)


@pytest.mark.parametrize("impl", ("naive",) + BACKENDS)
def test_hand_case_gradients(impl):
    c, z, w, idx, mu, lv = (x.requires_grad_() if x.is_floating_point() else x for x in _hand_inputs())
    out = _loss_fn(impl)(c, z, w, idx, mu, lv, beta=0.1, kl_reduction="dims", reduction="mean")
    g_c, g_w, g_mu, g_lv = _grads(out, [c, w, mu, lv])
    f64 = torch.float64
    torch.testing.assert_close(g_w, torch.tensor([SIG2, 0.0], dtype=f64).view(2, 1, 1))
    torch.testing.assert_close(g_c, torch.tensor([0.0, SIG2 / 4, 0.0], dtype=f64).view(1, 3, 1))
    torch.testing.assert_close(g_mu, 0.1 / 3 * mu.detach())
    torch.testing.assert_close(g_lv, 0.1 / 3 * 0.5 * (lv.detach().exp() - 1))


def test_hand_case_metrics(backend):
    c, z, w, idx, mu, lv = _hand_inputs()
    _, m = backend.run(smooth_infonce_with_metrics, c, z, w, idx, mu, lv, beta=0.1, kl_reduction="time")
    f64 = torch.float64
    torch.testing.assert_close(m["nce"], torch.tensor([(LN2 + LN1E2) / 2, LN2], dtype=f64))
    # every anchor has s+ <= s- (ties at k=1,t=0 and k=2,t=0 count as misses)
    torch.testing.assert_close(m["accuracy"], torch.zeros(2, dtype=f64))
    torch.testing.assert_close(m["kl"], torch.tensor(HAND_KL["time"], dtype=f64))


# ---------------------------------------------------------------------------------------------
# 2. Random shapes (hypothesis) against naive.py: values and gradients, both code paths
#    (with gradients: the fused forward+backward; without: the forward-only kernel).
# ---------------------------------------------------------------------------------------------
def _make(case, dtype=torch.float64):
    """tests/sim_kernels/inputs.py's make_inputs for a case dict, plus poisoned ignored neg_idx entries."""
    B, T, K, N, Cc, Cz = (case[k] for k in ("B", "T", "K", "N", "Cc", "Cz"))
    x = make_inputs(B, T, Cc, Cz, K, N, dtype=dtype, shared=case["shared"], with_kl=case["with_mu"], seed=case["seed"],
                    requires_grad=False)
    neg_idx = x.neg_idx.clone()
    if case["poison"]:
        if case["shared"]:  # t = T-1 is ignored for every k
            neg_idx[:, T - 1] = -5
        else:  # t >= T-k is ignored at step k
            for k in range(1, K + 1):
                neg_idx[k - 1, :, T - k :] = B * T + 3
    return [x.context, x.targets, x.weight, x.mu, x.logvar, neg_idx]


@st.composite
def cases(draw):
    T = draw(st.integers(2, 9))
    return dict(B=draw(st.integers(1, 3)), T=T, K=draw(st.integers(1, T - 1)), N=draw(st.integers(1, 4)),
                Cc=draw(st.integers(1, 6)), Cz=draw(st.integers(1, 6)), shared=draw(st.booleans()),
                with_mu=draw(st.booleans()), reduction=draw(st.sampled_from(REDUCTIONS)),
                kl_reduction=draw(st.sampled_from(KL_REDUCTIONS)), beta=draw(st.sampled_from([0.0, 0.01, 0.7])),
                poison=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


def _edge(**kw):
    base = dict(B=1, T=2, K=1, N=1, Cc=1, Cz=1, shared=True, with_mu=True, reduction="mean", kl_reduction="dims",
                beta=0.7, poison=True, seed=1)
    base.update(kw)
    return base


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=cases())
@example(case=_edge())  # the smallest: B=1, T=2, K=T-1=1, N=1, one channel
@example(case=_edge(B=1, T=9, K=8, N=1, Cc=5, Cz=3, shared=False, reduction="sum", kl_reduction="time"))
@example(case=_edge(B=3, T=7, K=6, N=4, Cc=6, Cz=1, shared=False, reduction="none", seed=7))
@example(case=_edge(B=2, T=5, K=2, N=3, Cc=3, Cz=5, with_mu=False, reduction="none", poison=False))
def test_matches_naive(backend, case):  # the fixture's value is immutable: safe across hypothesis examples
    context, targets, weight, mu, logvar, neg_idx = _make(case)
    kw = dict(beta=case["beta"], kl_reduction=case["kl_reduction"], reduction=case["reduction"])
    leaves = [x.requires_grad_() for x in (context, targets, weight, mu, logvar) if x is not None]

    out = backend.run(smooth_infonce, context, targets, weight, neg_idx, mu, logvar, **kw)
    expected = naive_smooth_infonce(context, targets, weight, neg_idx, mu, logvar, **kw)
    assert out.dtype == torch.float64
    assert out.shape == ((case["K"], case["B"], case["T"]) if case["reduction"] == "none" else ())
    torch.testing.assert_close(out, expected)

    upstream = torch.randn_like(out) if case["reduction"] == "none" else None
    torch.testing.assert_close(_grads(out, leaves, upstream), _grads(expected, leaves, upstream))

    with torch.no_grad():  # the forward-only path
        out_ng = backend.run(smooth_infonce, context, targets, weight, neg_idx, mu, logvar, **kw)
    torch.testing.assert_close(out_ng, expected.detach())


# ---------------------------------------------------------------------------------------------
# 3. float32, non-contiguous inputs, the anchor window, gradcheck.
# ---------------------------------------------------------------------------------------------
SHAPES = [(2, 9, 5, 3, 3, 4), (1, 7, 1, 6, 6, 1), (3, 5, 4, 2, 1, 2)]  # B, T, Cc, Cz, K, N


def _case(shape, **kw):
    B, T, Cc, Cz, K, N = shape
    base = dict(B=B, T=T, K=K, N=N, Cc=Cc, Cz=Cz, shared=False, with_mu=True, reduction="mean",
                kl_reduction="dims", beta=0.3, poison=False, seed=sum(shape))
    base.update(kw)
    return base


@pytest.mark.parametrize("shape", SHAPES, ids=case_id)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float32_matches_naive(backend, shape, reduction):
    case = _case(shape, reduction=reduction)
    c, z, w, mu, lv, idx = _make(case, torch.float32)
    leaves = [x.requires_grad_() for x in (c, z, w, mu, lv)]
    out = backend.run(smooth_infonce, c, z, w, idx, mu, lv, beta=0.3, reduction=reduction)
    assert out.dtype == torch.float32
    expected = naive_smooth_infonce(c, z, w, idx, mu, lv, beta=0.3, reduction=reduction)
    torch.testing.assert_close(out, expected.float(), **tol(torch.float32))
    upstream = torch.randn_like(out) if reduction == "none" else None
    got = _grads(out, leaves, upstream)
    want = _grads(expected, leaves, upstream.double() if upstream is not None else None)
    for name, a, b in zip(("context", "targets", "weight", "mu", "logvar"), got, want):
        assert a.dtype == torch.float32, name
        torch.testing.assert_close(a, b.float(), **tol(torch.float32), msg=lambda m, n=name: f"grad of {n}: {m}")


def test_non_contiguous_inputs(backend):
    case = _case((2, 8, 4, 3, 3, 2))
    c, z, w, mu, lv, idx = _make(case)
    # the same values, laid out transposed / strided / as expanded views
    c_nc = c.transpose(0, 1).contiguous().transpose(0, 1)
    z_nc = z.transpose(1, 2).contiguous().transpose(1, 2)
    w_nc = w.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    idx_nc = idx.permute(3, 0, 1, 2).contiguous().permute(1, 2, 3, 0)
    mu_nc = mu.transpose(1, 2).contiguous().transpose(1, 2)
    assert not (c_nc.is_contiguous() or z_nc.is_contiguous() or w_nc.is_contiguous() or idx_nc.is_contiguous())
    leaves = [x.requires_grad_() for x in (c_nc, z_nc, w_nc, mu_nc, lv)]
    out = backend.run(smooth_infonce, c_nc, z_nc, w_nc, idx_nc, mu_nc, lv, beta=0.2)
    expected = naive_smooth_infonce(c, z, w, idx, mu, lv, beta=0.2)
    torch.testing.assert_close(out, expected)
    ref_leaves = [x.requires_grad_() for x in (c, z, w, mu, lv)]
    expected = naive_smooth_infonce(*ref_leaves[:3], idx, *ref_leaves[3:], beta=0.2)
    torch.testing.assert_close(_grads(out, leaves), _grads(expected, ref_leaves))


@pytest.mark.parametrize("window", [(0, 9), (2, 7), (3, 9), (0, 4)], ids=["win0-9", "win2-7", "win3-9", "win0-4"])
def test_window_matches_naive(backend, window):
    case = _case((2, 9, 3, 4, 3, 3), shared=True, poison=False)
    c, z, w, mu, lv, idx = _make(case)
    leaves = [x.requires_grad_() for x in (c, z, w, mu, lv)]
    out, m = backend.run(smooth_infonce_with_metrics, c, z, w, idx, mu, lv, beta=0.3, kl_reduction="time",
                         window=window)
    expected = naive_smooth_infonce(c, z, w, idx, mu, lv, beta=0.3, kl_reduction="time",
                                    t_begin=window[0], t_end=window[1])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(_grads(out, leaves), _grads(expected, leaves))
    nm = naive_metrics(c, z, w, idx, mu, lv, kl_reduction="time", t_begin=window[0], t_end=window[1])
    for key in ("nce", "accuracy", "kl"):
        torch.testing.assert_close(m[key], nm[key], msg=lambda msg, k=key: f"metric {k}: {msg}")


# gradcheck perturbs every input element: tiny shapes (34 elements) keep it to a few seconds.
@pytest.mark.parametrize("reduction,shared", [("mean", False), ("sum", True), ("none", False)],
                         ids=["mean-per_k", "sum-shared", "none-per_k"])
def test_gradcheck_float64(backend, reduction, shared):
    case = _case((2, 3, 2, 1, 2, 2), shared=shared, poison=True, kl_reduction="time")
    c, z, w, mu, lv, idx = _make(case)
    inputs = tuple(x.requires_grad_() for x in (c, z, w, mu, lv))

    def fn(c, z, w, mu, lv):
        return backend.run(smooth_infonce, c, z, w, idx, mu, lv, beta=0.4, kl_reduction="time", reduction=reduction)

    # Triton (a backend added to these tests with the shared fixture) in its interpreter takes ~0.5 s a
    # call: fast_mode checks a random projection of the Jacobian, as test_triton.py does.
    fast = backend.id == "triton"
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=fast)


def test_gradcheck_float64_window(backend):
    case = _case((1, 6, 2, 2, 2, 2), shared=False)
    c, z, w, mu, lv, idx = _make(case)
    inputs = tuple(x.requires_grad_() for x in (c, z, w, mu, lv))

    def fn(c, z, w, mu, lv):
        return backend.run(smooth_infonce_with_metrics, c, z, w, idx, mu, lv, beta=0.2, window=(1, 5))[0]

    fast = backend.id == "triton"  # see test_gradcheck_float64
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=fast)


@pytest.mark.parametrize("dtype", dtypes(torch.float32, torch.float64))
def test_large_scores_stay_finite(backend, dtype):
    """Scores of several hundred: exp() would overflow without the max shift of the log-sum-exp."""
    case = _case((2, 6, 3, 3, 2, 4), with_mu=False)
    c, z, w, _, _, idx = _make(case)
    c = (c * 40).to(dtype).requires_grad_()
    z = (z * 40).to(dtype)
    w = w.to(dtype)
    out = backend.run(smooth_infonce, c, z, w, idx)
    expected = naive_smooth_infonce(c, z, w, idx)
    assert torch.isfinite(out) and float(out.detach()) > 50
    # float32 against the float64 oracle at scores of several hundred: absolute error ~ |s| * eps32
    scaled = dict(rtol=1e-5, atol=1e-3) if dtype == torch.float32 else {}
    torch.testing.assert_close(out.double(), expected, **scaled)
    g, g_naive = torch.autograd.grad(out, c)[0], torch.autograd.grad(expected, c)[0]
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g.double(), g_naive.double(), **scaled)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("leaf", ["context", "targets", "weight", "mu", "logvar"])
def test_one_input_requires_grad_and_loss_is_not_the_last_layer(backend, leaf, reduction):
    """Only one input requires grad, and the loss feeds a further computation (scaled upstream)."""
    case = _case((2, 6, 3, 2, 3, 2), reduction=reduction)
    c, z, w, mu, lv, idx = _make(case)
    args = dict(context=c, targets=z, weight=w, mu=mu, logvar=lv)
    x = args[leaf].requires_grad_()
    kw = dict(beta=0.3, reduction=reduction)
    out = backend.run(smooth_infonce, args["context"], args["targets"], args["weight"], idx, args["mu"], args["logvar"],
                      **kw)
    expected = naive_smooth_infonce(args["context"], args["targets"], args["weight"], idx, args["mu"], args["logvar"],
                                    **kw)
    upstream = torch.linspace(-1.0, 2.0, out.numel(), dtype=out.dtype).view(out.shape) if out.dim() else None
    y = 2.5 * out.sum() if upstream is None else (upstream * out).sum()
    y_naive = 2.5 * expected.sum() if upstream is None else (upstream * expected).sum()
    if reduction == "none" and leaf in ("mu", "logvar"):  # no KL term: the output does not depend on them
        assert not y_naive.requires_grad
        g = _grads(y, [x]) if y.requires_grad else (torch.zeros_like(x),)
        torch.testing.assert_close(g, (torch.zeros_like(x),))
        return
    torch.testing.assert_close(_grads(y, [x]), _grads(y_naive, [x]))
