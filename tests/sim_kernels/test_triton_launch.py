"""The Triton ops' launch wrapper and dot precision (sim_kernels/triton/ops.py): every kernel launch runs
under a guard for its tensors' CUDA device, and input_precision="tf32" reaches tl.dot for fp32 and is
refused for fp64 with an error naming the argument.

The guard's logic is checked here with a recording stand-in for torch.cuda.device (no GPU needed);
test_tensors_on_the_second_gpu runs it for real where two GPUs are visible (else it skips, saying so).
"""
from __future__ import annotations

import contextlib

import pytest
import torch
from torch.testing import assert_close

pytest.importorskip("sim_kernels.triton", reason="triton is not importable")

from sim_kernels.functional import smooth_infonce  # noqa: E402
from sim_kernels.triton import ops, override_block_sizes, set_block_sizes  # noqa: E402

from .inputs import tol  # noqa: E402
from .test_triton import assert_matches_reference, device, make  # noqa: E402,F401  (device: a fixture)


class _Kernel:
    """Stands in for a @triton.jit function: kernel[grid](*args) records the device current at the call."""

    def __init__(self, log):
        self.log = log

    def __getitem__(self, grid):
        return lambda *a, **kw: self.log.append(("launch", grid, _current[-1]))


_current = ["cuda:0"]


@contextlib.contextmanager
def _fake_cuda_device(dev):
    _current.append(str(torch.device(dev)))
    try:
        yield
    finally:
        _current.pop()


@pytest.mark.parametrize("interpreted", [True, False], ids=["interpreter", "compiled"])
def test_launch_runs_under_the_tensors_device(monkeypatch, interpreted):
    log = []
    monkeypatch.setattr(torch.cuda, "device", _fake_cuda_device)
    monkeypatch.setattr(ops, "_interpreted", lambda: interpreted)
    monkeypatch.setattr(ops, "wrap_triton", lambda k: k)  # the compiled path's wrapper, minus tracing
    ops._launch(_Kernel(log), (3,), torch.device("cuda", 1))(torch.zeros(1))
    ops._launch(_Kernel(log), (2, 2), torch.device("cpu"))(torch.zeros(1))
    assert log == [("launch", (3,), "cuda:1"), ("launch", (2, 2), "cuda:0")]  # CPU tensors: no guard
    assert _current == ["cuda:0"]  # restored after the launch


def test_every_launch_in_the_op_names_its_device(monkeypatch, device):
    """_run passes the tensors' device to each of its launches (value and gradients in one pass: anchor,
    target, weight, KL)."""
    seen = []
    real = ops._launch

    def spy(kernel, grid, dev):
        seen.append((kernel.fn.__name__ if hasattr(kernel, "fn") else str(kernel), torch.device(dev)))
        return real(kernel, grid, dev)

    monkeypatch.setattr(ops, "_launch", spy)
    x = make(1, 7, 5, 6, 2, 3, device)
    smooth_infonce(**x, beta=0.1, backend="triton").backward()
    assert sorted(n for n, _ in seen) == ["_anchor_kernel", "_kl_kernel", "_target_kernel", "_weight_kernel"]
    assert all(d == x["context"].device for _, d in seen), seen


def test_precision_override_reaches_tl_dot(monkeypatch, device):
    seen = []
    real = ops._launch

    def spy(kernel, grid, dev):
        launch = real(kernel, grid, dev)
        return lambda *a, **kw: (seen.append(kw.get("PRECISION")), launch(*a, **kw))

    monkeypatch.setattr(ops, "_launch", spy)
    x = make(2, 9, 5, 6, 2, 3, device)
    with override_block_sizes(input_precision="tf32"):
        got = smooth_infonce(**x, beta=0.1, backend="triton")
    assert "tf32" in seen and "ieee" not in seen
    # TF32 rounds the dot inputs to a 10-bit mantissa: within ~1e-3 relative (exact in the interpreter).
    assert_close(got, smooth_infonce(**x, beta=0.1, backend="reference"), rtol=5e-3, atol=5e-3)
    seen.clear()
    with override_block_sizes(input_precision="ieee"):
        assert_matches_reference(x, beta=0.1)
    assert "ieee" in seen and "tf32" not in seen


def test_tf32_refused_for_float64(device):
    x = make(1, 6, 3, 4, 2, 2, device, dtype=torch.float64)
    with override_block_sizes(input_precision="tf32"), pytest.raises(ValueError, match="input_precision"):
        smooth_infonce(**x, beta=0.1, backend="triton")
    with pytest.raises(ValueError, match="input_precision must be one of"):
        set_block_sizes(input_precision="fp16")
    # The global TF32 switch is torch's fp32-matmul switch: float64 ignores it, as torch.matmul does.
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        assert ops._precision(torch.float64) == "ieee" and ops._precision(torch.float32) == "tf32"
        got = smooth_infonce(**x, beta=0.1, backend="triton")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    assert_close(got, smooth_infonce(**x, beta=0.1, backend="reference"), **tol(torch.float64))


def test_tensors_on_the_second_gpu():
    """Tensors on cuda:1 while cuda:0 is current: the guard makes the kernels run (and read) on cuda:1."""
    if ops._interpreted() or torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices and compiled Triton (TRITON_INTERPRET=0)")
    torch.cuda.set_device(0)
    x = make(2, 13, 7, 9, 3, 4, "cuda:1")
    assert_matches_reference(x, beta=0.1)
    assert torch.cuda.current_device() == 0
