"""Triton sibling ops of the native sim_kernels ops, registered with torch.library.triton_op.

    sim_kernels_triton::smooth_infonce_fwd       same schema and semantics as sim_kernels::smooth_infonce_fwd
    sim_kernels_triton::smooth_infonce_value_and_grad  same as sim_kernels::smooth_infonce_value_and_grad
(see csrc/ops.cpp). They live in their own namespace so that the Python registration never collides
with the C++ TORCH_LIBRARY(sim_kernels) block. The bodies only call torch ops and wrap_triton
kernels, so torch.compile can trace into them; autograd is registered below.

Inputs: float16, bfloat16, float32 (accumulated in fp32) or float64 (in fp64), CUDA tensors, or CPU tensors when
TRITON_INTERPRET=1 was set before triton was imported (tests). Index values are not checked here
(the backend's kernel_skips_index_check=True: functional.py checks them); out-of-range indices are
masked in the kernels, so they never read out of bounds.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
import triton
from torch import Tensor
from torch._subclasses.fake_tensor import FakeTensor
from torch._subclasses.functional_tensor import FunctionalTensorMode
from torch.library import triton_op, wrap_triton

from .._oplib import KL_WEIGHT_MESSAGE, register_ops
from ..reference import accumulation_dtype
from . import kernels
from .heuristics import DEFAULT_SMEM_LIMIT, block_sizes, input_precision_override, max_shared_memory

__all__ = ["smooth_infonce_fwd", "smooth_infonce_value_and_grad", "SUPPORTED_DTYPES"]

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _interpreted() -> bool:
    return type(kernels._anchor_kernel).__name__ == "InterpretedFunction"


def _check(context):
    if context.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"backend='triton' supports context.dtype float16, bfloat16, float32 and float64, "
                        f"got {context.dtype}")
    if context.device.type == "cpu" and not _interpreted():
        raise RuntimeError("backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 set before triton is "
                           "imported, to run the kernels in the Triton interpreter on CPU tensors)")


def _device_guard(device: torch.device):
    """torch.cuda.device(device) for a CUDA device, else a no-op. Triton launches on the *current*
    CUDA device, not on its tensors' (the native op has a CUDAGuard): tensors on cuda:1 with cuda:0
    current would otherwise fault or be read across the peer link."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _launch(kernel, grid, device: torch.device):
    """wrap_triton(kernel)[grid] on ``device`` (inside _device_guard), except that in the interpreter a
    launch on fake tensors is skipped.

    Under TRITON_INTERPRET=1, wrap_triton returns the raw InterpretedFunction (torch/_library/triton.py),
    which cannot run on FakeTensors; the op's fake impl (this same body) then only allocates outputs.
    """
    if _interpreted():
        def launch(*args, **kw):
            if not any(isinstance(a, FakeTensor) for a in args):
                with _device_guard(device):
                    kernel[grid](*args, **kw)
        return launch
    run = wrap_triton(kernel)[grid]

    def launch(*args, **kw):
        with _device_guard(device):
            return run(*args, **kw)
    return launch


def _precision(dtype: torch.dtype) -> str:
    """tl.dot's input_precision: the override's ``input_precision`` ("ieee" or "tf32"), else torch's matmul
    TF32 switch (off by default) for fp32; fp64 and 16-bit inputs run "ieee" (TF32 is an fp32 format).
    An explicit "tf32" with fp64 inputs raises ValueError naming input_precision."""
    asked = input_precision_override()
    if asked is not None:
        if asked == "tf32" and dtype == torch.float64:
            raise ValueError("input_precision='tf32' (override_block_sizes / set_block_sizes) rounds the tl.dot "
                             "inputs to TF32 (10-bit mantissa): refused for float64 inputs (context.dtype is "
                             "torch.float64); use input_precision='ieee' or float32 inputs")
        return asked if dtype == torch.float32 or asked == "ieee" else "ieee"
    return "tf32" if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32 else "ieee"


def _target_uses(neg_idx: Tensor, K: int, B: int, T: int, t0: int, t1: int, common: bool = False, z_rows=None,
                 first_step: int = 1):
    """CSR of the uses of every target row at every step (for the deterministic d/dtargets).

    Use id u = (kk*rows + r)*(N+1) + j: row j of anchor r at step kk+1 (j = 0: the positive r+first_step+kk,
    j >= 1: neg_idx[kk, b, t, j-1]). Returns order (uses sorted stably by key kk*z_rows + target row;
    invalid anchors sort last) and offsets (K*z_rows + 1,) into order, z_rows the target rows (default
    rows = B*T). Size O(K*B*T*N), like neg_idx.
    """
    rows, N, dev = B * T, neg_idx.shape[-1], neg_idx.device
    z_rows = rows if z_rows is None else z_rows
    r = torch.arange(rows, device=dev)
    kk = torch.arange(K, device=dev).view(K, 1)
    t = r % T
    valid = (t >= t0) & (t < t1 - (first_step + K - 1 if common else first_step + kk))  # (K, rows)
    target = torch.cat([(r + kk + first_step).unsqueeze(-1), neg_idx.reshape(K, rows, N)], dim=-1)  # (K, rows, N+1)
    # invalid anchors and excluded negatives (-1) sort last: no use of any row
    key = torch.where(valid.unsqueeze(-1) & (target >= 0), kk.unsqueeze(-1) * z_rows + target, K * z_rows)
    sorted_key, order = torch.sort(key.reshape(-1), stable=True)
    offsets = torch.searchsorted(sorted_key, torch.arange(K * z_rows + 1, device=dev))
    return order, offsets


def _run(context, targets, weight, neg_idx, mu, logvar, t0, t1, loss_weight, kl_weight, grad: bool,
         common: bool = False, first_step: int = 1):
    """Launch the kernels; returns (loss, correct, kl, g_context, g_targets, g_weight, g_mu, g_logvar).
    weight None: the dot-product score (Cc == Cz; K = neg_idx.shape[0]); g_weight is then (0,)."""
    _check(context)
    if grad and (mu is not None) != (kl_weight is not None):
        raise ValueError(KL_WEIGHT_MESSAGE)
    B, T, Cc = context.shape
    Cz, K, N, rows = targets.shape[-1], neg_idx.shape[0], neg_idx.shape[-1], B * T
    has_w = weight is not None
    z_rows = targets.shape[0] * T  # >= rows: extra utterances after the anchors' own serve as negatives
    dev, dt = context.device, context.dtype
    acc = accumulation_dtype(dt)  # the kernels accumulate in the dtype of their loss / g / kl buffers
    ctx, tgt = context.contiguous(), targets.contiguous()
    w = weight.contiguous() if has_w else ctx  # without a weight the kernels never read w_ptr
    # The interpreter (CPU tensors) has no shared memory: it runs the blocks an sm_80 build would.
    cfg = block_sizes(Cc, Cz, acc_bytes=8 if acc == torch.float64 else 4,
                      smem_limit=max_shared_memory(dev) if dev.type == "cuda" else DEFAULT_SMEM_LIMIT)
    prec = _precision(dt)
    blocks = dict(BLOCK_M=cfg["BLOCK_M"], BLOCK_C=cfg["BLOCK_C"], BLOCK_Z=cfg["BLOCK_Z"], PRECISION=prec,
                  num_warps=cfg["num_warps"])
    chunks = cfg["Z_CHUNKS"]
    s = neg_idx.stride()

    loss = torch.empty((K, B, T), dtype=acc, device=dev)
    correct = torch.empty((K, B, T), dtype=torch.int8, device=dev)
    if grad:
        lw = loss_weight.to(acc).contiguous()
        g = torch.empty((K, rows, N + 1), dtype=acc, device=dev)
        g_ctx = torch.zeros((rows, Cc), dtype=acc, device=dev)
    else:  # unused pointers, except g: the chunked anchor kernel sums its scores there
        lw, g_ctx = loss, loss
        g = torch.empty((K, rows, N + 1), dtype=acc, device=dev) if chunks > 1 else loss
    grid = (triton.cdiv(rows, cfg["BLOCK_M"]),)
    _launch(kernels._anchor_kernel, grid, dev)(
        ctx, tgt, w, neg_idx, lw, loss, correct, g, g_ctx,
        rows, z_rows, T, t0, t1, K, N, Cc, Cz, s[0], s[1], s[2], s[3], int(common), first_step, GRAD=grad,
        Z_CHUNKS=chunks, HAS_W=has_w, **blocks)

    g_tgt = g_w = None
    if grad:
        order, offsets = _target_uses(neg_idx, K, B, T, t0, t1, common, z_rows, first_step)
        g_tgt = torch.empty((z_rows, Cz), dtype=acc, device=dev)
        _launch(kernels._target_kernel, (triton.cdiv(z_rows, cfg["BLOCK_M"]), chunks), dev)(
            ctx, w, g, order, offsets, g_tgt, rows, z_rows, K, N, Cc, Cz, HAS_W=has_w, **blocks)
        if has_w:
            g_w = torch.empty((K, Cz, Cc), dtype=acc, device=dev)
            wgrid = (K, triton.cdiv(Cz, cfg["BLOCK_WZ"]), triton.cdiv(Cc, cfg["BLOCK_WC"]))
            _launch(kernels._weight_kernel, wgrid, dev)(
                ctx, tgt, neg_idx, g, g_w, rows, z_rows, T, t0, t1, K, N, Cc, Cz, s[0], s[1], s[2], s[3], int(common),
                first_step, BLOCK_M=cfg["BLOCK_M"], BLOCK_WZ=cfg["BLOCK_WZ"], BLOCK_WC=cfg["BLOCK_WC"],
                PRECISION=prec, num_warps=cfg["num_warps"])
            g_w = g_w.to(dt)
        else:
            g_w = torch.empty((0,), dtype=dt, device=dev)
        g_ctx, g_tgt = g_ctx.to(dt).view(B, T, Cc), g_tgt.to(dt).view(targets.shape)
    else:
        g_ctx = None

    kl = torch.empty((0,), dtype=acc, device=dev)
    g_mu, g_lv = torch.empty((0,), dtype=dt, device=dev), torch.empty((0,), dtype=dt, device=dev)  # distinct: no aliasing
    if mu is not None:
        m, lv = mu.contiguous(), logvar.contiguous()
        kl = torch.empty((B, T), dtype=acc, device=dev)
        kw_grad = grad  # the value-and-grad op has a kl_weight whenever it has mu (checked in _run)
        if kw_grad:
            kw = kl_weight.to(acc).contiguous()
            g_mu, g_lv = torch.empty_like(m), torch.empty_like(lv)
        else:
            kw = kl
        _launch(kernels._kl_kernel, (triton.cdiv(rows, cfg["BLOCK_R"]),), dev)(
            m, lv, kw, kl, g_mu if kw_grad else kl, g_lv if kw_grad else kl, rows, Cz, GRAD=kw_grad,
            BLOCK_R=cfg["BLOCK_R"], BLOCK_Z=cfg["BLOCK_KZ"], num_warps=cfg["num_warps"])
    return loss, correct.to(torch.bool), kl, g_ctx, g_tgt, g_w, g_mu, g_lv


@triton_op("sim_kernels_triton::smooth_infonce_fwd", mutates_args=())
def smooth_infonce_fwd(context: Tensor, targets: Tensor, weight: Optional[Tensor], neg_idx: Tensor,
                       mu: Optional[Tensor], logvar: Optional[Tensor], t_begin: int, t_end: int,
                       common_window: bool = False, first_step: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """loss (K, B, T), correct (K, B, T) bool, kl (B, T) or (0,) without mu; fp64 for fp64 inputs, else fp32."""
    loss, correct, kl, *_ = _run(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, None, None, False,
                                 common_window, first_step)
    return loss, correct, kl


@triton_op("sim_kernels_triton::smooth_infonce_value_and_grad", mutates_args=())
def smooth_infonce_value_and_grad(context: Tensor, targets: Tensor, weight: Optional[Tensor], neg_idx: Tensor,
                                  mu: Optional[Tensor], logvar: Optional[Tensor], t_begin: int, t_end: int,
                                  loss_weight: Tensor, kl_weight: Optional[Tensor], common_window: bool = False,
                                  first_step: int = 1
                                  ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """value () (fp32; fp64 for fp64 inputs) = sum(loss_weight*loss) + sum(kl_weight*kl), the fwd outputs, and d value / d
    (context, targets, weight, mu, logvar) in the input dtype (grad_mu, grad_logvar (0,) without mu)."""
    loss, correct, kl, g_ctx, g_tgt, g_w, g_mu, g_lv = _run(
        context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, loss_weight, kl_weight, True, common_window,
        first_step)
    value = (loss_weight.to(loss.dtype) * loss).sum()
    if mu is not None:
        value = value + (kl_weight.to(kl.dtype) * kl).sum()
    return value, loss, correct, kl, g_ctx, g_tgt, g_w, g_mu, g_lv


def _keep_opaque(mode, op, types, args, kwargs):
    return mode.__torch_dispatch__(op, types, args, kwargs)


if _interpreted():
    # triton_op decomposes the op under FunctionalTensorMode (AOTAutograd) so that Inductor sees the
    # kernels; interpreted kernels cannot be traced (see _launch), so keep the op opaque instead:
    # torch.compile then calls it like any custom op (what torch.export does for triton ops, too).
    for _op in (smooth_infonce_fwd, smooth_infonce_value_and_grad):
        _op.register_torch_dispatch(FunctionalTensorMode, _keep_opaque)


# Fake kernels come from triton_op (it runs the body on fake tensors); autograd and autocast are the
# native ops' own (sim_kernels/_oplib.py), so both op families behave alike.
register_ops("sim_kernels_triton", fake=False)
