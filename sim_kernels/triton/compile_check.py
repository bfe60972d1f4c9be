"""Compile the Triton kernels for a real GPU target without a GPU, and report their resources.

The interpreter runs any Python it is given; this check runs Triton's real compiler (down to a
cubin with the ptxas bundled in the triton wheel), so it catches what only a GPU build rejects
(operand dtypes of tl.dot, block shapes, loop forms) and shows registers, spill stack and shared
memory per kernel, and exits 1 when a kernel needs more shared memory than a block of the target has
(the launch would raise OutOfResources). Must run in a process where TRITON_INTERPRET is not "1"
when triton is imported:

    TRITON_INTERPRET=0 python -m sim_kernels.triton.compile_check --arch 80,90 --dtypes fp32,bf16,fp64 \
        --cz 64,1024,2048,4096 --kernels anchor,anchor+grad,target --json resources.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import kernels
from .heuristics import SMEM_LIMITS, block_sizes

_I64 = ("s_ik", "s_ib", "s_it", "s_in")


def _signature(fn, types, consts):
    return {a: "constexpr" if a in consts else ("i64" if a in _I64 else types.get(a, "i32")) for a in fn.arg_names}


def _resources(compiled) -> dict:
    info = {"num_warps": compiled.metadata.num_warps, "shared": compiled.metadata.shared}
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    cubin = compiled.asm.get("cubin")
    if cubin is not None and os.path.exists(cuobjdump):
        path = f"/tmp/sim_kernels_check_{os.getpid()}.cubin"
        with open(path, "wb") as f:
            f.write(cubin)
        out = subprocess.run([cuobjdump, "--dump-resource-usage", path], capture_output=True, text=True).stdout
        os.remove(path)
        for key in ("REG", "STACK"):
            m = re.search(rf"{key}:(\d+)", out)
            info[key.lower()] = int(m.group(1)) if m else None
    return info


def _build(fn, types, consts, num_warps, arch):
    src = ASTSource(fn, _signature(fn, types, consts), constexprs=consts)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})


# "-dot": the dot-product score without a weight (HAS_W=False; no weight kernel then)
KERNELS = ("anchor", "anchor+grad", "target", "weight", "kl", "kl+grad", "anchor-dot", "anchor-dot+grad", "target-dot")


def compile_all(arch: int = 80, dtypes=("fp32", "fp16", "bf16"), widths=(64,), kernels_=KERNELS) -> list:
    """Compile the kernels ``kernels_`` for each dtype and Cc = Cz = width with the heuristic block
    sizes for ``arch``'s shared-memory limit (heuristics.SMEM_LIMITS). Returns [(kernel, dtype, width,
    resources)], resources with num_warps, shared, reg, stack, BLOCK_Z, Z_CHUNKS, limit and
    over_limit (shared > limit); raises on a compile error."""
    if type(kernels._anchor_kernel).__name__ == "InterpretedFunction":
        raise RuntimeError("compile_check needs TRITON_INTERPRET unset (or 0) before triton is imported")
    unknown = set(kernels_) - set(KERNELS)
    if unknown:
        raise ValueError(f"kernels_: unknown kernel(s) {sorted(unknown)}; expected some of {KERNELS}")
    limit = SMEM_LIMITS.get(arch)
    if limit is None:
        raise ValueError(f"arch must be one of {sorted(SMEM_LIMITS)}, got {arch!r}")
    rows = []
    for dt in dtypes:
        p = "*" + dt
        a = "*fp64" if dt == "fp64" else "*fp32"  # accumulation buffers (loss, g, kl, gradients)
        for width in widths:
            cfg = block_sizes(width, width, acc_bytes=8 if dt == "fp64" else 4, smem_limit=limit)
            nw = cfg["num_warps"]
            common = dict(BLOCK_M=cfg["BLOCK_M"], PRECISION="ieee")
            zc = dict(BLOCK_C=cfg["BLOCK_C"], BLOCK_Z=cfg["BLOCK_Z"])
            builds = []
            for has_w in (True, False):
                dot = "" if has_w else "-dot"
                for grad in (False, True):
                    types = dict(ctx_ptr=p, tgt_ptr=p, w_ptr=p, idx_ptr="*i64", lw_ptr=a, loss_ptr=a,
                                 correct_ptr="*i8", g_ptr=a, gctx_ptr=a)
                    builds.append((f"anchor{dot}{'+grad' if grad else ''}", kernels._anchor_kernel, types,
                                   dict(common, GRAD=grad, Z_CHUNKS=cfg["Z_CHUNKS"], HAS_W=has_w, **zc)))
                builds.append((f"target{dot}", kernels._target_kernel,
                               dict(ctx_ptr=p, w_ptr=p, g_ptr=a, order_ptr="*i64", offs_ptr="*i64", gtgt_ptr=a),
                               dict(common, HAS_W=has_w, **zc)))
            builds.append(("weight", kernels._weight_kernel,
                           dict(ctx_ptr=p, tgt_ptr=p, idx_ptr="*i64", g_ptr=a, gw_ptr=a),
                           dict(common, BLOCK_WZ=cfg["BLOCK_WZ"], BLOCK_WC=cfg["BLOCK_WC"])))
            for grad in (False, True):
                builds.append((f"kl{'+grad' if grad else ''}", kernels._kl_kernel,
                               dict(mu_ptr=p, lv_ptr=p, kw_ptr=a, kl_ptr=a, gmu_ptr=p, glv_ptr=p),
                               dict(GRAD=grad, BLOCK_R=cfg["BLOCK_R"], BLOCK_Z=cfg["BLOCK_KZ"])))
            for name, fn, types, consts in builds:
                if name not in kernels_:
                    continue
                res = _resources(_build(fn, types, consts, nw, arch))
                res.update(BLOCK_Z=cfg["BLOCK_Z"], Z_CHUNKS=cfg["Z_CHUNKS"], limit=limit,
                           over_limit=res["shared"] > limit)
                rows.append((name, dt, width, res))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="80", help="comma-separated CUDA compute capabilities, e.g. 80,90")
    ap.add_argument("--dtypes", default="fp32,fp16,bf16")
    ap.add_argument("--cz", default="64", help="comma-separated channel widths (Cc = Cz)")
    ap.add_argument("--kernels", default=",".join(KERNELS), help="comma-separated, from " + ",".join(KERNELS))
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    a = ap.parse_args(argv)
    table = []
    for arch in (int(x) for x in a.arch.split(",")):
        for name, dt, width, res in compile_all(arch, a.dtypes.split(","), [int(w) for w in a.cz.split(",")],
                                                a.kernels.split(",")):
            table.append({"kernel": name, "dtype": dt, "width": width, "arch": arch, **res})
            print(f"sm_{arch} {name:12s} {dt:5s} C={width:<5d} " + " ".join(f"{k}={v}" for k, v in res.items()),
                  flush=True)
            if a.json:  # rewritten after every kernel: a cut run keeps what it compiled
                with open(a.json, "w") as f:
                    json.dump(table, f, indent=1)
    over = [r for r in table if r["over_limit"]]
    for r in over:
        print(f"OVER THE LIMIT: sm_{r['arch']} {r['kernel']} {r['dtype']} C={r['width']}: {r['shared']} B of shared "
              f"memory > {r['limit']} B per block", flush=True)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
