"""Loop one CPU op call for a profiler: the fused kernel alone, without pytest-benchmark or autograd.

    OMP_NUM_THREADS=1 perf record -o perf.data python benchmarks/profile_cpu_op.py fwd 8 64 32 12 10 --calls 3000
    perf report -i perf.data --no-children --sort dso,symbol

mode "fwd" calls sim_kernels::smooth_infonce_fwd, "value_and_grad" the fused forward + backward op;
B T C K N give context/targets (B, T, C), weight (K, C, C) and uniform random neg_idx (K, B, T, N),
with mu/logvar (the KL term). Prints the per-call thread CPU time (min and median), which a loaded
machine disturbs less than wall time, and the same for the GEMM floor of that mode. The profiles
quoted in docs/cpu.md were taken this way.
"""
from __future__ import annotations

import argparse
import time

import torch

import sim_kernels  # noqa: F401  (loads the op library)


def _thread_times(fn, calls):
    out = []
    for _ in range(calls):
        t0 = time.thread_time()
        fn()
        out.append(time.thread_time() - t0)
    out.sort()
    return out[0] * 1e3, out[len(out) // 2] * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["fwd", "value_and_grad"])
    p.add_argument("sizes", nargs=5, type=int, metavar="B T C K N")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "float64"])
    a = p.parse_args(argv)
    B, T, C, K, N = a.sizes
    dt = getattr(torch, a.dtype)
    g = torch.Generator().manual_seed(0)
    c, z = torch.randn(B, T, C, generator=g).to(dt), torch.randn(B, T, C, generator=g).to(dt)
    w = (torch.randn(K, C, C, generator=g) * C ** -0.5).to(dt)
    mu, lv = torch.randn(B, T, C, generator=g).to(dt), (0.1 * torch.randn(B, T, C, generator=g)).to(dt)
    idx = torch.randint(0, B * T, (K, B, T, N), generator=g)
    ops = torch.ops.sim_kernels
    if a.mode == "fwd":
        def call():
            ops.smooth_infonce_fwd(c, z, w, idx, mu, lv, 0, T, False)
    else:
        acc = torch.float64 if dt == torch.float64 else torch.float32
        lw, kw = torch.rand(K, B, T, generator=g).to(acc), torch.rand(B, T, generator=g).to(acc)

        def call():
            ops.smooth_infonce_value_and_grad(c, z, w, idx, mu, lv, 0, T, lw, kw, False)
    C2, W = c.view(-1, C), w.view(-1, C)
    P, G, GW = torch.empty(B * T, K * C, dtype=dt), torch.empty(B * T, C, dtype=dt), torch.empty(K * C, C, dtype=dt)

    def floor():
        torch.mm(C2, W.t(), out=P)
        if a.mode != "fwd":
            torch.mm(P, W, out=G)
            torch.mm(P.t(), C2, out=GW)
    for _ in range(3):
        call()
        floor()
    print(f"{a.mode} B{B}-T{T}-C{C}-K{K}-N{N} {a.dtype}, {torch.get_num_threads()} threads")
    print("  op        thread time per call: min %.3f ms, median %.3f ms" % _thread_times(call, a.calls))
    print("  GEMM floor thread time per call: min %.3f ms, median %.3f ms" % _thread_times(floor, min(a.calls, 200)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
