"""Shared memory of the Triton kernels (sim_kernels/triton/heuristics.py, compile_check.py).

The heuristics keep every kernel under a block's shared memory for every dtype and Cz up to 4096 on
sm_80, sm_86/89 and sm_90, by their estimate; the estimate is an upper bound of what Triton's real
compiler allocates (compiled here for sm_90, no GPU needed); compile_check flags (exit 1) a kernel
over the limit. `make gpu-check`'s compile-check stage compiles the whole table for sm_80 and sm_90.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("sim_kernels.triton", reason="triton is not importable")

from sim_kernels.triton import block_sizes, override_block_sizes  # noqa: E402
from sim_kernels.triton.heuristics import SMEM_LIMITS, shared_memory_estimate  # noqa: E402


@pytest.mark.parametrize("arch", sorted(SMEM_LIMITS))
@pytest.mark.parametrize("acc_bytes", [4, 8], ids=["fp32-fp16-bf16", "fp64"])
def test_heuristics_fit_the_limit_for_every_width(arch, acc_bytes):
    limit = SMEM_LIMITS[arch]
    for Cz in range(1, 4097):
        cfg = block_sizes(Cz % 97 + 1, Cz, acc_bytes=acc_bytes, smem_limit=limit)
        need = shared_memory_estimate(cfg, acc_bytes)
        assert max(need.values()) <= limit, (Cz, cfg, need)
        assert cfg["BLOCK_Z"] * cfg["Z_CHUNKS"] >= Cz and cfg["BLOCK_Z"] * (cfg["Z_CHUNKS"] - 1) < Cz
        assert cfg["Z_CHUNKS"] == 1 or cfg["BLOCK_Z"] < Cz


def test_whole_cz_below_the_limit_and_overrides_kept():
    assert block_sizes(64, 256, smem_limit=SMEM_LIMITS[90])["Z_CHUNKS"] == 1  # the usual widths: one tile
    assert block_sizes(16, 2048, smem_limit=SMEM_LIMITS[90])["Z_CHUNKS"] > 1
    with override_block_sizes(BLOCK_Z=2048):  # a user's BLOCK_Z is theirs (compile_check then flags it)
        assert block_sizes(16, 2048, smem_limit=SMEM_LIMITS[90])["BLOCK_Z"] == 2048
    with pytest.raises(ValueError, match="acc_bytes"):
        block_sizes(16, 16, acc_bytes=2)


_COMPILE = """
import json, sys
from sim_kernels.triton import compile_check, set_block_sizes
from sim_kernels.triton.heuristics import block_sizes, shared_memory_estimate, SMEM_LIMITS
rc_ok = compile_check.main(['--arch', '90', '--dtypes', 'fp64', '--cz', '1024', '--kernels', 'anchor+grad,target'])
rows = compile_check.compile_all(90, ('fp64',), (1024,), ('anchor+grad', 'target'))
est = shared_memory_estimate(block_sizes(1024, 1024, acc_bytes=8, smem_limit=SMEM_LIMITS[90]), 8)
set_block_sizes(BLOCK_Z=2048)  # whole-Cz tiles at fp32 Cz = 2048: what the heuristics shipped before
rc_over = compile_check.main(['--arch', '90', '--dtypes', 'fp32', '--cz', '2048', '--kernels', 'anchor'])
print(json.dumps({'rc_ok': rc_ok, 'rc_over': rc_over, 'est': est,
                  'shared': {name: res['shared'] for name, _, _, res in rows}}))
"""


@pytest.mark.slow
def test_compile_check_fails_over_the_limit_and_the_estimate_bounds_the_compiler(tmp_path):
    import json

    env = dict(os.environ, TRITON_INTERPRET="0")
    out = subprocess.run([sys.executable, "-c", _COMPILE], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["rc_ok"] == 0 and r["rc_over"] == 1
    assert "OVER THE LIMIT: sm_90 anchor fp32 C=2048" in out.stdout
    for name, shared in r["shared"].items():
        assert 0 < shared <= r["est"][name] <= SMEM_LIMITS[90], (name, shared, r["est"])
