"""A small CUDA workload for compute-sanitizer (memcheck, synccheck, initcheck, racecheck): `make gpu-check` runs it.

Runs the fused CUDA kernel and the Triton kernels, forward and forward + backward, in float32 and
bfloat16, on odd shapes (several row tiles, N = 1, K = 1, a (B, T, N) neg_idx shared over k, a Cz
wide enough for the Triton kernels' Cz chunks), then
checks that an out-of-range negative index is refused before any kernel reads it. Exits non-zero
when a result is wrong or an expected error is missing; the sanitizer's own verdict is separate.
Run it under PYTORCH_NO_CUDA_MEMORY_CACHING=1 so every tensor is its own allocation and an
out-of-bounds access cannot land silently in a neighbour inside the caching allocator's pool.
"""
from __future__ import annotations

import sys

import torch

from sim_kernels import smooth_infonce

# B, T, Cc, Cz, K, N; the last is wide enough for the Triton anchor kernel to split Cz into chunks
# (heuristics.py: a whole-Cz tile of 1024 fp32 channels exceeds the shared-memory estimate on sm_90).
SHAPES = [(2, 37, 24, 20, 5, 7), (1, 9, 3, 4, 1, 1), (3, 20, 40, 33, 12, 10), (2, 9, 16, 600, 2, 3)]


def inputs(B, T, Cc, Cz, K, N, dtype, shared, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = dict(context=torch.randn(B, T, Cc, generator=g), targets=torch.randn(B, T, Cz, generator=g),
             weight=torch.randn(K, Cz, Cc, generator=g) / Cc ** 0.5, mu=torch.randn(B, T, Cz, generator=g),
             logvar=0.5 * torch.randn(B, T, Cz, generator=g))
    x = {k: v.to("cuda", dtype).requires_grad_() for k, v in x.items()}
    x["neg_idx"] = torch.randint(0, B * T, (B, T, N) if shared else (K, B, T, N), generator=g).cuda()
    return x


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_sanitize_case: no CUDA device", file=sys.stderr)
        return 2
    failures = []
    for backend in ("native", "triton"):
        for dtype in (torch.float32, torch.bfloat16):
            for i, shape in enumerate(SHAPES):
                x = inputs(*shape, dtype, shared=bool(i % 2))
                args = (x["context"], x["targets"], x["weight"], x["neg_idx"], x["mu"], x["logvar"])
                with torch.no_grad():
                    fwd = smooth_infonce(*args, beta=0.01, backend=backend)
                loss = smooth_infonce(*args, beta=0.01, backend=backend)
                loss.backward()
                ref = smooth_infonce(*[a.detach().double() if a.is_floating_point() else a for a in args],
                                     beta=0.01, backend="reference")
                torch.cuda.synchronize()
                tol = 1e-3 if dtype == torch.float32 else 5e-2
                for name, v in (("fwd", fwd), ("fwd+bwd", loss)):
                    if not torch.isfinite(v) or abs(float(v) - float(ref)) > tol * max(1.0, abs(float(ref))):
                        failures.append(f"{backend} {dtype} {shape} {name}: {float(v)} vs reference {float(ref)}")
                if any(t.grad is None or not torch.isfinite(t.grad).all() for t in args if t.is_floating_point()):
                    failures.append(f"{backend} {dtype} {shape}: missing or non-finite gradient")
        x = inputs(*SHAPES[0], torch.float32, shared=False)
        bad = x["neg_idx"].clone()
        bad[0, 0, 0, 0] = x["context"].shape[0] * x["context"].shape[1]  # one past the last row
        try:
            smooth_infonce(x["context"], x["targets"], x["weight"], bad, x["mu"], x["logvar"], backend=backend)
            torch.cuda.synchronize()
            failures.append(f"{backend}: an out-of-range neg_idx was not refused")
        except ValueError as e:
            if "neg_idx" not in str(e):
                failures.append(f"{backend}: the out-of-range error does not name neg_idx: {e}")
    for f in failures:
        print("FAIL", f)
    print(f"gpu_sanitize_case: {'ok' if not failures else f'{len(failures)} failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
