"""Fake (meta) kernels, autograd and autocast for an op namespace with the schemas of csrc/ops.cpp.

One helper for both op families: ``register_ops("sim_kernels", fake=True)`` for the C++/CUDA ops
(sim_kernels/ops.py) and ``register_ops("sim_kernels_triton", fake=False)`` for the Triton ops
(sim_kernels/triton/ops.py; triton_op traces its own body for the fake).

Autograd:
- smooth_infonce_value_and_grad returns value = sum(loss_weight * loss) + sum(kl_weight * kl)
  together with its gradients, computed in the forward pass. Its backward only scales them by the
  incoming grad: d value / d loss_weight = loss and d value / d kl_weight = kl are exact too.
  Every other output (loss, correct, kl and the gradients) is a non-differentiable by-product.
- smooth_infonce_fwd (per-anchor losses, used for reduction="none" and under no_grad) recomputes
  in its backward: it calls smooth_infonce_value_and_grad with loss_weight = the incoming gradient.
  d/dx [sum(g_loss * loss) + sum(g_kl * kl)] is exactly what the value-and-grad op computes.
Double backward is not supported: a backward run with create_graph=True raises (the gradients are
precomputed constants, so a second derivative through them would silently be 0).
"""
from __future__ import annotations

import torch

from . import _autocast

__all__ = ["register_ops", "OP_NAMES", "KL_WEIGHT_MESSAGE"]

OP_NAMES = ("smooth_infonce_fwd", "smooth_infonce_value_and_grad")
# The one message every kernel (C++ CPU, CUDA driver, Triton) gives for a mu/kl_weight mismatch.
KL_WEIGHT_MESSAGE = "kl_weight must be given exactly when mu and logvar are"
DOUBLE_BACKWARD_MESSAGE = (
    "smooth_infonce: the fused kernels (backend='native' / 'triton') have no second derivatives: their gradients "
    "are computed in the forward pass, so a derivative through them would be silently wrong. Backward with "
    "create_graph=True needs backend='reference' (so do torch.autograd.functional's jvp, hvp and hessian, which "
    "use it); first-order forward mode works through torch.func.jvp and torch.autograd.forward_ad")


def _refuse_double_backward():
    """create_graph=True runs a custom op's backward with grad mode on; plain backward runs it with grad mode off."""
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        raise RuntimeError(DOUBLE_BACKWARD_MESSAGE)


def _acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_fake(context, targets, weight, neg_idx):
    torch._check(context.dim() == 3, lambda: "context must be (B, T, Cc)")
    torch._check(targets.dim() == 3, lambda: "targets must be (B, T, Cz)")
    torch._check(weight is None or weight.dim() == 3, lambda: "weight must be (K, Cz, Cc) or None")
    torch._check(neg_idx.dim() == 4, lambda: "neg_idx must be (K, B, T, N)")
    torch._check(neg_idx.dtype == torch.int64, lambda: "neg_idx must be int64")
    torch._check(targets.shape[1] == context.shape[1], lambda: "targets must match context in T")
    torch._check(targets.shape[0] >= context.shape[0], lambda: "targets must hold at least context's B utterances")


def _register_fakes(ns: str):
    @torch.library.register_fake(f"{ns}::smooth_infonce_fwd")
    def _fwd_fake(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window=False, first_step=1):
        # Sizes are read off the tensors (symbolic under torch.compile(dynamic=True)); t_begin and t_end are
        # SymInts that are never compared here, so a new T does not recompile.
        _check_fake(context, targets, weight, neg_idx)
        B, T, _ = context.shape
        K = neg_idx.shape[0]
        acc = _acc(context.dtype)
        loss = context.new_empty((K, B, T), dtype=acc)
        correct = context.new_empty((K, B, T), dtype=torch.bool)
        kl = context.new_empty((B, T) if mu is not None else (0,), dtype=acc)
        return loss, correct, kl

    @torch.library.register_fake(f"{ns}::smooth_infonce_value_and_grad")
    def _value_and_grad_fake(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, loss_weight, kl_weight,
                             common_window=False, first_step=1):
        torch._check((mu is not None) == (kl_weight is not None), lambda: KL_WEIGHT_MESSAGE)
        loss, correct, kl = _fwd_fake(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end)
        value = context.new_empty((), dtype=loss.dtype)
        g_mu = torch.empty_like(mu, memory_format=torch.contiguous_format) if mu is not None else context.new_empty((0,))
        g_lv = (torch.empty_like(logvar, memory_format=torch.contiguous_format) if logvar is not None
                else context.new_empty((0,)))
        return (value, loss, correct, kl,
                torch.empty_like(context, memory_format=torch.contiguous_format),
                torch.empty_like(targets, memory_format=torch.contiguous_format),
                torch.empty_like(weight, memory_format=torch.contiguous_format) if weight is not None
                else context.new_empty((0,)), g_mu, g_lv)


# ---- smooth_infonce_value_and_grad: gradients computed in the forward, scaled in the backward ----
def _value_and_grad_setup(ctx, inputs, output):
    value, loss, correct, kl, gc, gt, gw, gmu, glv = output
    ctx.has_kl = inputs[4] is not None
    ctx.has_weight = inputs[2] is not None
    ctx.save_for_backward(loss, kl, gc, gt, gw, gmu, glv)
    ctx.mark_non_differentiable(loss, correct, kl, gc, gt, gw, gmu, glv)
    # Only `value` carries a gradient: without this, autograd would hand the backward a zero-filled
    # gradient for each of the eight other outputs (14 MiB of memset per step at the paper's T = 64,
    # ~2.7 ms, 7 % of the step on this machine's profile).
    ctx.set_materialize_grads(False)


def _value_and_grad_backward(ctx, g_value, *_unused):
    _refuse_double_backward()
    loss, kl, gc, gt, gw, gmu, glv = ctx.saved_tensors
    if g_value is None:  # value itself unused (not materialised): no gradient flows
        return (None,) * 12
    if not ctx.has_weight:
        gw = None
    g = g_value
    # loss.backward() sends g = 1: the saved gradients are then returned as they are. Without
    # retain_graph autograd has released its saved copies by the time it accumulates, so
    # .grad takes these very tensors: no second copy of every input's size at the peak (the
    # paper shape: 133 -> 89 MB). With retain_graph autograd clones them, as for any shared
    # gradient. Reading g is free for a CPU tensor; on CUDA (it would sync) and while tracing
    # (torch.compile, AOT) the gradients are scaled out of place.
    if not torch.compiler.is_compiling() and type(gc) is torch.Tensor and g.device.type == "cpu" and g.item() == 1.0:
        return (gc, gt, gw, None, gmu if ctx.has_kl else None, glv if ctx.has_kl else None, None, None,
                loss, kl if ctx.has_kl else None, None, None)

    def scale(x):
        return x * g.to(x.dtype) if x is not None else None

    return (scale(gc), scale(gt), scale(gw), None,
            scale(gmu) if ctx.has_kl else None, scale(glv) if ctx.has_kl else None,
            None, None, g * loss, g * kl if ctx.has_kl else None, None, None)


# ---- smooth_infonce_fwd: recompute with the incoming gradient as loss_weight ----
def _fwd_setup(ctx, inputs, output):
    context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window, first_step = inputs
    ctx.window = (t_begin, t_end, common_window, first_step)
    ctx.has_weight = weight is not None
    ctx.has_kl = mu is not None
    ctx.save_for_backward(context, targets, weight, neg_idx, mu, logvar)
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None


def _fwd_backward_for(ns: str):
    def _fwd_backward(ctx, g_loss, _g_correct, g_kl):
        _refuse_double_backward()
        context, targets, weight, neg_idx, mu, logvar = ctx.saved_tensors
        B, T, _ = context.shape
        if g_loss is None:
            g_loss = torch.zeros((neg_idx.shape[0], B, T), dtype=_acc(context.dtype), device=context.device)
        # An unused kl output (reduction="none") leaves mu and logvar out of the graph: their gradient
        # is None, as autograd gives the reference, and the kernel skips the KL.
        kl_used = ctx.has_kl and g_kl is not None
        out = getattr(torch.ops, ns).smooth_infonce_value_and_grad(
            context, targets, weight, neg_idx, mu if kl_used else None, logvar if kl_used else None,
            ctx.window[0], ctx.window[1], g_loss.contiguous(), g_kl.contiguous() if kl_used else None, ctx.window[2],
            ctx.window[3])
        _, _, _, _, gc, gt, gw, gmu, glv = out
        return (gc, gt, gw if ctx.has_weight else None, None, gmu if kl_used else None, glv if kl_used else None,
                None, None, None, None)

    return _fwd_backward


_LIBS: dict = {}  # namespace -> its IMPL Library (kept alive: the autocast kernels live as long as it does)


def register_ops(ns: str, *, fake: bool) -> None:
    """Registers autograd and autocast (and, with ``fake``, the fake kernels) of ``ns::smooth_infonce_fwd``
    and ``ns::smooth_infonce_value_and_grad``. Call it once per namespace, when the ops are defined."""
    if ns in _LIBS:
        return
    if fake:
        _register_fakes(ns)
    torch.library.register_autograd(f"{ns}::smooth_infonce_value_and_grad", _value_and_grad_backward,
                                    setup_context=_value_and_grad_setup)
    torch.library.register_autograd(f"{ns}::smooth_infonce_fwd", _fwd_backward_for(ns), setup_context=_fwd_setup)
    # Autocast: inputs keep their dtype (a mix is promoted once), the kernels run un-lowered (_autocast.py).
    lib = torch.library.Library(ns, "IMPL")
    for name in OP_NAMES:
        _autocast.register(f"{ns}::{name}", lib)
    _LIBS[ns] = lib
