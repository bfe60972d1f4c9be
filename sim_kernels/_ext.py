"""Loads the compiled extension sim_kernels._C, if it was built, and says which kernels exist."""
from __future__ import annotations

import torch

try:
    from . import _C  # noqa: F401  (importing registers the sim_kernels:: ops)

    LOAD_ERROR: Exception | None = None
except ImportError as e:  # installed without a compiler, or SIM_NO_EXTENSION=1
    _C = None
    LOAD_ERROR = e

OPS = ("smooth_infonce_fwd", "smooth_infonce_value_and_grad")


def available() -> bool:
    """True when sim_kernels._C was built and imported."""
    return _C is not None


def _registered(key: str) -> bool:
    return _C is not None and all(torch._C._dispatch_has_kernel_for_dispatch_key(f"sim_kernels::{op}", key) for op in OPS)


# Looked up once at import (kernels register when _C loads), so torch.compile sees constants.
_KERNELS = {"cpu": _registered("CPU"), "cuda": _registered("CUDA")}


def has_kernel(device_type: str) -> bool:
    """True when a native kernel is registered for ``device_type`` ("cpu", "cuda")."""
    return _KERNELS.get(device_type, False)
