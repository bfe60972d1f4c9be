"""The backends behind smooth_infonce and how "auto" picks one.

Each backend produces the same per-anchor statistics, so the reductions in functional.py are
shared:

    fwd(context, targets, weight, neg_idx, mu, logvar, t0, t1, common) -> (loss, correct, kl)
        loss (K, B, T), correct (K, B, T) bool, kl (B, T) or None; loss and kl differentiable.
        common: the anchor window t0 <= t < t1 - K for every k (CPC_audio) instead of t < t1 - k.
    weighted(..., t0, t1, loss_weight (K, B, T), kl_weight (B, T) or None, common) -> (value, loss, correct, kl)
        value = sum(loss_weight * loss) + sum(kl_weight * kl), differentiable; the kernels compute
        its gradient in the same pass as the forward.

neg_idx arrives as (K, B, T, N) (a shared (B, T, N) is expanded with stride 0, not copied).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from . import _ext
from .reference import per_anchor_terms

__all__ = ["Backend", "choose", "REFERENCE"]


@dataclass(frozen=True)
class Backend:
    name: str
    fwd: Callable
    weighted: Callable
    checks_indices_in_python: bool  # False when the kernel itself rejects out-of-range indices


def _reference_weighted(context, targets, weight, neg_idx, mu, logvar, t0, t1, loss_weight, kl_weight, common=False):
    loss, correct, kl = per_anchor_terms(context, targets, weight, neg_idx, mu, logvar, t0, t1, common)
    value = (loss_weight * loss).sum()
    if kl is not None:
        value = value + (kl_weight * kl).sum()
    return value, loss, correct, kl


REFERENCE = Backend("reference", per_anchor_terms, _reference_weighted, True)


def ops_backend(name: str, namespace: str, checks_indices_in_python: bool, prepare: Callable | None = None) -> Backend:
    """A backend made of the two ops ``<namespace>::smooth_infonce_fwd`` and ``::smooth_infonce_weighted``
    with the schemas of csrc/ops.cpp (the native C++/CUDA kernels, the Triton kernels).
    ``prepare`` runs before each call (e.g. to import the module that registers autograd)."""

    def fwd(context, targets, weight, neg_idx, mu, logvar, t0, t1, common=False):
        if prepare is not None:
            prepare()
        loss, correct, kl = getattr(torch.ops, namespace).smooth_infonce_fwd(
            context, targets, weight, neg_idx, mu, logvar, t0, t1, common)
        return loss, correct, (kl if mu is not None else None)

    def weighted(context, targets, weight, neg_idx, mu, logvar, t0, t1, loss_weight, kl_weight, common=False):
        if prepare is not None:
            prepare()
        value, loss, correct, kl, *_ = getattr(torch.ops, namespace).smooth_infonce_weighted(
            context, targets, weight, neg_idx, mu, logvar, t0, t1, loss_weight, kl_weight, common)
        return value, loss, correct, (kl if mu is not None else None)

    return Backend(name, fwd, weighted, checks_indices_in_python)


def _register_native_autograd():
    from . import ops  # noqa: F401  (registers fake + autograd of the C++ ops, once)


NATIVE = ops_backend("native", "sim_kernels", False, prepare=_register_native_autograd)

_NATIVE_DTYPES = {"cpu": (torch.float16, torch.bfloat16, torch.float32, torch.float64), "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64)}
_warned: set = set()


def _warn_once(key: str, msg: str):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)


def _triton():
    try:
        from .triton import BACKEND  # noqa: F401
    except ImportError as e:
        return None, e
    return BACKEND, None


def _native_ok(device_type: str, dtype: torch.dtype) -> bool:
    return _ext.has_kernel(device_type) and dtype in _NATIVE_DTYPES.get(device_type, ())


def choose(backend: str, context: torch.Tensor) -> Backend:
    dev, dtype = context.device.type, context.dtype
    if backend == "reference":
        return REFERENCE
    if backend == "native":
        if not _ext.available():
            raise RuntimeError(f"backend='native' needs the compiled extension sim_kernels._C, which did not load: "
                               f"{_ext.LOAD_ERROR}. Rebuild with `pip install --no-build-isolation -e .`")
        if not _ext.has_kernel(dev):
            raise RuntimeError(f"backend='native': no sim_kernels kernel is registered for device '{dev}' "
                               f"(CUDA kernels need a build with FORCE_CUDA=1 or a visible GPU)")
        if dtype not in _NATIVE_DTYPES.get(dev, ()):
            raise TypeError(f"backend='native' on {dev} supports {_NATIVE_DTYPES[dev]}, got context.dtype={dtype}")
        return NATIVE
    if backend == "triton":
        tb, err = _triton()
        if tb is None:
            raise RuntimeError(f"backend='triton' is not available: {err}")
        return tb
    # auto
    if _native_ok(dev, dtype):
        return NATIVE
    if dev == "cuda":
        tb, _ = _triton()
        if tb is not None:
            return tb
    if not _ext.available():
        _warn_once("noext", f"sim_kernels._C is not built ({_ext.LOAD_ERROR}); smooth_infonce uses the slow "
                            "plain-PyTorch reference. Build it with `pip install --no-build-isolation -e .`")
    else:
        _warn_once(f"{dev}-{dtype}", f"sim_kernels has no fused kernel for {dev} tensors of dtype {dtype}; "
                                     "smooth_infonce uses the plain-PyTorch reference")
    return REFERENCE
