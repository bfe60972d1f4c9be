"""The fused loss under torch.func transforms and forward-mode AD.

The ops' own autograd (sim_kernels/_oplib.py, torch.library.register_autograd) serves plain backward,
torch.compile and torch.export, but torch.library gives it no forward-mode formula and no
``setup_context``: forward AD would see no tangent (a silent 0) and torch.func's transforms refuse
it. So while a transform runs (``active``), functional.py calls the fused backends through the two
autograd.Functions here, which have every rule a transform asks for:

``FusedValue``: value = sum(loss_weight * loss) + sum(kl_weight * kl) (the scalar reductions).
    forward   one value-and-grad call of the backend; its gradients are saved.
    backward  d value / d x = the saved gradient times the incoming one.
    jvp       d value = sum over inputs <d value / d x, x_dot> (no second kernel call).
``FusedPerAnchor``: the per-anchor statistics (reduction="none").
    forward   one forward call of the backend.
    backward  one value-and-grad call with loss_weight = d out / d loss, kl_weight = d out / d kl
              (d/dx sum(g_loss * loss) + sum(g_kl * kl) is what that op computes).
    jvp       the tangents of the per-anchor losses need the softmax of every anchor: they are the
              reference's (sim_kernels/reference.py, through torch.func.jvp; unfused, the reference's
              memory); the KL's tangent is its closed form d kl = sum_c (mu mu_dot + (e^lv - 1) lv_dot / 2).
Both: ``vmap`` runs the op once per batch element (exact; as slow as a Python loop), and their
non-differentiable outputs (hits, the statistics beside the value) carry no tangent.

Second derivatives (a backward with create_graph=True, hessian, jacfwd(jacrev(f)), grad of grad,
jvp of grad, forward-over-reverse) would differentiate the saved gradients, which are constants: they
would come out silently wrong, so they raise an error naming backend="reference", whose plain autograd
has them: refuse_second_order at the call when two torch.func levels differentiate, and SecondOrderGuard
around every gradient a backward returns where a derivative of it could be taken.
Precision: the gradients are in the inputs' dtype, so for fp16/bf16 inputs the scalar jvp carries
their rounding (~1e-3 relative); fp32 and fp64 are exact to their own rounding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.autograd import forward_ad

from .spec import LossSpec

__all__ = ["active", "under_functorch", "plain_batches", "refuse_second_order", "Call", "FusedValue", "FusedPerAnchor",
           "WeightedGrads", "SecondOrderGuard", "per_anchor_loss_tangent", "SECOND_ORDER_MESSAGE"]

SECOND_ORDER_MESSAGE = (
    "smooth_infonce: second derivatives (backward with create_graph=True, torch.func.hessian, jacfwd(jacrev(f)), "
    "grad of grad, jvp of grad) do not exist for the fused kernels (backend='native' / 'triton'): their gradients "
    "are computed in the forward pass, so a derivative through them would be silently wrong. Use "
    "backend='reference' for these")
_DIFFERENTIATING = ("Grad", "Jvp")  # torch.func transform types that take a derivative (Vmap and Functionalize don't)


def _interpreters():
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    return retrieve_all_functorch_interpreters()


def _has_tangent(tensors) -> bool:
    return any(t is not None and forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def under_functorch() -> bool:
    """True inside a torch.func transform."""
    return torch._C._functorch.peek_interpreter_stack() is not None


def active(tensors) -> bool:
    """True while a torch.func transform (grad, vjp, jvp, jacrev, jacfwd, vmap, hessian) runs, or when
    one of ``tensors`` carries a forward-AD tangent (torch.autograd.forward_ad). While torch.compile or
    torch.export traces, only the latter: reverse mode there uses the ops' own autograd."""
    if torch.compiler.is_compiling():
        # torch.compile's own torch.func handling sees no interpreter here; a forward-AD tangent it does
        # trace (jvp or forward_ad inside a compiled function): the Function path then runs (a graph break).
        return _has_tangent(tensors)
    if under_functorch():
        return True
    return getattr(forward_ad, "_current_level", -1) >= 0 and _has_tangent(tensors)


def plain_batches(x: torch.Tensor) -> torch.Tensor:
    """``x`` without its torch.func wrappers, as a plain (M, *x.shape) tensor: every vmapped batch dimension
    moved to the front and flattened into M (M = 1 outside vmap). Lets a check read the values of a tensor
    that vmap hides behind a BatchedTensor (reading data there is an error)."""
    functorch = torch._C._functorch
    bdims = []
    while functorch.is_functorch_wrapped_tensor(x):
        if functorch.is_batchedtensor(x):
            bdims.append(functorch.maybe_get_bdim(x))
        x = functorch.get_unwrapped(x)
    # The innermost level's batch dim was inserted last: move the batch dims to the front, innermost first.
    for moved, bdim in enumerate(reversed(bdims)):
        x = x.movedim(moved + bdim, moved)
    return x.reshape(-1, *x.shape[len(bdims):])


def refuse_second_order() -> None:
    """Raises RuntimeError(SECOND_ORDER_MESSAGE) when more than one torch.func level takes a derivative
    through the call (hessian, jacfwd(jacrev(f)), grad of grad, jvp of grad). A plain backward with
    create_graph=True is refused by the Functions' backward itself."""
    levels = sum(i.key().name in _DIFFERENTIATING for i in _interpreters())
    if levels > 1:
        raise RuntimeError(SECOND_ORDER_MESSAGE)


class SecondOrderGuard(torch.autograd.Function):
    """guard(grad, x) = grad, for a gradient the fused backward returned: any derivative of it (a backward
    through it, or a tangent of it) would be a second derivative of the loss, which the fused kernels do
    not have, so it raises SECOND_ORDER_MESSAGE. ``x``, the input the gradient belongs to, is an argument
    only so that a derivative w.r.t. x passes through here instead of silently missing."""
    generate_vmap_rule = True

    @staticmethod
    def forward(grad, x):
        return grad.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, _grad):
        raise RuntimeError(SECOND_ORDER_MESSAGE)

    @staticmethod
    def jvp(ctx, *_tangents):
        raise RuntimeError(SECOND_ORDER_MESSAGE)


def _guarded(grads, inputs):
    """The gradients a backward returns, each behind a SecondOrderGuard when a derivative of them could be
    taken: grad mode on in the backward (create_graph=True, or any torch.func grad/vjp, which always build a
    graph) or a forward-AD level open (forward-over-reverse)."""
    if not (torch.is_grad_enabled() or getattr(forward_ad, "_current_level", -1) >= 0):
        return list(grads)
    return [SecondOrderGuard.apply(g, x) if g is not None else None for g, x in zip(grads, inputs)]


@dataclass(frozen=True)
class Call:
    """What stays fixed in one loss call: the backend's entry points, the anchor window and the index check.

    fwd, value_and_grad: the backend's (sim_kernels/registry.py), on the (K, B, T, N) neg_idx.
    spec: the call's LossSpec (sim_kernels/spec.py), its anchor window resolved.
    """
    fwd: Callable
    value_and_grad: Callable
    spec: LossSpec


_GRAD_INPUTS = 5  # context, targets, weight, mu, logvar: the differentiable inputs, first in every forward


def _empty_like_none(x, like):
    return x if x is not None else like.new_empty((0,))


def _value_and_grads(call, context, targets, weight, neg_idx, mu, logvar, loss_weight, kl_weight):
    """One fused value-and-grad call: (value, loss, correct, kl, grads of value w.r.t. the five inputs, None
    for an absent mu/logvar). The backend's autograd hands back the gradients its kernel computed."""
    with torch.enable_grad():
        leaves = [x.detach().requires_grad_() if x is not None else None for x in (context, targets, weight, mu, logvar)]
        value, loss, correct, kl = call.value_and_grad(leaves[0], leaves[1], leaves[2], neg_idx, leaves[3], leaves[4],
                                                       loss_weight, kl_weight, call.spec)
        used = [x for x in leaves if x is not None]
        grads = iter(torch.autograd.grad(value, used, allow_unused=True))
    grads = [next(grads) if x is not None else None for x in leaves]
    grads = [torch.zeros_like(x) if g is None and x is not None else g for x, g in zip(leaves, grads)]
    return value.detach(), loss.detach(), correct, (kl.detach() if kl is not None else None), grads


def _vmap_loop(fn, info, in_dims, args):
    """Runs ``fn(*args)`` once per element of the vmapped batch and stacks the outputs on dim 0."""
    size = info.batch_size
    outs = []
    for i in range(size):
        outs.append(fn(*[a.select(d, i) if d is not None else a for a, d in zip(args, in_dims)]))
    stacked = tuple(torch.stack([o[j] for o in outs]) for j in range(len(outs[0])))
    return stacked, (0,) * len(stacked)


def per_anchor_loss_tangent(context, targets, weight, neg_idx, c_dot, z_dot, w_dot, spec):
    """The forward-mode derivative of the per-anchor losses (K, B, T) along the tangents (None = 0).

    For anchor (b, t) at step k with prediction p = W_k c_t (p = c_t without a weight), scores s_j = z_{rho_j} . p
    over its rows rho_0 = the positive t + first_step + k - 1, rho_1..N the negatives, and loss = logsumexp(s) - s_0:
        d p    = (d W_k) c_t + W_k (d c_t)   (d c_t without a weight)
        d s_j  = (d z_{rho_j}) . p + z_{rho_j} . d p
        d loss = sum_j softmax(s)_j d s_j - d s_0
    In the accumulation dtype, in plain PyTorch (the reference's layout and memory), 0 off the anchors.
    """
    B, T, _ = context.shape
    K = weight.shape[0] if weight is not None else neg_idx.shape[0]
    t0, t1, first_step = spec.t_begin, spec.t_end, spec.first_step
    acc = torch.float64 if context.dtype == torch.float64 else torch.float32
    c, z = context.to(acc), targets.to(acc)
    w = weight.to(acc) if weight is not None else None
    dc, dz, dw = (t.to(acc) if t is not None else None for t in (c_dot, z_dot, w_dot))
    z_flat = z.reshape(-1, z.shape[-1])  # (B'*T, Cz): extra utterances after the anchors' own B
    dz_flat = dz.reshape(-1, dz.shape[-1]) if dz is not None else None
    out = []
    for k in range(1, K + 1):
        d = first_step + k - 1  # the positive of step k is frame t + d
        lo, hi = t0, t1 - spec.shift(k, K)
        pred = c[:, lo:hi] if w is None else torch.einsum("btc,zc->btz", c[:, lo:hi], w[k - 1])
        d_pred = torch.zeros_like(pred)
        if dw is not None:
            d_pred = d_pred + torch.einsum("btc,zc->btz", c[:, lo:hi], dw[k - 1])
        if dc is not None:
            d_pred = d_pred + (dc[:, lo:hi] if w is None else torch.einsum("btc,zc->btz", dc[:, lo:hi], w[k - 1]))
        idx = neg_idx[k - 1, :, lo:hi]
        kept = idx.clamp(min=0)  # -1 = no negative: score -inf (softmax weight 0), tangent 0
        rows = torch.cat([z[:B, lo + d:hi + d].unsqueeze(2), z_flat[kept]], dim=2)  # (B, n, 1+N, Cz)
        excluded = torch.cat([torch.zeros_like(idx[..., :1], dtype=torch.bool), idx < 0], dim=-1)
        scores = torch.einsum("btnz,btz->btn", rows, pred).masked_fill(excluded, float("-inf"))
        d_scores = torch.einsum("btnz,btz->btn", rows, d_pred)
        if dz is not None:
            d_rows = torch.cat([dz[:B, lo + d:hi + d].unsqueeze(2), dz_flat[kept]], dim=2)
            d_scores = d_scores + torch.einsum("btnz,btz->btn", d_rows, pred)
        d_scores = d_scores.masked_fill(excluded, 0.0)
        d_loss = (torch.softmax(scores, dim=-1) * d_scores).sum(-1) - d_scores[..., 0]
        out.append(torch.nn.functional.pad(d_loss, (lo, T - hi)))  # out of place: vmap (jacfwd) batches it
    return torch.stack(out)


class FusedValue(torch.autograd.Function):
    """value (), loss (K, B, T), correct (K, B, T), kl (B, T) or (0,), by one value-and-grad call."""

    @staticmethod
    def forward(context, targets, weight, mu, logvar, neg_idx, loss_weight, kl_weight, call):
        value, loss, correct, kl, grads = _value_and_grads(call, context, targets, weight, neg_idx, mu, logvar,
                                                           loss_weight, kl_weight)
        return (value, loss, correct, _empty_like_none(kl, loss),
                *[_empty_like_none(g, loss) for g in grads])

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:_GRAD_INPUTS])  # only for the guard: what each gradient belongs to
        ctx.grads = output[4:]  # kept as attributes: they are outputs, which save_for_backward would keep twice
        ctx.value_dtype = output[0].dtype
        ctx.mark_non_differentiable(*output[1:])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g_value, *_unused):
        if g_value is None:
            return (None,) * 9
        grads = [g * g_value.to(g.dtype) if g.numel() else None for g in ctx.grads]
        return (*_guarded(grads, ctx.saved_tensors), None, None, None, None)

    @staticmethod
    def jvp(ctx, *tangents):
        acc = ctx.value_dtype
        value_dot = torch.zeros((), dtype=acc, device=ctx.grads[0].device)
        for g, t in zip(ctx.grads, tangents[:_GRAD_INPUTS]):
            if t is not None and g.numel():
                value_dot = value_dot + (g.to(acc) * t.to(acc)).sum()
        return (value_dot, *[None] * 8)

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_loop(FusedValue.apply, info, in_dims, args)


class FusedPerAnchor(torch.autograd.Function):
    """loss (K, B, T), correct (K, B, T), kl (B, T) or (0,), by one forward call."""

    @staticmethod
    def forward(context, targets, weight, mu, logvar, neg_idx, call):
        loss, correct, kl = call.fwd(context, targets, weight, neg_idx, mu, logvar, call.spec)
        return loss, correct, _empty_like_none(kl, loss)

    @staticmethod
    def setup_context(ctx, inputs, output):
        context, targets, weight, mu, logvar, neg_idx, call = inputs
        ctx.call = call
        ctx.has_kl = mu is not None
        ctx.save_for_backward(context, targets, weight, mu, logvar, neg_idx)
        ctx.save_for_forward(context, targets, weight, mu, logvar, neg_idx)
        ctx.mark_non_differentiable(*((output[1],) if mu is not None else output[1:]))
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g_loss, _g_correct, g_kl):
        context, targets, weight, mu, logvar, neg_idx = ctx.saved_tensors
        acc = torch.float64 if context.dtype == torch.float64 else torch.float32
        if g_loss is None:
            g_loss = torch.zeros((neg_idx.shape[0], *context.shape[:2]), dtype=acc, device=context.device)
        kl_used = ctx.has_kl and g_kl is not None and g_kl.numel() > 0
        grads = WeightedGrads.apply(context, targets, weight, mu if kl_used else None, logvar if kl_used else None,
                                    neg_idx, g_loss.to(acc), g_kl.to(acc) if kl_used else None, ctx.call)
        grads = [g if g.numel() else None for g in grads]
        return (*_guarded(grads, (context, targets, weight, mu, logvar)), None, None)

    @staticmethod
    def jvp(ctx, c_dot, z_dot, w_dot, mu_dot, lv_dot, _idx_dot, _call_dot):
        context, targets, weight, mu, logvar, neg_idx = ctx.saved_tensors
        call = ctx.call
        loss_dot = None
        if any(t is not None for t in (c_dot, z_dot, w_dot)):
            loss_dot = per_anchor_loss_tangent(context, targets, weight, neg_idx, c_dot, z_dot, w_dot, call.spec)
        else:
            acc = torch.float64 if context.dtype == torch.float64 else torch.float32
            loss_dot = torch.zeros((neg_idx.shape[0], *context.shape[:2]), dtype=acc, device=context.device)
        kl_dot = None
        if ctx.has_kl:  # a differentiable output: its tangent is a tensor (zeros without mu/logvar tangents)
            acc = torch.float64 if mu.dtype == torch.float64 else torch.float32
            kl_dot = torch.zeros(mu.shape[:2], dtype=acc, device=mu.device)
            if mu_dot is not None:
                kl_dot = kl_dot + (mu.to(acc) * mu_dot.to(acc)).sum(-1)
            if lv_dot is not None:
                kl_dot = kl_dot + (0.5 * (logvar.to(acc).exp() - 1.0) * lv_dot.to(acc)).sum(-1)
        return loss_dot, None, kl_dot

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_loop(FusedPerAnchor.apply, info, in_dims, args)


class WeightedGrads(torch.autograd.Function):
    """The gradients of sum(loss_weight * loss) + sum(kl_weight * kl) w.r.t. context, targets, weight, mu and
    logvar ((0,) for an absent mu/logvar): FusedPerAnchor's backward, as a Function so that torch.func can
    batch it (jacrev runs the backward under vmap) and refuse a derivative of it."""

    @staticmethod
    def forward(context, targets, weight, mu, logvar, neg_idx, loss_weight, kl_weight, call):
        *_, grads = _value_and_grads(call, context, targets, weight, neg_idx, mu, logvar, loss_weight.contiguous(),
                                     kl_weight.contiguous() if kl_weight is not None else None)
        return tuple(_empty_like_none(g, context) for g in grads)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(*output)

    @staticmethod
    def backward(ctx, *_grads):
        raise RuntimeError(SECOND_ORDER_MESSAGE)

    @staticmethod
    def jvp(ctx, *_tangents):
        raise RuntimeError(SECOND_ORDER_MESSAGE)

    @staticmethod
    def vmap(info, in_dims, *args):
        return _vmap_loop(WeightedGrads.apply, info, in_dims, args)
