"""Loads the compiled extension sim_kernels._C, if it was built, and says which kernels exist."""
from __future__ import annotations

import torch

try:
    from . import _C  # noqa: F401  (importing registers the sim_kernels:: ops)

    LOAD_ERROR: Exception | None = None
except ImportError as e:  # installed without a compiler, or SIM_NO_EXTENSION=1
    _C = None
    LOAD_ERROR = e

OPS = ("smooth_infonce_fwd", "smooth_infonce_weighted")


def available() -> bool:
    """True when sim_kernels._C was built and imported."""
    return _C is not None


def has_kernel(device_type: str) -> bool:
    """True when a native kernel is registered for ``device_type`` ("cpu", "cuda")."""
    if _C is None:
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    if key is None:
        return False
    return all(torch._C._dispatch_has_kernel_for_dispatch_key(f"sim_kernels::{op}", key) for op in OPS)
