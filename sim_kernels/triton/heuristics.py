"""Block sizes of the Triton kernels: plain heuristics, no autotune, and a user override.

A GPU user tunes with ``override_block_sizes(BLOCK_M=64, num_warps=8)`` (a context manager) or
``set_block_sizes(...)`` (global); ``block_sizes(...)`` reports what the next call will use.
Every key overrides one heuristic; unknown keys raise. tl.dot needs every matrix side >= 16, so
the heuristics never go below 16 on a dot side.

Keys:
    BLOCK_M      anchor (and target) rows per program of the anchor and target kernels
    BLOCK_C      context channels per tl.dot chunk (Cc is looped over in chunks of BLOCK_C)
    BLOCK_WZ     target channels per program of the weight-gradient kernel
    BLOCK_WC     context channels per program of the weight-gradient kernel
    BLOCK_R      rows per program of the KL kernel
    BLOCK_Z      target channels per tile of the anchor and target kernels (default: next_pow2(Cz),
                 halved until the kernels fit the device's shared memory; see below)
    num_warps    warps per program (all kernels)
    input_precision  tl.dot's input precision for fp32 inputs: "ieee" or "tf32" (default: follow
                 torch.backends.cuda.matmul.allow_tf32); "tf32" with fp64 inputs raises ValueError

Shared memory. The anchor and target kernels hold (BLOCK_M, BLOCK_Z) tiles in the accumulation
dtype, and Triton stages them (and the (BLOCK_C, BLOCK_Z) weight chunk) through shared memory for
tl.dot and layout changes: compiled for sm_90, whole-Cz tiles needed 264-395 KB at fp32 Cz = 2048
and fp64 Cz = 1024, over the 227 KB (232,448 B) a Hopper block may have (sm_80: 163 KB, sm_86/89:
99 KB). ``shared_memory_estimate`` is an upper bound of what they need (checked against the real
compiler by compile_check.py); ``block_sizes`` halves BLOCK_Z until it fits ``smem_limit``, and
the kernels then walk Cz in Z_CHUNKS = cdiv(Cz, BLOCK_Z) chunks (kernels.py: scores summed over
the chunks in a buffer; a grid axis over the chunks in the target kernel). Z_CHUNKS = 1 is the
whole-Cz path. The limit is the current CUDA device's (``max_shared_memory``), or
DEFAULT_SMEM_LIMIT where none is visible (the interpreter, compile_check for another target).
"""
from __future__ import annotations

import contextlib
import functools

import triton

__all__ = ["block_sizes", "set_block_sizes", "override_block_sizes", "shared_memory_estimate", "max_shared_memory",
           "KEYS", "SMEM_LIMITS", "DEFAULT_SMEM_LIMIT"]

KEYS = ("BLOCK_M", "BLOCK_C", "BLOCK_WZ", "BLOCK_WC", "BLOCK_R", "BLOCK_Z", "num_warps")
# Opt-in shared memory per block (bytes) by compute capability (CUDA C Programming Guide, "Compute Capabilities").
SMEM_LIMITS = {80: 166912, 86: 101376, 87: 166912, 89: 101376, 90: 232448}
DEFAULT_SMEM_LIMIT = SMEM_LIMITS[80]
_SMEM_SLACK = 8192  # bytes over the tiles (reduction scratch, barriers) in the estimate
_overrides: dict = {}


PRECISIONS = ("ieee", "tf32")


def _check(kw):
    for key, v in kw.items():
        if key == "input_precision":
            if v not in PRECISIONS:
                raise ValueError(f"input_precision must be one of {PRECISIONS}, got {v!r}")
            continue
        if key not in KEYS:
            raise ValueError(f"unknown Triton block-size key {key!r}; expected one of {KEYS} or input_precision")
        if not (isinstance(v, int) and v >= 1 and (v & (v - 1)) == 0):
            raise ValueError(f"{key} must be a positive power of two, got {v!r}")
        if key != "num_warps" and key != "BLOCK_R" and v < 16:
            raise ValueError(f"{key} must be >= 16 (a tl.dot side), got {v}")


def set_block_sizes(**kw):
    """Override heuristics globally, e.g. set_block_sizes(BLOCK_M=32). Call with no arguments to reset."""
    _check(kw)
    _overrides.clear()
    _overrides.update(kw)


@contextlib.contextmanager
def override_block_sizes(**kw):
    """Temporarily override heuristics: ``with override_block_sizes(BLOCK_M=64): loss.backward()``."""
    _check(kw)
    saved = dict(_overrides)
    _overrides.update(kw)
    try:
        yield
    finally:
        _overrides.clear()
        _overrides.update(saved)


def input_precision_override():
    """The ``input_precision`` set with set_block_sizes / override_block_sizes, or None."""
    return _overrides.get("input_precision")


@functools.lru_cache(maxsize=None)
def _device_smem(index: int) -> int:
    import torch

    props = torch.cuda.get_device_properties(index)
    limit = getattr(props, "shared_memory_per_block_optin", None)
    return int(limit) if limit else SMEM_LIMITS.get(props.major * 10 + props.minor, DEFAULT_SMEM_LIMIT)


def max_shared_memory(device=None) -> int:
    """Opt-in shared memory per block (bytes) of a CUDA device (default: the current one), or
    DEFAULT_SMEM_LIMIT when no CUDA device is visible."""
    import torch

    if not torch.cuda.is_available():
        return DEFAULT_SMEM_LIMIT
    index = torch.device(device).index if device is not None else None
    return _device_smem(torch.cuda.current_device() if index is None else index)


def shared_memory_estimate(cfg: dict, acc_bytes: int = 4) -> dict:
    """Upper bound (bytes) of the shared memory of the anchor (fwd and +grad) and target kernels for
    block sizes ``cfg`` (block_sizes' dict) and the accumulation dtype's size (4: fp32, 8: fp64):
    per (BLOCK_M, BLOCK_Z) tile staged (anchor 2, +grad 3, target 1) plus the weight chunk, plus slack."""
    bm, bc, bz = cfg["BLOCK_M"], cfg["BLOCK_C"], cfg["BLOCK_Z"]
    tile, wchunk = bm * bz * acc_bytes, bc * bz * acc_bytes
    return {"anchor": 2 * tile + wchunk + _SMEM_SLACK, "anchor+grad": 3 * tile + wchunk + _SMEM_SLACK,
            "target": tile + wchunk + _SMEM_SLACK}


def block_sizes(Cc: int, Cz: int, acc_bytes: int = 4, smem_limit: int | None = None) -> dict:
    """The block sizes for context width Cc and target width Cz (heuristics, then overrides).

    acc_bytes: 4 (inputs fp16/bf16/fp32) or 8 (fp64); smem_limit: bytes per block (default: the
    current CUDA device's, see max_shared_memory). Also returns BLOCK_KZ (the KL kernel's channel
    chunk) and Z_CHUNKS = cdiv(Cz, BLOCK_Z).

    Register budget: gathers need a 64-bit pointer per tile element, so every 2-D tile is kept at
    <= 16 elements per thread (num_warps * 32 threads), checked with compile_check.py.
    """
    if acc_bytes not in (4, 8):
        raise ValueError(f"acc_bytes must be 4 (fp32 accumulation) or 8 (fp64), got {acc_bytes!r}")
    cfg = _heuristic(Cc, Cz)
    cfg.update({k: v for k, v in _overrides.items() if k in KEYS})
    limit = max_shared_memory() if smem_limit is None else smem_limit
    if "BLOCK_Z" not in _overrides:
        while cfg["BLOCK_Z"] > 16 and max(shared_memory_estimate(cfg, acc_bytes).values()) > limit:
            cfg["BLOCK_Z"] //= 2
    cfg["BLOCK_KZ"] = min(cfg["BLOCK_Z"], 64)  # KL kernel channel chunk
    cfg["Z_CHUNKS"] = triton.cdiv(Cz, cfg["BLOCK_Z"])
    return cfg


def _heuristic(Cc: int, Cz: int) -> dict:
    bz = max(16, triton.next_power_of_2(Cz))
    bc = max(16, triton.next_power_of_2(Cc))
    bm = max(16, min(64, 2048 // bz))  # (BLOCK_M, next_pow2(Cz)) tiles: prediction, gathered row, d/dprediction
    num_warps = _overrides.get("num_warps", max(4, min(16, bm * bz // 512)))
    budget = num_warps * 32 * 16
    cfg = {
        "BLOCK_M": bm,
        "BLOCK_C": max(16, min(64, bc, budget // bz)),  # the weight chunk (BLOCK_C, next_pow2(Cz))
        "BLOCK_WZ": max(16, min(32, bz)),
        "BLOCK_WC": max(16, min(64, bc, budget // 32)),
        "BLOCK_R": max(16, min(64, budget // 2 // min(bz, 64))),  # KL tiles (BLOCK_R, <= 64)
        "num_warps": num_warps,
        "BLOCK_Z": bz,
    }
    return cfg
