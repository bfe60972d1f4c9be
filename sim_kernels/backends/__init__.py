"""The backends of smooth_infonce, one file and one registration each (sim_kernels/registry.py):

    reference.py   plain PyTorch (sim_kernels/reference.py), every device and dtype; "auto"'s fallback
    native.py      the C++/CUDA ops sim_kernels::* of the compiled extension sim_kernels._C
    triton.py      the Triton ops sim_kernels_triton::* (sim_kernels/triton/), when triton imports

Importing this package registers them (and the ops' fake/autograd kernels), in priority order.
A new backend: a file here (or anywhere) that calls ``registry.register(Backend(...))``, imported below
or by its user.
"""
from __future__ import annotations

from ..registry import Backend, available_backends, choose, ops_backend, register
from . import native, reference, triton  # noqa: F401  (each registers its backend)
from .native import NATIVE
from .reference import REFERENCE

__all__ = ["Backend", "choose", "register", "available_backends", "ops_backend", "REFERENCE", "NATIVE"]
