"""Wide targets on the Triton backend: the anchor kernel walking Cz in chunks (Z_CHUNKS > 1) and the
target kernel's grid axis over Cz chunks, against the reference.

In the interpreter (the default run, CPU tensors) and compiled on a GPU (`make gpu-check`'s
tests-triton stage): small chunks forced with override_block_sizes(BLOCK_Z=16) on odd widths, and the
wide shapes whose whole-Cz tiles would exceed a Hopper block's shared memory (Cz = 2048 fp32,
Cz = 1024 fp64), where the heuristics choose the chunks themselves.
"""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

pytest.importorskip("sim_kernels.triton", reason="triton is not importable")

from sim_kernels.triton import block_sizes, override_block_sizes  # noqa: E402
from sim_kernels.triton.heuristics import DEFAULT_SMEM_LIMIT, max_shared_memory  # noqa: E402

from .inputs import case_id, tol  # noqa: E402
from .test_triton import assert_matches_reference, device, loss_and_grads, make  # noqa: E402,F401  (device: a fixture)


@pytest.mark.parametrize("shape", [(2, 11, 9, 37, 3, 4), (1, 9, 20, 33, 2, 3)], ids=case_id)
@pytest.mark.parametrize("per_k", [False, True], ids=["shared-neg", "per-k-neg"])
def test_forced_z_chunks_match_reference(device, shape, per_k):
    B, T, Cc, Cz, K, N = shape
    with override_block_sizes(BLOCK_Z=16, BLOCK_M=16):
        assert block_sizes(Cc, Cz)["Z_CHUNKS"] == 3
        x = make(*shape, device, per_k=per_k)
        assert_matches_reference(x, beta=0.2)
        assert_matches_reference(x, torch.randn(K, B, T, device=device), reduction="none")


def test_forced_z_chunks_common_window(device):
    x = make(2, 14, 8, 40, 3, 3, device, per_k=True)
    with override_block_sizes(BLOCK_Z=16):
        assert_matches_reference(x, beta=0.1, anchor_window="common")


def test_forced_z_chunks_forward_only(device):
    """Without gradients the chunked anchor kernel sums its scores in a scratch buffer."""
    from sim_kernels.functional import smooth_infonce

    x = make(2, 10, 6, 50, 2, 5, device, kl=False)
    with torch.no_grad(), override_block_sizes(BLOCK_Z=16):
        got = smooth_infonce(**x, backend="triton", reduction="none")
    ref = smooth_infonce(**x, backend="reference", reduction="none").detach()
    assert_close(got, ref, **tol(got.dtype))


@pytest.mark.parametrize("dtype,Cz", [(torch.float32, 2048), (torch.float64, 1024)], ids=["fp32-Cz2048", "fp64-Cz1024"])
def test_wide_targets_with_the_heuristic_chunks(device, dtype, Cz):
    """The shapes whose whole-Cz tiles need 264-395 KB of shared memory on sm_90: the heuristics split Cz.
    Against the float64 reference: fp32 sums over 2048 channels in another order than torch's, so
    gradients get test_gpu.py's fp32 tolerance (rtol 1e-4, atol 1e-6 + 1e-5 max|g|)."""
    limit = max_shared_memory() if device == "cuda" else DEFAULT_SMEM_LIMIT
    cfg = block_sizes(16, Cz, acc_bytes=dtype.itemsize, smem_limit=limit)
    assert cfg["Z_CHUNKS"] > 1
    B, T = (2, 24) if device == "cuda" else (1, 6)
    x = make(B, T, 16, Cz, 2, 3, device, dtype=dtype, per_k=True)
    x["weight"] = (x["weight"] / Cz ** 0.5).detach().requires_grad_()  # scores O(1), not O(sqrt(Cz))
    x64 = {k: (v.detach().double().requires_grad_() if v.is_floating_point() else v) for k, v in x.items()}
    got, got_g = loss_and_grads(x, beta=0.1, backend="triton")
    ref, ref_g = loss_and_grads(x64, beta=0.1, backend="reference")
    exact = dtype == torch.float64
    assert_close(got.double(), ref, **(tol(dtype) if exact else dict(rtol=1e-5, atol=1e-5)))
    for name, a, b in zip(("context", "targets", "weight", "mu", "logvar"), got_g, ref_g):
        t = tol(dtype) if exact else dict(rtol=1e-4, atol=1e-6 + 1e-5 * float(b.abs().max()))
        assert_close(a.double(), b, **t, msg=lambda m, name=name: f"d/d{name}: {m}")
