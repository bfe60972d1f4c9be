"""SmoothInfoNCELoss / InfoNCELoss: parameters, forward against smooth_infonce and the naive
oracle, metrics, seeded sampling, GIM's subsample window, constructor checks, backend choice."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from sim_kernels import _ext, backends, registry, sample_negatives
from sim_kernels.backends import native
from sim_kernels import InfoNCELoss, SmoothInfoNCELoss, smooth_infonce  # the public names of the issue

from .inputs import make_inputs, tol
from .naive import naive_metrics, naive_smooth_infonce



def _data(B, T, Cc, Cz, seed=0, dtype=torch.float32):
    """context, targets, mu, logvar of tests/sim_kernels/inputs.py's make_inputs (the module owns the weight
    and draws or takes its own neg_idx)."""
    c, z, _, _, mu, lv = make_inputs(B, T, Cc, Cz, 1, 1, dtype=dtype, seed=seed, requires_grad=False)
    return c, z, mu, lv


def _cpu_module(backend):
    """The module tests build CPU tensors and a CPU parameter: the cuda backend skips here (its functional
    path runs in test_reference.py, test_sampling.py and test_validation.py, its ops in test_cuda.py)."""
    if backend.device.type != "cpu":
        pytest.skip(f"module tests use CPU tensors; backend {backend.id} runs on {backend.device}")
    return backend


def test_public_imports():
    import sim_kernels

    assert sim_kernels.SmoothInfoNCELoss is SmoothInfoNCELoss and sim_kernels.InfoNCELoss is InfoNCELoss
    assert callable(smooth_infonce) and issubclass(InfoNCELoss, nn.Module)


def test_parameter_shape_and_init_bound():
    loss = SmoothInfoNCELoss(16, 8, prediction_steps=12, negative_samples=3)
    assert isinstance(loss.weight, nn.Parameter) and loss.weight.shape == (12, 8, 16)
    assert [name for name, _ in loss.named_parameters()] == ["weight"]
    bound = 1.0 / math.sqrt(16)
    w = loss.weight.detach()
    assert float(w.abs().max()) <= bound
    assert float(w.abs().max()) > 0.9 * bound  # uniform over the whole range (1536 draws)
    assert abs(float(w.mean())) < 0.1 * bound
    before = w.clone()
    loss.reset_parameters()
    assert not torch.equal(before, loss.weight.detach())
    assert SmoothInfoNCELoss(6).weight.shape == (10, 6, 6)  # defaults: target_dim = context_dim, K = 10
    assert InfoNCELoss(5, 3, prediction_steps=2).weight.shape == (2, 3, 5)
    assert InfoNCELoss(5).beta == 0.0


def test_weight_is_gims_predictor_reshaped():
    """weight.view(K*Cz, Cc) is GIM's nn.Linear(Cc, K*Cz, bias=False) weight: their W_k c is
    the k-th block of Cz outputs of that Linear."""
    K, Cz, Cc = 3, 4, 5
    lin = nn.Linear(Cc, K * Cz, bias=False)
    loss = SmoothInfoNCELoss(Cc, Cz, prediction_steps=K)
    with torch.no_grad():
        loss.weight.copy_(lin.weight.view(K, Cz, Cc))
    c = torch.randn(7, Cc)
    for k in range(1, K + 1):
        torch.testing.assert_close(c @ loss.weight[k - 1].T, lin(c)[:, (k - 1) * Cz : k * Cz])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kl_reduction", ["dims", "time"])
def test_forward_equals_functional_and_naive(backend, reduction, kl_reduction):
    _cpu_module(backend)
    B, T, Cc, Cz, K, N = 2, 9, 5, 3, 3, 4
    loss = SmoothInfoNCELoss(Cc, Cz, K, N, beta=0.05, kl_reduction=kl_reduction, reduction=reduction, backend=backend)
    c, z, mu, lv = _data(B, T, Cc, Cz)
    neg_idx = sample_negatives("gim", B, T, N, K, generator=torch.Generator().manual_seed(1))
    out = loss(c, z, mu, lv, neg_idx=neg_idx)
    expected = smooth_infonce(c, z, loss.weight, neg_idx, mu, lv, beta=0.05, kl_reduction=kl_reduction,
                              reduction=reduction, backend=backend)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    w64 = loss.weight.detach().double().requires_grad_()
    naive = naive_smooth_infonce(c, z, w64, neg_idx, mu, lv, beta=0.05, kl_reduction=kl_reduction, reduction=reduction)
    torch.testing.assert_close(out, naive.float(), **tol(torch.float32))
    # the parameter gets the gradient
    upstream = torch.randn_like(out) if reduction == "none" else torch.ones_like(out)
    (g,) = torch.autograd.grad(out, loss.weight, upstream)
    (g_naive,) = torch.autograd.grad(naive, w64, upstream.double())
    torch.testing.assert_close(g, g_naive.float(), **tol(torch.float32))


def test_mu_is_optional_and_infonce_has_no_kl(backend):
    _cpu_module(backend)
    B, T, Cc, Cz, K, N = 2, 6, 3, 3, 2, 2
    c, z, mu, lv = _data(B, T, Cc, Cz)
    neg_idx = sample_negatives("cpc", B, T, N, K, generator=torch.Generator().manual_seed(2))
    smooth = SmoothInfoNCELoss(Cc, Cz, K, N, beta=0.3, backend=backend)
    plain = InfoNCELoss(Cc, Cz, K, N, backend=backend)
    with torch.no_grad():
        plain.weight.copy_(smooth.weight)
    no_kl = smooth(c, z, neg_idx=neg_idx)
    torch.testing.assert_close(plain(c, z, neg_idx=neg_idx), no_kl, rtol=0, atol=0)
    torch.testing.assert_close(no_kl, smooth_infonce(c, z, smooth.weight, neg_idx, backend=backend), rtol=0, atol=0)
    with_kl = smooth(c, z, mu, lv, neg_idx=neg_idx)
    kl = naive_metrics(c, z, smooth.weight.detach(), neg_idx, mu, lv)["kl"]
    torch.testing.assert_close(with_kl - no_kl, (0.3 * kl).float(), **tol(torch.float32))


def test_return_metrics(backend):
    _cpu_module(backend)
    B, T, Cc, Cz, K, N = 3, 8, 4, 4, 3, 5
    loss = SmoothInfoNCELoss(Cc, Cz, K, N, beta=0.02, kl_reduction="time", backend=backend)
    c, z, mu, lv = _data(B, T, Cc, Cz, seed=3)
    # targets correlated with the context so that some positives win: accuracy strictly in (0, 1)
    z = z + 2.0 * torch.roll(c[..., :Cz], shifts=1, dims=1)
    neg_idx = sample_negatives("within_sequence", B, T, N, K, generator=torch.Generator().manual_seed(4))
    out, m = loss(c, z, mu, lv, neg_idx=neg_idx, return_metrics=True)
    torch.testing.assert_close(out, loss(c, z, mu, lv, neg_idx=neg_idx), rtol=0, atol=0)
    assert set(m) == {"nce", "accuracy", "kl"}
    assert m["nce"].shape == (K,) and m["accuracy"].shape == (K,) and m["kl"].shape == ()
    assert all(not v.requires_grad for v in m.values())
    assert ((m["accuracy"] >= 0) & (m["accuracy"] <= 1)).all()
    expected = naive_metrics(c, z, loss.weight.detach(), neg_idx, mu, lv, kl_reduction="time")
    for key in ("nce", "accuracy", "kl"):
        torch.testing.assert_close(m[key].double(), expected[key], **tol(torch.float32),
                                   msg=lambda msg, k=key: f"metric {k}: {msg}")
    torch.testing.assert_close(out.double(), expected["nce"].mean() + 0.02 * expected["kl"], **tol(torch.float32))
    _, m0 = loss(c, z, neg_idx=neg_idx, return_metrics=True)  # no mu: kl metric is 0
    torch.testing.assert_close(m0["kl"], torch.zeros((), dtype=m0["kl"].dtype))


@pytest.mark.parametrize("sampler", ["gim", "within_sequence", "cpc"])
def test_seeded_generator_reproduces_loss(sampler):
    B, T, Cc, Cz, K, N = 2, 10, 3, 3, 3, 4
    loss = SmoothInfoNCELoss(Cc, Cz, K, N, sampler=sampler, subsample_window=6)
    c, z, mu, lv = _data(B, T, Cc, Cz)
    a = loss(c, z, mu, lv, generator=torch.Generator().manual_seed(9))
    b = loss(c, z, mu, lv, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    others = [loss(c, z, mu, lv, generator=torch.Generator().manual_seed(s)) for s in (10, 11, 12)]
    assert any(not torch.equal(a, o) for o in others)
    # the whole draw (window start, then negatives) comes from the generator, in that order
    g = torch.Generator().manual_seed(9)
    start = int(torch.randint(0, T - 6, (), generator=g))
    neg_idx = sample_negatives(sampler, B, T, N, K, generator=g, window=(start, start + 6))
    expected = naive_smooth_infonce(c, z, loss.weight.detach(), neg_idx, mu, lv, beta=loss.beta,
                                    t_begin=start, t_end=start + 6)
    torch.testing.assert_close(a, expected.float(), **tol(torch.float32))


def test_subsample_window_crops_and_keeps_negatives_from_whole_sequence(backend):
    _cpu_module(backend)
    B, T, Cc, Cz, K, N, W = 2, 20, 3, 3, 3, 6, 8
    loss = InfoNCELoss(Cc, Cz, K, N, subsample_window=W, backend=backend)
    c, z, _, _ = _data(B, T, Cc, Cz, seed=5)
    starts = {loss.window(T, torch.Generator().manual_seed(s))[0] for s in range(60)}
    assert starts <= set(range(T - W)) and len(starts) > 5  # start uniform in [0, T - W), as in GIM
    assert loss.window(W, torch.Generator()) is None  # T <= window: no crop

    seed = 13
    start, end = loss.window(T, torch.Generator().manual_seed(seed))
    out = loss(c, z, generator=torch.Generator().manual_seed(seed))
    # predictor on the crop: context outside [start, end) does not matter
    c2 = c.clone()
    c2[:, :start] += 5.0
    c2[:, end:] -= 5.0
    torch.testing.assert_close(loss(c2, z, generator=torch.Generator().manual_seed(seed)), out, rtol=0, atol=0)
    # negatives from the whole sequence: targets outside the crop (never a positive) still matter
    z2 = z.clone()
    z2[:, :start] += 3.0
    z2[:, end:] += 3.0
    assert not torch.equal(loss(c, z2, generator=torch.Generator().manual_seed(seed)), out)
    # and the value is the naive loss over the window with negatives indexing all B*T rows
    g = torch.Generator().manual_seed(seed)
    torch.randint(0, T - W, (), generator=g)  # the window start, drawn first
    neg_idx = sample_negatives("gim", B, T, N, K, generator=g, window=(start, end))
    assert bool(((neg_idx[0] % T < start) | (neg_idx[0] % T >= end)).any())
    expected = naive_smooth_infonce(c, z, loss.weight.detach(), neg_idx, t_begin=start, t_end=end)
    torch.testing.assert_close(out, expected.float(), **tol(torch.float32))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(context_dim=0), "context_dim"),
        (dict(context_dim=4, target_dim=-1), "target_dim"),
        (dict(context_dim=2.5), "context_dim"),
        (dict(context_dim=4, prediction_steps=0), "prediction_steps"),
        (dict(context_dim=4, negative_samples=True), "negative_samples"),
        (dict(context_dim=4, sampler="random"), "sampler"),
        (dict(context_dim=4, kl_reduction="batch"), "kl_reduction"),
        (dict(context_dim=4, reduction="avg"), "^reduction"),
        (dict(context_dim=4, backend="gpu"), "backend"),
        (dict(context_dim=4, prediction_steps=5, subsample_window=5), "subsample_window"),
        (dict(context_dim=4, subsample_window=12.0), "subsample_window"),
        (dict(context_dim=4, beta=-0.01), "beta"),
        (dict(context_dim=4, beta=float("nan")), "beta"),
        (dict(context_dim=4, beta="0.01"), "beta"),
    ],
    ids=["Cc0", "Cz-neg", "Cc-float", "K0", "N-bool", "sampler", "kl_reduction", "reduction", "backend",
         "window<=K", "window-float", "beta-neg", "beta-nan", "beta-str"],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SmoothInfoNCELoss(**kwargs)


def test_forward_errors():
    loss = InfoNCELoss(3, 3, prediction_steps=4, negative_samples=2)
    with pytest.raises(ValueError, match="context"):
        loss(torch.randn(5, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="K"):  # K = 4 >= T = 4
        loss(torch.randn(2, 4, 3), torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match="targets"):
        loss(torch.randn(2, 8, 3), torch.randn(2, 7, 3))


def test_auto_picks_native_on_cpu_float32_without_warning():
    if not _ext.has_kernel("cpu"):
        pytest.fail(f"the native CPU kernel is missing (sim_kernels._C: {_ext.LOAD_ERROR})")
    B, T, Cc, Cz, K, N = 2, 7, 3, 3, 2, 3
    c, z, mu, lv = _data(B, T, Cc, Cz)
    assert backends.choose("auto", c).name == "native"
    loss = SmoothInfoNCELoss(Cc, Cz, K, N)  # backend="auto"
    native = SmoothInfoNCELoss(Cc, Cz, K, N, backend="native")
    with torch.no_grad():
        native.weight.copy_(loss.weight)
    neg_idx = sample_negatives("gim", B, T, N, K, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = loss(c, z, mu, lv, neg_idx=neg_idx)
        out_grad = loss(c.requires_grad_(), z, mu, lv, neg_idx=neg_idx)
    torch.testing.assert_close(out, native(c, z, mu, lv, neg_idx=neg_idx), rtol=0, atol=0)
    torch.testing.assert_close(out_grad.detach(), out, rtol=0, atol=0)


def test_auto_falls_back_to_reference_with_one_warning(monkeypatch):
    monkeypatch.setattr(registry, "_warned", set())
    # Every float dtype has a CPU kernel now (issue 17): pretend float16 has none to reach the fallback.
    monkeypatch.setattr(native, "DTYPES", {**native.DTYPES, "cpu": (torch.float32, torch.float64)})
    B, T, Cc, Cz, K, N = 2, 7, 3, 3, 2, 3
    c, z, _, _ = _data(B, T, Cc, Cz, dtype=torch.float16)
    neg_idx = sample_negatives("gim", B, T, N, K, generator=torch.Generator().manual_seed(0))
    loss = InfoNCELoss(Cc, Cz, K, N)
    with pytest.warns(RuntimeWarning, match="reference"):
        out = loss(c, z, neg_idx=neg_idx)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only once
        loss(c, z, neg_idx=neg_idx)
    assert out.dtype == torch.float32
    ref = smooth_infonce(c, z, loss.weight.to(torch.float16), neg_idx, backend="reference")
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
