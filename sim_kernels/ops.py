"""Fake (meta) kernels, autograd and autocast for the C++ ops declared in csrc/ops.cpp.

Imported when the package loads (sim_kernels/backends/native.py), as pytorch/extension-cpp does;
it registers nothing when sim_kernels._C did not load. The registrations themselves are shared with
the Triton ops: sim_kernels/_oplib.py (autograd derivation there).
"""
from __future__ import annotations

from . import _ext
from ._oplib import register_ops

__all__ = []

if _ext.available():
    register_ops("sim_kernels", fake=True)
