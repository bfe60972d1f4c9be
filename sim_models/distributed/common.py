"""Pieces both distributed trainers share: a logger that writes nothing, moving state to the CPU."""
from __future__ import annotations

import torch

__all__ = ["NullLogger", "to_cpu"]


class NullLogger:
    """What ranks other than 0 log into: the RunLogger interface, no files."""

    def log(self, row: dict):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def to_cpu(obj):
    """The same nested dicts / lists / tuples with every tensor copied to the CPU (for pickling across ranks)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
