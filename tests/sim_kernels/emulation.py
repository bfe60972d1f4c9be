"""The CUDA kernel's host driver and per-warp bodies compiled for the CPU (csrc/cuda/host_emulation.cpp, lane 0
of 1): the CUDA backend's logic on a machine without a GPU. Shared by test_cuda.py and test_numerics.py."""
from __future__ import annotations

import functools
import os
import shutil
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STALE_LOCK_SECONDS = 600  # a FileBaton lock file older than this was left by a killed build


@functools.lru_cache(maxsize=None)
def _load():
    # First build ~2 min on 2 cores, then cached (ninja) in this tree's build/ folder, one per torch
    # version: torch <= 2.11 guards a build with a lock *file* (FileBaton) and waits forever while one
    # exists, while torch 2.14 holds an OS-level lock on a file it leaves in place, so two torch
    # versions sharing a folder hang each other. With FileBaton, a lock file older than the longest
    # build was left by a killed build and is removed; with an OS-level lock the file is never touched.
    import torch
    import torch.utils.cpp_extension as cpp_extension

    build_dir = os.path.join(ROOT, "build", "host-emulation", torch.__version__.replace("+", "_"))
    os.makedirs(build_dir, exist_ok=True)
    lock = os.path.join(build_dir, "lock")
    uses_lock_file = hasattr(cpp_extension, "FileBaton")
    if uses_lock_file and os.path.exists(lock) and time.time() - os.path.getmtime(lock) > STALE_LOCK_SECONDS:
        os.remove(lock)
    return cpp_extension.load(name="sim_cuda_host_emulation",
                              sources=[os.path.join(ROOT, "csrc", "cuda", "host_emulation.cpp")],
                              extra_include_paths=[os.path.join(ROOT, "csrc"), os.path.join(ROOT, "csrc", "cuda")],
                              extra_cflags=["-std=c++20", "-O1"], build_directory=build_dir, verbose=False)


def load_cuda_emulation():
    """The emulation module (built once per process), or pytest.skip with the reason it cannot be built."""
    if os.environ.get("SIM_SKIP_CUDA_EMULATION") == "1":
        pytest.skip("SIM_SKIP_CUDA_EMULATION=1")
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler to build the CPU emulation of the CUDA kernel")
    return _load()
