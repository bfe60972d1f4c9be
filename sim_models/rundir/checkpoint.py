"""Atomic checkpoints: write to a temp file in the same folder, fsync, then os.replace.

A reader therefore sees either the previous checkpoint or the new one, never half a file; a process
killed mid-write (even by SIGKILL) leaves at most a stray ``PATH.<random>.tmp`` beside it, which
``remove_stale_temp_files`` deletes (the trainer calls it when a run starts or resumes).
Loading uses ``torch.load(weights_only=True)``: a checkpoint holds tensors and plain containers
only (state dicts, generator states as uint8 tensors, numbers, strings), never pickled objects.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

import torch

from sim_models.util.atomic_write import atomic_write
from sim_models.util.fault_injection import pause_point

__all__ = ["CHECKPOINT_NAME", "save_checkpoint", "load_checkpoint", "remove_stale_temp_files", "to_cpu"]

CHECKPOINT_NAME = "checkpoint.pt"  # RUN_DIR/checkpoint.pt


def to_cpu(obj):
    """The same nested dicts / lists / tuples with every tensor on the CPU (device-independent checkpoints,
    pickling across ranks); CPU tensors are returned detached, not copied."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def save_checkpoint(state: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # pause_point: a test hook (util/fault_injection.py): a SIGKILL between fsync and rename must not harm the run
    return atomic_write(path, lambda f: torch.save(state, f), binary=True, permissions=None,
                        before_replace=lambda: pause_point("checkpoint"))


def remove_stale_temp_files(path) -> list:
    """Delete the temp files that killed ``save_checkpoint(..., path)`` calls left; returns their paths.

    Call it only when no other process is writing this checkpoint (at the start of a run)."""
    path = Path(path)
    pattern = os.path.join(glob.escape(str(path.parent)), glob.escape(path.name) + ".*.tmp")
    stale = sorted(Path(p) for p in glob.glob(pattern))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated / foreign file
        raise RuntimeError(f"cannot load checkpoint {path}: {e}") from e
