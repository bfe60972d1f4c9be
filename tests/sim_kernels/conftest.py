"""Fixtures shared by the sim_kernels tests: the ``backend`` fixture runs a test once per backend.

    reference   the plain-PyTorch reference, CPU tensors
    native-cpu  the fused C++ CPU kernel (sim_kernels._C); its absence FAILS: the build is part of the product
    cuda        the fused CUDA kernel (backend="native" on CUDA tensors); skips without a GPU (the host
                emulation in test_cuda.py covers its logic on the CPU); a GPU without the kernel fails
    triton      the Triton kernels: in the interpreter on CPU tensors (TRITON_INTERPRET=1, tests/conftest.py),
                compiled on CUDA tensors otherwise; skips when triton does not import or has no GPU to run on

The value is the ``backend=`` argument of smooth_infonce (a str: "reference", "native" or "triton") with
``.id`` (the name above) and ``.device`` (where its tensors live) attached; ``backend.run(fn, *args, **kw)``
calls ``fn(..., backend=backend)`` on that device with CPU tensors in and out.
"""
import pytest
import torch

from sim_kernels import _ext

BACKENDS = ("reference", "native-cpu", "cuda", "triton")
CPU_NAMES = {"reference": "reference", "native": "native-cpu", "triton": "triton"}  # backend= on CPU tensors -> id


class Backend(str):
    """A ``backend=`` argument with the fixture's ``id`` and the ``device`` its tensors live on."""

    def __new__(cls, arg, id, device):
        self = super().__new__(cls, arg)
        self.id, self.device = id, torch.device(device)
        return self

    def run(self, fn, *args, **kw):
        """fn(*args, backend=self, **kw) with the tensor arguments moved to this backend's device and
        the tensor results moved back to the CPU, both differentiably: a test keeps its CPU leaves and
        compares on the CPU (on the CPU backends nothing is moved)."""
        if self.device.type == "cpu":
            return fn(*args, backend=self, **kw)
        from torch.utils._pytree import tree_map

        def move(dev, src):  # only tensors on ``src`` (a test's meta tensors stay where they are)
            return lambda t: t.to(dev) if torch.is_tensor(t) and t.device.type == src else t

        out = fn(*tree_map(move(self.device, "cpu"), list(args)), backend=self, **tree_map(move(self.device, "cpu"), kw))
        return tree_map(move("cpu", self.device.type), out)


def backend_for(name):
    """The Backend for a fixture name, or pytest.skip/pytest.fail with the reason it cannot run here."""
    if name == "reference":
        return Backend("reference", name, "cpu")
    if name == "native-cpu":
        if not _ext.has_kernel("cpu"):
            pytest.fail(f"the native CPU kernel is missing (sim_kernels._C: {_ext.LOAD_ERROR}); the build is part of "
                        "the product")
        return Backend("native", name, "cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device: the fused CUDA kernel needs a GPU (test_cuda.py's host emulation covers its "
                        "logic on the CPU)")
        if not _ext.has_kernel("cuda"):
            pytest.fail(f"a GPU is present but no CUDA kernel is registered (build with FORCE_CUDA=1): {_ext.LOAD_ERROR}")
        return Backend("native", name, "cuda")
    if name == "triton":
        try:
            from sim_kernels.triton.ops import _interpreted
        except ImportError as e:
            pytest.skip(f"triton is not importable: {e}")
        if _interpreted():
            return Backend("triton", name, "cpu")
        if not torch.cuda.is_available():
            pytest.skip("triton is compiled (TRITON_INTERPRET unset) but no GPU is visible")
        return Backend("triton", name, "cuda")
    raise ValueError(name)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend in turn (see the module docstring); skips or fails with the reason where one cannot run."""
    return backend_for(request.param)
