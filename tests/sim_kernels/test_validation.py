"""Every validation rule of smooth_infonce: the exception type and a message naming the argument,
for every backend of the shared ``backend`` fixture (conftest.py). Out-of-range indices at ignored positions must not raise."""
from __future__ import annotations

import math

import pytest
import torch

from sim_kernels import LossSpec, smooth_infonce, smooth_infonce_with_metrics

from .inputs import make_inputs, tol
from .naive import naive_smooth_infonce

B, T, Cc, Cz, K, N = 2, 5, 3, 4, 2, 3


def _good(dtype=torch.float64):
    """Valid arguments: tests/sim_kernels/inputs.py's make_inputs (per-step neg_idx (K, B, T, N)) and beta."""
    return dict(make_inputs(B, T, Cc, Cz, K, N, dtype=dtype, requires_grad=False).as_dict(), beta=0.1)


def _set(**changes):
    """A mutation of the good arguments: values may be callables of the good dict."""
    def apply(kw):
        for name, v in changes.items():
            kw[name] = v(kw) if callable(v) else v
        return kw
    return apply


def _idx_at(k, b, t, value, shared=False):
    def f(kw):
        idx = kw["neg_idx"][0].clone() if shared else kw["neg_idx"].clone()
        if shared:
            idx[b, t, 0] = value
        else:
            idx[k - 1, b, t, 0] = value
        return idx
    return f


META = torch.device("meta")
# (id, mutation, exception, regex the message must match)
CASES = [
    ("context-not-tensor", _set(context=lambda kw: kw["context"].detach().numpy()), TypeError, "context"),
    ("context-2d", _set(context=lambda kw: kw["context"][0]), ValueError, "context"),
    ("context-int", _set(context=lambda kw: kw["context"].long()), TypeError, "context"),
    ("targets-not-tensor", _set(targets=lambda kw: kw["targets"].tolist()), TypeError, "targets"),
    ("targets-4d", _set(targets=lambda kw: kw["targets"][None]), ValueError, "targets"),
    ("targets-dtype", _set(targets=lambda kw: kw["targets"].float()), TypeError, "targets"),
    ("targets-shape", _set(targets=lambda kw: torch.zeros(B, T + 1, Cz, dtype=torch.float64)), ValueError, "targets"),
    ("targets-device", _set(targets=lambda kw: kw["targets"].to(META)), ValueError, "targets"),
    ("weight-2d", _set(weight=lambda kw: kw["weight"][0]), ValueError, "weight"),
    ("weight-shape", _set(weight=lambda kw: torch.zeros(K, Cz + 1, Cc, dtype=torch.float64)), ValueError, "weight"),
    ("weight-K0", _set(weight=lambda kw: torch.zeros(0, Cz, Cc, dtype=torch.float64)), ValueError, "weight"),
    ("weight-dtype", _set(weight=lambda kw: kw["weight"].float()), TypeError, "weight"),
    ("weight-device", _set(weight=lambda kw: kw["weight"].to(META)), ValueError, "weight"),
    ("K-eq-T", _set(weight=lambda kw: torch.zeros(T, Cz, Cc, dtype=torch.float64),
                    neg_idx=lambda kw: torch.zeros(T, B, T, N, dtype=torch.long)), ValueError, "K"),
    ("K-gt-T", _set(weight=lambda kw: torch.zeros(T + 2, Cz, Cc, dtype=torch.float64),
                    neg_idx=lambda kw: torch.zeros(B, T, N, dtype=torch.long)), ValueError, "K"),
    ("B0", _set(context=torch.zeros(0, T, Cc, dtype=torch.float64), targets=torch.zeros(0, T, Cz, dtype=torch.float64),
                neg_idx=torch.zeros(K, 0, T, N, dtype=torch.long), mu=None, logvar=None), ValueError, r"B\*T"),
    ("T0", _set(context=torch.zeros(B, 0, Cc, dtype=torch.float64), targets=torch.zeros(B, 0, Cz, dtype=torch.float64),
                neg_idx=torch.zeros(K, B, 0, N, dtype=torch.long), mu=None, logvar=None), ValueError, r"B\*T"),
    ("Cc0", _set(context=torch.zeros(B, T, 0, dtype=torch.float64), weight=torch.zeros(K, Cz, 0, dtype=torch.float64)),
     ValueError, "Cc"),
    ("Cz0", _set(targets=torch.zeros(B, T, 0, dtype=torch.float64), weight=torch.zeros(K, 0, Cc, dtype=torch.float64),
                 mu=None, logvar=None), ValueError, "Cz"),
    ("neg_idx-list", _set(neg_idx=lambda kw: kw["neg_idx"].tolist()), TypeError, "neg_idx"),
    ("neg_idx-int32", _set(neg_idx=lambda kw: kw["neg_idx"].int()), TypeError, "neg_idx"),
    ("neg_idx-float", _set(neg_idx=lambda kw: kw["neg_idx"].double()), TypeError, "neg_idx"),
    ("neg_idx-2d", _set(neg_idx=lambda kw: kw["neg_idx"][0, 0]), ValueError, "neg_idx"),
    ("neg_idx-5d", _set(neg_idx=lambda kw: kw["neg_idx"][None]), ValueError, "neg_idx"),
    ("neg_idx-wrong-K", _set(neg_idx=lambda kw: torch.zeros(K + 1, B, T, N, dtype=torch.long)), ValueError, "neg_idx"),
    ("neg_idx-wrong-T", _set(neg_idx=lambda kw: torch.zeros(B, T - 1, N, dtype=torch.long)), ValueError, "neg_idx"),
    ("neg_idx-N0", _set(neg_idx=lambda kw: torch.zeros(K, B, T, 0, dtype=torch.long)), ValueError, "neg_idx"),
    ("neg_idx-device", _set(neg_idx=lambda kw: kw["neg_idx"].to(META)), ValueError, "neg_idx"),
    ("mu-without-logvar", _set(logvar=None), ValueError, "mu and logvar"),
    ("logvar-without-mu", _set(mu=None), ValueError, "mu and logvar"),
    ("mu-shape", _set(mu=lambda kw: kw["mu"][:, :-1]), ValueError, "mu"),
    ("mu-2d", _set(mu=lambda kw: kw["mu"][0]), ValueError, "mu"),
    ("mu-not-tensor", _set(mu=lambda kw: kw["mu"].numpy()), TypeError, "mu"),
    ("logvar-dtype", _set(logvar=lambda kw: kw["logvar"].float()), TypeError, "logvar"),
    ("mu-device", _set(mu=lambda kw: kw["mu"].to(META)), ValueError, "mu"),
    ("logvar-device", _set(logvar=lambda kw: kw["logvar"].to(META)), ValueError, "logvar"),
    ("beta-negative", _set(beta=-0.1), ValueError, "beta"),
    ("beta-nan", _set(beta=math.nan), ValueError, "beta"),
    ("beta-inf", _set(beta=math.inf), ValueError, "beta"),
    ("beta-str", _set(beta="0.1"), TypeError, "beta"),
    ("beta-none", _set(beta=None), TypeError, "beta"),
    ("beta-bool", _set(beta=True), TypeError, "beta"),
    ("kl_reduction-unknown", _set(kl_reduction="channels"), ValueError, "^kl_reduction"),
    ("reduction-unknown", _set(reduction="avg"), ValueError, "^reduction"),
    ("reduction-None", _set(reduction=None), ValueError, "^reduction"),
    # out-of-range values at used positions (t < T - k)
    ("neg_idx-eq-BT", _set(neg_idx=_idx_at(1, 0, 0, B * T)), ValueError, "neg_idx"),
    ("neg_idx-negative", _set(neg_idx=_idx_at(K, B - 1, T - K - 1, -2)), ValueError, "neg_idx"),  # -1: excluded
    ("neg_idx-huge", _set(neg_idx=_idx_at(1, 1, T - 2, 2**40)), ValueError, "neg_idx"),
    ("neg_idx-shared-bad", _set(neg_idx=_idx_at(1, 1, T - 2, B * T, shared=True)), ValueError, "neg_idx"),
]


@pytest.mark.parametrize("requires_grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("mutate,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_argument_raises(backend, mutate, exc, match, requires_grad):
    kw = _good()
    if requires_grad:  # the fused forward+backward path of the kernels
        kw["context"].requires_grad_()
    kw = mutate(kw)
    with pytest.raises(exc, match=match):
        backend.run(smooth_infonce, **kw)


@pytest.mark.parametrize("backend_arg", ["cuda", "Native", "", None])
def test_unknown_backend_raises(backend_arg):
    with pytest.raises(ValueError, match="backend"):
        smooth_infonce(backend=backend_arg, **_good())


def test_native_runs_float16_on_cpu():
    """Issue 17, fault 2: the CPU kernel takes float16/bfloat16 (it raised TypeError before)."""
    kw = _good(torch.float16)
    torch.testing.assert_close(smooth_infonce(backend="native", **kw), smooth_infonce(backend="reference", **kw),
                               **tol(torch.float16))


@pytest.mark.parametrize("window,match", [((0, T + 1), "window"), ((3, 3), "window"), ((-1, 4), "window"),
                                          ((1.0, 4), "window"), ((1, 3), "K"), ((2, 4), "K")],
                         ids=["end>T", "empty", "negative", "float", "K-eq-width", "K-eq-width2"])
def test_invalid_window_raises(backend, window, match):
    with pytest.raises(ValueError, match=match):
        backend.run(smooth_infonce_with_metrics, window=window, **_good())


IGNORED = [  # (id, mutation): out-of-range values only where t >= T - k
    ("per_k-k1-last", _idx_at(1, 0, T - 1, B * T)),
    ("per_k-kK-first-ignored", _idx_at(K, 1, T - K, -3)),
    ("per_k-all-ignored", lambda kw: _poison_all_ignored(kw["neg_idx"])),
    ("shared-last", _idx_at(1, 1, T - 1, 10**6, shared=True)),
]


def _poison_all_ignored(idx):
    idx = idx.clone()
    for k in range(1, K + 1):
        idx[k - 1, :, T - k :] = -(10**9)
    return idx


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("requires_grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("make_idx", [c[1] for c in IGNORED], ids=[c[0] for c in IGNORED])
def test_out_of_range_at_ignored_position_does_not_raise(backend, make_idx, requires_grad, reduction):
    kw = _good()
    kw["neg_idx"] = make_idx(kw)
    if requires_grad:
        kw["context"].requires_grad_()
    out = backend.run(smooth_infonce, reduction=reduction, **kw)
    expected = naive_smooth_infonce(reduction=reduction, **kw)  # never reads the ignored entries
    torch.testing.assert_close(out, expected)
    if requires_grad:
        g = torch.autograd.grad(out.sum(), kw["context"])[0]
        torch.testing.assert_close(g, torch.autograd.grad(expected.sum(), kw["context"])[0])


def _spec(common, T):
    return LossSpec(anchor_window="common" if common else "per_step", t_begin=0, t_end=T)


@pytest.mark.parametrize("common", [False, True], ids=["per_step", "common"])
def test_index_error_is_one_message_and_one_sync(monkeypatch, common):
    """The Python index check (backends whose kernels skip it) reads all K steps with one any() and raises
    the kernels' message (csrc/checks.h), word for word, naming the first bad entry."""
    import sim_kernels.functional as F

    kw = _good()
    kw["neg_idx"] = _idx_at(K, 1, T - K - 1, B * T)(kw)
    calls = []
    real_any = torch.Tensor.any

    def counting_any(self, *a, **k):
        calls.append(self.shape)
        return real_any(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "any", counting_any)
    with pytest.raises(ValueError) as py_err:
        F._check_index_values(kw["neg_idx"], B * T, _spec(common, T))
    assert len(calls) == 1 and calls[0] == (1, K, B, T, N)  # (vmapped elements, K, B, T, N): one any()
    monkeypatch.setattr(torch.Tensor, "any", real_any)
    good = _good()["neg_idx"]
    F._check_index_values(good, B * T, _spec(common, T))  # no error on good indices
    msg = str(py_err.value)
    assert msg == (f"neg_idx: every used value (anchors t_begin <= t < t_end - d_k) must lie in [0, B*T) = "
                   f"[0, {B * T}) or be -1 (no negative), found {B * T} at neg_idx[{K - 1}, 1, {T - K - 1}, 0]")
    from sim_kernels import _ext
    if _ext.has_kernel("cpu"):
        op = torch.ops.sim_kernels.smooth_infonce_fwd
        with pytest.raises(ValueError) as cpp_err:
            op(kw["context"], kw["targets"], kw["weight"], kw["neg_idx"], None, None, 0, T, common)
        assert str(cpp_err.value).splitlines()[0] == msg


def test_loss_module_uses_the_functional_messages():
    """SmoothInfoNCELoss raises the functional's own errors for the options they share."""
    from sim_kernels import SmoothInfoNCELoss

    for bad, exc in ((dict(beta=True), TypeError), (dict(beta=-1.0), ValueError), (dict(reduction="avg"), ValueError),
                     (dict(kl_reduction="x"), ValueError), (dict(backend="gpu"), ValueError)):
        with pytest.raises(exc) as from_module:
            SmoothInfoNCELoss(Cc, Cz, K, N, **bad)
        with pytest.raises(exc) as from_functional:
            smooth_infonce(**{**_good(), **bad})
        assert str(from_module.value) == str(from_functional.value)
