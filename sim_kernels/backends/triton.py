"""The Triton backend: the kernels of sim_kernels/triton/ behind the ops sim_kernels_triton::*.
Always registered; available() only when triton imports (a broken install counts as none). "auto" picks it for CUDA
tensors that have no native kernel; backend="triton" also runs CPU tensors when TRITON_INTERPRET=1 was
set before triton was imported. Index values are checked in Python (the kernels mask, never reject)."""
from __future__ import annotations

import torch

from ..registry import ops_backend, register

__all__ = ["TRITON", "LOAD_ERROR"]

try:
    from .. import triton as _kernels  # registers the ops, their fake and autograd
    LOAD_ERROR = None
except ImportError as e:
    _kernels, LOAD_ERROR = None, e


def _supports(device_type: str, dtype: torch.dtype) -> bool:
    return device_type == "cuda" and dtype in _kernels.SUPPORTED_DTYPES


def _available() -> bool:
    return _kernels is not None


def _reason():
    return None if _kernels is not None else str(LOAD_ERROR)


TRITON = register(ops_backend("triton", "sim_kernels_triton", priority=10, kernel_skips_index_check=True,
                              available=_available, supports=_supports, unavailable_reason=_reason))
