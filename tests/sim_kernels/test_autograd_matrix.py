"""Every autograd feature a user can reach, on every backend: the reference's number, or an error that
names backend="reference".

Rows (FEATURES): backward, retain_graph, double backward (create_graph=True), forward AD
(torch.autograd.forward_ad), torch.func grad / vjp / jvp / jacrev / jacfwd / vmap / vmap of grad
(per-sample gradients) / hessian, activation checkpointing and torch.compile. Columns: the ``backend``
fixture (reference, native CPU, CUDA, Triton in its interpreter). Second derivatives are refused by the
fused backends (their gradients come out of the forward pass; sim_kernels/_transforms.py); every other
cell must match the reference. A feature that came out as a silent 0 (forward AD before it had a rule)
fails here: the reference's derivatives of these inputs are all non-zero.
"""
from __future__ import annotations

import pytest
import torch
from torch.autograd import forward_ad
from torch.utils.checkpoint import checkpoint

from sim_kernels import smooth_infonce

from .inputs import make_inputs

SHAPE = (2, 7, 3, 4, 2, 3)  # B, T, Cc, Cz, K, N
REFUSAL = "backend='reference'"


def _inputs():
    """float64 context, targets, weight, mu, logvar (plain tensors) and the (K, B, T, N) neg_idx."""
    x = make_inputs(*SHAPE, dtype=torch.float64, requires_grad=False)
    return [t.detach().clone() for t in (x.context, x.targets, x.weight, x.mu, x.logvar)], x.neg_idx


def _loss(backend, neg_idx, reduction="mean"):
    """f(context, targets, weight, mu, logvar) -> the loss on ``backend`` (beta > 0: the KL is in every derivative)."""
    def f(c, z, w, mu, lv):
        return backend.run(smooth_infonce, c, z, w, neg_idx, mu, lv, beta=0.5, reduction=reduction)
    return f


def _tangents(leaves):
    g = torch.Generator().manual_seed(7)
    return [torch.randn(x.shape, generator=g, dtype=x.dtype) for x in leaves]


# ---- the features: each returns the numbers a user would read off ------------------------------------

def backward(f, leaves):
    leaves = [x.clone().requires_grad_() for x in leaves]
    f(*leaves).backward()
    return [x.grad for x in leaves]


def retain_graph(f, leaves):
    leaves = [x.clone().requires_grad_() for x in leaves]
    loss = f(*leaves)
    loss.backward(retain_graph=True)
    loss.backward()
    return [x.grad for x in leaves]


def double_backward(f, leaves):
    leaves = [x.clone().requires_grad_() for x in leaves]
    grads = torch.autograd.grad(f(*leaves), leaves, create_graph=True)
    return torch.autograd.grad(sum((g * g).sum() for g in grads), leaves)


def forward_mode(f, leaves):
    tangents = _tangents(leaves)
    with forward_ad.dual_level():
        out = f(*[forward_ad.make_dual(x, t) for x, t in zip(leaves, tangents)])
        return forward_ad.unpack_dual(out).tangent


def forward_mode_per_anchor(f_none, leaves):
    return forward_mode(f_none, leaves)


def func_grad(f, leaves):
    return torch.func.grad(f, argnums=(0, 1, 2, 3, 4))(*leaves)


def func_vjp(f, leaves):
    out, pullback = torch.func.vjp(f, *leaves)
    return out, pullback(torch.tensor(1.5, dtype=out.dtype))


def func_jvp(f, leaves):
    return torch.func.jvp(f, tuple(leaves), tuple(_tangents(leaves)))


def func_jacrev(f_none, leaves):
    return torch.func.jacrev(f_none, argnums=(0, 1, 2))(*leaves)


def func_jacfwd(f_none, leaves):
    return torch.func.jacfwd(f_none, argnums=(0, 1, 2))(*leaves)


def func_vmap(f, leaves):
    weights = torch.stack([leaves[2], 0.5 * leaves[2], -leaves[2]])
    return torch.func.vmap(lambda w: f(leaves[0], leaves[1], w, leaves[3], leaves[4]))(weights)


def per_sample_grad(f, leaves):
    """torch.func's per-sample gradients: vmap over a stack of contexts of grad w.r.t. the weight."""
    contexts = torch.stack([leaves[0], 2 * leaves[0]])
    g = torch.func.grad(lambda w, c: f(c, leaves[1], w, leaves[3], leaves[4]))
    return torch.func.vmap(g, in_dims=(None, 0))(leaves[2], contexts)


def func_hessian(f, leaves):
    return torch.func.hessian(lambda w: f(leaves[0], leaves[1], w, leaves[3], leaves[4]))(leaves[2])


def checkpointed(f, leaves):
    leaves = [x.clone().requires_grad_() for x in leaves]
    checkpoint(f, *leaves, use_reentrant=False).backward()
    return [x.grad for x in leaves]


def compiled(f, leaves):
    torch._dynamo.reset()
    return backward(torch.compile(f, fullgraph=False), leaves)


def compiled_jvp(f, leaves):
    """Forward mode inside torch.compile: the tangent must not be dropped (the compiled plain path has no jvp)."""
    torch._dynamo.reset()
    tangents = _tangents(leaves)
    return torch.compile(lambda *a: torch.func.jvp(f, tuple(a[:5]), tuple(a[5:]))[1])(*leaves, *tangents)


def grad_of_create_graph(f, leaves):
    """torch.func.grad over a plain create_graph=True backward: a Hessian-vector product."""
    v = _tangents(leaves)[2]

    def outer(w):
        g, = torch.autograd.grad(f(leaves[0], leaves[1], w, leaves[3], leaves[4]).sum(), w, create_graph=True)
        return (g * v).sum()

    return torch.func.grad(outer)(leaves[2])


def forward_over_reverse(f, leaves):
    """The tangent of a gradient (torch.autograd.forward_ad around a backward): a Hessian-vector product."""
    w, v = leaves[2].clone().requires_grad_(), _tangents(leaves)[2]
    with forward_ad.dual_level():
        g, = torch.autograd.grad(f(leaves[0], leaves[1], forward_ad.make_dual(w, v), leaves[3], leaves[4]), w)
        return forward_ad.unpack_dual(g).tangent


def vmap_then_double_backward(f, leaves):
    """A (non-differentiating) vmap, then a plain double backward through its result."""
    w, v = leaves[2].clone().requires_grad_(), _tangents(leaves)[2]
    contexts = torch.stack([leaves[0], 2 * leaves[0]])
    out = torch.func.vmap(lambda c: f(c, leaves[1], w, leaves[3], leaves[4]))(contexts).sum()
    g, = torch.autograd.grad(out, w, create_graph=True)
    return torch.autograd.grad((g * v).sum(), w)


# (feature, takes the per-anchor losses, a second derivative)
FEATURES = [
    (backward, False, False),
    (retain_graph, False, False),
    (double_backward, False, True),
    (forward_mode, False, False),
    (forward_mode_per_anchor, True, False),
    (func_grad, False, False),
    (func_vjp, False, False),
    (func_jvp, False, False),
    (func_jacrev, True, False),
    (func_jacfwd, True, False),
    (func_vmap, False, False),
    (per_sample_grad, False, False),
    (func_hessian, False, True),
    (checkpointed, False, False),
    (compiled, False, False),
    (compiled_jvp, False, False),
    (grad_of_create_graph, False, True),
    (forward_over_reverse, False, True),
    (vmap_then_double_backward, False, True),
    (grad_of_create_graph, True, True),
]


def _flat(x):
    if isinstance(x, torch.Tensor):
        return [x]
    return [t for item in x for t in _flat(item)]


@pytest.mark.parametrize("feature,per_anchor,second_order", FEATURES,
                         ids=[f.__name__ + ("_per_anchor" if p else "") for f, p, _ in FEATURES])
def test_feature_gives_the_reference_number_or_names_the_reference(backend, feature, per_anchor, second_order):
    leaves, neg_idx = _inputs()
    reduction = "none" if per_anchor else "mean"
    expected = _flat(feature(_reference(neg_idx, reduction), leaves))
    assert all(e.abs().sum() > 0 for e in expected), "the reference's derivatives of these inputs are non-zero"
    if second_order and backend.id != "reference":
        with pytest.raises(RuntimeError, match=REFUSAL):
            feature(_loss(backend, neg_idx, reduction), leaves)
        return
    got = _flat(feature(_loss(backend, neg_idx, reduction), leaves))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


def _reference(neg_idx, reduction):
    def f(c, z, w, mu, lv):
        return smooth_infonce(c, z, w, neg_idx, mu, lv, beta=0.5, reduction=reduction, backend="reference")
    return f


def test_metrics_under_a_transform_are_the_plain_ones(backend):
    """smooth_infonce_with_metrics inside torch.func.grad: the metrics equal the ones of a plain call."""
    from sim_kernels import smooth_infonce_with_metrics

    leaves, neg_idx = _inputs()
    _, plain = backend.run(smooth_infonce_with_metrics, *leaves[:3], neg_idx, *leaves[3:], beta=0.5)

    def f(w):
        return backend.run(smooth_infonce_with_metrics, leaves[0], leaves[1], w, neg_idx, *leaves[3:], beta=0.5)

    _, seen = torch.func.grad(f, has_aux=True)(leaves[2])
    assert seen.keys() == plain.keys()
    for k in plain:
        torch.testing.assert_close(seen[k], plain[k])


def test_vmapped_out_of_range_index_is_still_refused(backend):
    """A vmapped neg_idx is checked per element (the Python check reads data, which vmap forbids)."""
    leaves, neg_idx = _inputs()
    bad = torch.stack([neg_idx, neg_idx.clone().fill_(10_000)])
    with pytest.raises((ValueError, RuntimeError), match="neg_idx"):
        torch.func.vmap(lambda i: backend.run(smooth_infonce, *leaves[:3], i, *leaves[3:], beta=0.5))(bad)


def test_plain_calls_keep_the_ops_own_autograd(backend):
    """Outside transforms the fused backends keep their registered autograd (one fused pass, no Python
    Function around it); only the reference is plain PyTorch."""
    leaves, neg_idx = _inputs()
    leaves = [x.requires_grad_() for x in leaves]
    loss = backend.run(smooth_infonce, *leaves[:3], neg_idx, *leaves[3:], beta=0.5)
    names = []
    stack = [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is not None:
            names.append(type(fn).__name__)
            stack.extend(f for f, _ in fn.next_functions)
    assert not any("Fused" in n for n in names), names
    if backend.id != "reference":
        assert any("smooth_infonce_value_and_grad" in n for n in names), names
