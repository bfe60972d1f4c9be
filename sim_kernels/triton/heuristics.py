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
    """The block sizes for context width Cc and target width Cz (heuristics, then overrides)."""
    bz = max(16, triton.next_power_of_2(Cz))
    # The anchor kernel holds three (BLOCK_M, next_pow2(Cz)) fp32 tiles (prediction, gathered row,
    # d/dprediction): keep each around 4K elements so they stay in registers.
    bm = max(16, min(64, 4096 // bz))
    cfg = {
        "BLOCK_M": bm,
        "BLOCK_C": max(16, min(64, triton.next_power_of_2(Cc))),
        "BLOCK_WZ": max(16, min(64, bz)),
        "BLOCK_WC": max(16, min(128, triton.next_power_of_2(Cc))),
        "BLOCK_R": max(16, min(128, 8192 // bz)),
        "num_warps": 4 if bz <= 128 else 8,
    }
    cfg.update(_overrides)
    cfg["BLOCK_Z"] = bz
    return cfg
