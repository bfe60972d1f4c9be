"""Compile the Triton kernels for a real GPU target without a GPU, and report their resources.

The interpreter runs any Python it is given; this check runs Triton's real compiler (down to a
cubin with the ptxas bundled in the triton wheel), so it catches what only a GPU build rejects
(operand dtypes of tl.dot, block shapes, loop forms) and shows registers, spill stack and shared
memory per kernel. Must run in a process where TRITON_INTERPRET is not "1" when triton is imported:

    TRITON_INTERPRET=0 python -m sim_kernels.triton.compile_check --arch 80 --dtypes fp32,bf16 --cz 64,256
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import kernels
from .heuristics import block_sizes

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


def compile_all(arch: int = 80, dtypes=("fp32", "fp16", "bf16"), widths=(64,)) -> list:
    """Compile every kernel (with and without GRAD) for each dtype and Cc = Cz = width, with the
    heuristic block sizes. Returns [(kernel, dtype, width, resources)]; raises on a compile error."""
    if type(kernels._anchor_kernel).__name__ == "InterpretedFunction":
        raise RuntimeError("compile_check needs TRITON_INTERPRET unset (or 0) before triton is imported")
    rows = []
    for dt in dtypes:
        p = "*" + dt
        a = "*fp64" if dt == "fp64" else "*fp32"  # accumulation buffers (loss, g, kl, gradients)
        for width in widths:
            cfg = block_sizes(width, width)
            nw = cfg["num_warps"]
            common = dict(BLOCK_M=cfg["BLOCK_M"], PRECISION="ieee")
            for grad in (False, True):
                types = dict(ctx_ptr=p, tgt_ptr=p, w_ptr=p, idx_ptr="*i64", lw_ptr=a, loss_ptr=a,
                             correct_ptr="*i8", g_ptr=a, gctx_ptr=a)
                consts = dict(common, GRAD=grad, BLOCK_C=cfg["BLOCK_C"], BLOCK_Z=cfg["BLOCK_Z"])
                rows.append((f"anchor{'+grad' if grad else ''}", dt, width,
                             _resources(_build(kernels._anchor_kernel, types, consts, nw, arch))))
            types = dict(ctx_ptr=p, w_ptr=p, g_ptr=a, order_ptr="*i64", offs_ptr="*i64", gtgt_ptr=a)
            consts = dict(common, BLOCK_C=cfg["BLOCK_C"], BLOCK_Z=cfg["BLOCK_Z"])
            rows.append(("target", dt, width, _resources(_build(kernels._target_kernel, types, consts, nw, arch))))
            types = dict(ctx_ptr=p, tgt_ptr=p, idx_ptr="*i64", g_ptr=a, gw_ptr=a)
            consts = dict(common, BLOCK_WZ=cfg["BLOCK_WZ"], BLOCK_WC=cfg["BLOCK_WC"])
            rows.append(("weight", dt, width, _resources(_build(kernels._weight_kernel, types, consts, nw, arch))))
            for grad in (False, True):
                types = dict(mu_ptr=p, lv_ptr=p, kw_ptr=a, kl_ptr=a, gmu_ptr=p, glv_ptr=p)
                consts = dict(GRAD=grad, BLOCK_R=cfg["BLOCK_R"], BLOCK_Z=cfg["BLOCK_KZ"])
                rows.append((f"kl{'+grad' if grad else ''}", dt, width,
                             _resources(_build(kernels._kl_kernel, types, consts, nw, arch))))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=80, help="CUDA compute capability, e.g. 80, 90")
    ap.add_argument("--dtypes", default="fp32,fp16,bf16")
    ap.add_argument("--cz", default="64", help="comma-separated channel widths (Cc = Cz)")
    a = ap.parse_args(argv)
    for name, dt, width, res in compile_all(a.arch, a.dtypes.split(","), [int(w) for w in a.cz.split(",")]):
        print(f"sm_{a.arch} {name:12s} {dt:5s} C={width:<5d} " + " ".join(f"{k}={v}" for k, v in res.items()))


if __name__ == "__main__":
    main()
