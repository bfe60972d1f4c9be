"""Triton backend of smooth_infonce: fused kernels behind the sibling ops sim_kernels_triton::*.

Importing this package raises ImportError when triton is not importable (backends.py then skips
the backend). It exports BACKEND, the (fwd, weighted) pair of sim_kernels.backends.Backend, and the
block-size controls of heuristics.py (no autotune: heuristics a GPU user can override).
"""
from __future__ import annotations

try:
    import triton  # noqa: F401
    import triton.language  # noqa: F401
except Exception as e:  # a broken triton install is as good as none
    raise ImportError(f"triton is not importable: {e}") from e

import torch

from ..backends import ops_backend
from . import ops  # noqa: F401  (registers the ops and their autograd)
from .heuristics import block_sizes, override_block_sizes, set_block_sizes
from .ops import SUPPORTED_DTYPES

__all__ = ["BACKEND", "SUPPORTED_DTYPES", "block_sizes", "override_block_sizes", "set_block_sizes"]


BACKEND = ops_backend("triton", "sim_kernels_triton", checks_indices_in_python=True)
