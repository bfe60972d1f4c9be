"""The native backend: the C++ (CPU) and CUDA kernels of sim_kernels._C behind the ops sim_kernels::*.
The kernels reject out-of-range neg_idx themselves (csrc/checks.h)."""
from __future__ import annotations

import torch

from .. import _ext, ops  # noqa: F401  (ops: fake + autograd of the C++ ops, registered at import)
from ..registry import ops_backend, register

__all__ = ["NATIVE", "DTYPES"]

DTYPES = {"cpu": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
          "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def _reason():
    if _ext.available():
        return None
    return (f"sim_kernels._C is not built ({_ext.LOAD_ERROR}): build it with `pip install --no-build-isolation -e .`")


def _supports(device_type: str, dtype: torch.dtype) -> bool:
    return _ext.has_kernel(device_type) and dtype in DTYPES.get(device_type, ())


def _require(device_type: str, dtype: torch.dtype) -> None:
    if not _ext.has_kernel(device_type):
        raise RuntimeError(f"backend='native': no sim_kernels kernel is registered for device '{device_type}' "
                           f"(CUDA kernels need a build with FORCE_CUDA=1 or a visible GPU)")
    if dtype not in DTYPES.get(device_type, ()):
        raise TypeError(f"backend='native' on {device_type} supports {DTYPES[device_type]}, got context.dtype={dtype}")


NATIVE = register(ops_backend("native", "sim_kernels", priority=20, kernel_skips_index_check=False,
                              available=_ext.available, supports=_supports, unavailable_reason=_reason,
                              require=_require))
