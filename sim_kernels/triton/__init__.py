"""Triton kernels of smooth_infonce behind the sibling ops sim_kernels_triton::* (ops.py).

Importing this package raises ImportError when triton is not importable (sim_kernels/backends/triton.py
then reports the backend unavailable). The backend itself is registered in sim_kernels/backends/triton.py;
``BACKEND`` here is that registry entry. Also exported: the block-size controls of heuristics.py (no
autotune: heuristics a GPU user can override).
"""
from __future__ import annotations

try:
    import triton  # noqa: F401
    import triton.language  # noqa: F401
except Exception as e:  # a broken triton install is as good as none
    raise ImportError(f"triton is not importable: {e}") from e

from . import ops  # noqa: F401  (registers the ops and their autograd)
from .heuristics import block_sizes, override_block_sizes, set_block_sizes
from .ops import SUPPORTED_DTYPES

__all__ = ["BACKEND", "SUPPORTED_DTYPES", "block_sizes", "override_block_sizes", "set_block_sizes"]


def __getattr__(name):
    if name == "BACKEND":  # the registry entry (sim_kernels/backends/triton.py), looked up without an import circle
        from .. import registry
        return registry.get("triton")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
