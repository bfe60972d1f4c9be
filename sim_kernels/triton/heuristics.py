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
    num_warps    warps per program (all kernels)
The target-channel block of the anchor and target kernels is always next_pow2(Cz) (>= 16):
every anchor needs its whole prediction W_k c to score a target row.
"""
from __future__ import annotations

import contextlib

import triton

__all__ = ["block_sizes", "set_block_sizes", "override_block_sizes", "KEYS"]

KEYS = ("BLOCK_M", "BLOCK_C", "BLOCK_WZ", "BLOCK_WC", "BLOCK_R", "num_warps")
_overrides: dict = {}


def _check(kw):
    for key, v in kw.items():
        if key not in KEYS:
            raise ValueError(f"unknown Triton block-size key {key!r}; expected one of {KEYS}")
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


def block_sizes(Cc: int, Cz: int) -> dict:
    """The block sizes for context width Cc and target width Cz (heuristics, then overrides).

    Register budget: gathers need a 64-bit pointer per tile element, so every 2-D tile is kept at
    <= 16 elements per thread (num_warps * 32 threads), checked with compile_check.py.
    """
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
    }
    cfg.update(_overrides)
    cfg["BLOCK_Z"] = bz
    cfg["BLOCK_KZ"] = min(bz, 64)  # KL kernel channel chunk
    return cfg
