"""The backend registry behind smooth_infonce and how backend="auto" picks one.

A backend is one file and one ``register(Backend(...))`` (sim_kernels/backends/: reference.py,
native.py, triton.py; a test may add its own). Every backend produces the same per-anchor
statistics, so the reductions in functional.py are shared:

    fwd(context, targets, weight, neg_idx, mu, logvar, spec) -> (loss, correct, kl)
        loss (K, B, T), correct (K, B, T) bool, kl (B, T) or None; loss and kl differentiable.
        weight: (K, Cz, Cc), or None for the plain dot product z . c (Cc == Cz, K = neg_idx.shape[0]).
        spec: the call's sim_kernels.spec.LossSpec; what a backend reads of it: the anchor window
        spec.t_begin <= t < spec.t_end - d_k, d_k = spec.first_step + k - 1 the offset of step k's positive
        (spec.shift(k, K): d_K for every k when spec.common, CPC_audio's window). Scores arrive scaled and, for
        "cosine", normalised: a backend computes z . (W_k c) or z . c.
    value_and_grad(context, targets, weight, neg_idx, mu, logvar, loss_weight (K, B, T), kl_weight (B, T) or None,
                   spec) -> (value, loss, correct, kl)
        value = sum(loss_weight * loss) + sum(kl_weight * kl), differentiable; the fused kernels
        compute its gradient in the same pass as the forward.

neg_idx arrives as (K, B, T, N) int64 (a shared (B, T, N) is expanded with stride 0, not copied).

``choose("auto", context)`` walks the registry by descending priority and returns the first
backend that is ``available()`` and ``supports(device, dtype)``; when that is a fallback (the
reference) it warns once, with the reason the better backends gave.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

__all__ = ["Backend", "register", "unregister", "get", "names", "choose", "available_backends", "ops_backend", "is_name",
           "BACKEND_NAMES"]


def _always() -> bool:
    return True


def _any_device(device_type: str, dtype: torch.dtype) -> bool:
    return True


def _no_reason() -> Optional[str]:
    return None


@dataclass(frozen=True)
class Backend:
    """One implementation of the two statistics ops (see the module docstring).

    name:           the value of ``backend=`` that selects it.
    priority:       "auto" tries higher priorities first.
    fwd, value_and_grad: the two entry points.
    kernel_skips_index_check: True when the kernel does *not* reject out-of-range ``neg_idx``
                    values itself, so functional.py checks them in Python (one device sync).
    available():    whether it can run at all on this machine (extension built, triton importable).
    supports(device_type, dtype): whether "auto" may pick it for such tensors.
    unavailable_reason(): why not available (None when it is); used in errors and the auto warning.
    require(device_type, dtype): raises a clear error when an explicit ``backend=name`` cannot run
                    on such tensors (None: no check beyond available()).
    fallback:       "auto" warns once when it lands on this backend (the slow reference).
    plain_autograd: its entry points are plain PyTorch ops, so every autograd feature (forward AD, torch.func
                    transforms, second derivatives) goes through them as it is; otherwise functional.py
                    routes transforms through sim_kernels/_transforms.py.
    """
    name: str
    priority: int
    fwd: Callable
    value_and_grad: Callable
    kernel_skips_index_check: bool
    available: Callable[[], bool] = field(default=_always)
    supports: Callable[[str, torch.dtype], bool] = field(default=_any_device)
    unavailable_reason: Callable[[], Optional[str]] = field(default=_no_reason)
    require: Optional[Callable[[str, torch.dtype], None]] = None
    fallback: bool = False
    plain_autograd: bool = False


_REGISTRY: dict[str, Backend] = {}
_RANKED: tuple = ()  # _REGISTRY by descending priority, kept up to date so torch.compile traces a plain tuple
_warned: set = set()


def _rank():
    global _RANKED
    _RANKED = tuple(sorted(_REGISTRY.values(), key=lambda b: -b.priority))


def register(backend: Backend, *, replace: bool = False) -> Backend:
    """Adds ``backend`` to the registry (``backend="<name>"`` then selects it) and returns it."""
    if not isinstance(backend, Backend):
        raise TypeError(f"backend must be a sim_kernels.registry.Backend, got {type(backend).__name__}")
    if backend.name == "auto":
        raise ValueError("backend: the name 'auto' is reserved for the automatic choice")
    if backend.name in _REGISTRY and not replace:
        raise ValueError(f"backend: a backend named {backend.name!r} is already registered (pass replace=True)")
    _REGISTRY[backend.name] = backend
    _rank()
    return backend


def unregister(name: str) -> None:
    """Removes the backend ``name`` (tests that register a toy backend clean up with it)."""
    _REGISTRY.pop(name, None)
    _rank()


def get(name: str) -> Backend:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"backend must be one of {names()}, got {name!r}") from None


def names() -> tuple[str, ...]:
    """"auto" and every registered backend, by descending priority."""
    return ("auto",) + tuple(b.name for b in _RANKED)


def is_name(name) -> bool:
    """True for "auto" and every registered backend name."""
    return name == "auto" or name in _REGISTRY


class _Names(Sequence):
    """A live, tuple-like view of ``names()``: ``functional.BACKENDS`` follows registrations."""

    def __getitem__(self, i):
        return names()[i]

    def __len__(self):
        return len(names())

    def __contains__(self, x):
        return is_name(x)

    def __eq__(self, other):
        return tuple(self) == tuple(other) if isinstance(other, (tuple, list, _Names)) else NotImplemented

    def __hash__(self):
        return hash(names())

    def __repr__(self):
        return repr(names())


BACKEND_NAMES = _Names()


def available_backends(device=None) -> tuple[str, ...]:
    """Names of the backends that can run here, by descending priority.

    device: None (every backend that is available at all), or a device / device type ("cpu",
    "cuda", torch.device): the backends "auto" may pick for tensors there (in some dtype).
    """
    out = []
    for b in _RANKED:
        if not b.available():
            continue
        if device is not None:
            dev = torch.device(device).type
            if not any(b.supports(dev, dt) for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)):
                continue
        out.append(b.name)
    return tuple(out)


def _warn_once(key: str, msg: str):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=5)


def choose(backend: str, context: torch.Tensor) -> Backend:
    """The backend for ``backend=`` ("auto" or a registered name) and tensors like ``context``."""
    dev, dtype = context.device.type, context.dtype
    if backend != "auto":
        b = get(backend)
        if not b.available():
            raise RuntimeError(f"backend={backend!r} is not available: {b.unavailable_reason()}")
        if b.require is not None:
            b.require(dev, dtype)
        return b
    for b in _RANKED:
        if b.available() and b.supports(dev, dtype):
            if b.fallback:
                better = [x for x in _RANKED if x.priority > b.priority]
                reasons = [x.unavailable_reason() for x in better if not x.available()]
                if reasons:
                    _warn_once(f"unavailable-{reasons[0]}", f"{reasons[0]}; smooth_infonce uses the slow "
                                                             f"plain-PyTorch reference ({b.name})")
                else:
                    _warn_once(f"{dev}-{dtype}", f"sim_kernels has no fused kernel for {dev} tensors of dtype "
                                                 f"{dtype}; smooth_infonce uses the plain-PyTorch reference ({b.name})")
            return b
    raise RuntimeError(f"backend='auto': no registered backend supports {dev} tensors of dtype {dtype} "
                       f"(registered: {names()[1:]})")


def ops_backend(name: str, namespace: str, *, priority: int, kernel_skips_index_check: bool, **kw) -> Backend:
    """A backend made of the two ops ``<namespace>::smooth_infonce_fwd`` and
    ``::smooth_infonce_value_and_grad`` with the schemas of csrc/ops.cpp (the native C++/CUDA kernels,
    the Triton kernels). ``kw``: the remaining Backend fields (available, supports, ...)."""

    def fwd(context, targets, weight, neg_idx, mu, logvar, spec):
        loss, correct, kl = getattr(torch.ops, namespace).smooth_infonce_fwd(
            context, targets, weight, neg_idx, mu, logvar, spec.t_begin, spec.t_end, spec.common, spec.first_step)
        return loss, correct, (kl if mu is not None else None)

    def value_and_grad(context, targets, weight, neg_idx, mu, logvar, loss_weight, kl_weight, spec):
        value, loss, correct, kl, *_ = getattr(torch.ops, namespace).smooth_infonce_value_and_grad(
            context, targets, weight, neg_idx, mu, logvar, spec.t_begin, spec.t_end, loss_weight, kl_weight,
            spec.common, spec.first_step)
        return value, loss, correct, (kl if mu is not None else None)

    return Backend(name, priority, fwd, value_and_grad, kernel_skips_index_check, **kw)
