"""Atomic checkpoints: write to a temp file in the same folder, fsync, then os.replace.

A reader therefore sees either the previous checkpoint or the new one, never half a file.
Loading uses ``torch.load(weights_only=True)``: a checkpoint holds tensors and plain containers
only (state dicts, generator states as uint8 tensors, numbers, strings), never pickled objects.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(state: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated / foreign file
        raise RuntimeError(f"cannot load checkpoint {path}: {e}") from e
