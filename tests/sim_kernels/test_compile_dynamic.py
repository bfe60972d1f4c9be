"""torch.compile(dynamic=True): one graph serves every sequence length T (issue 17, fault 3).

The op schemas take the anchor window as SymInt (csrc/ops.cpp), so a symbolic T is not specialised
when it reaches the op. Three lengths, one compile (counted with torch._dynamo's CompileCounter on the
aot_eager backend, which also traces the fake kernels and the registered autograd), values and
gradients equal to eager.
"""
from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

from sim_kernels import smooth_infonce

from .conftest import CPU_NAMES, backend_for
from .inputs import cpu_backends, make_inputs


LENGTHS = (17, 23, 30)


# The fused backends: the reference is plain PyTorch ops, whose dynamic shapes are dynamo's own to get right (and
# its trace took a minute of the default test run).
@pytest.mark.parametrize("backend", [b for b in cpu_backends() if b != "reference"])
@pytest.mark.parametrize("grad", [False, True], ids=["fwd", "fwd+bwd"])
def test_three_lengths_one_compile(backend, grad):
    backend_for(CPU_NAMES[backend])  # conftest.py's rule: a missing native CPU kernel fails
    torch._dynamo.reset()
    counters.clear()
    counter = CompileCounterWithBackend("aot_eager")

    def f(context, targets, weight, neg_idx, mu, logvar):
        return smooth_infonce(context, targets, weight, neg_idx, mu, logvar, beta=0.1, backend=backend)

    compiled = torch.compile(f, backend=counter, dynamic=True, fullgraph=False)
    after_first = None
    for T in LENGTHS:
        x = make_inputs(2, T, 6, 5, 3, 4, dtype=torch.float32, requires_grad=grad)
        with torch.set_grad_enabled(grad):
            got = compiled(*x)
            want = f(*x)
        torch.testing.assert_close(got, want)
        if grad:
            leaves = [x[0], x[1], x[2], x[4], x[5]]
            for a, b in zip(torch.autograd.grad(got, leaves), torch.autograd.grad(want, leaves)):
                torch.testing.assert_close(a, b)
        after_first = counter.frame_count if after_first is None else after_first
    # No length after the first compiles anything, and dynamo made one graph of the function.
    assert counter.frame_count == after_first, f"{counter.frame_count - after_first} recompiles for new lengths"
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
