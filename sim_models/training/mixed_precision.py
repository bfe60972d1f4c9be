"""Mixed-precision training: ``train.autocast``.

``train.autocast`` is None (default: fp32 throughout), "bfloat16" or "float16". When set, each training
step's forward and losses, and validation's, run under ``torch.autocast(device_type=<the model's device
type>, dtype=...)``: convolutions and the GRU run in the lower precision, while the Smooth-InfoNCE loss
keeps its fp32 weight and accumulates in fp32 (sim_kernels/_autocast.py: a bf16 activation with the fp32
W is lifted once to fp32). The backward and the optimiser steps run outside autocast, on the fp32
parameters and fp32 optimiser state (standard AMP practice: autocast casts per op, the parameters and
their gradients stay fp32).

* "bfloat16" (CPU or CUDA): bf16 has fp32's exponent range, so gradients do not underflow and no loss
  scaling is needed (PyTorch's AMP recipe: GradScaler is for float16 only).
* "float16" (CUDA only): fp16's narrow range needs loss scaling: a ``torch.amp.GradScaler("cuda")``
  scales the summed losses before the backward, ``scaler.step`` skips an optimiser whose gradients hold
  inf/NaN, and ``scaler.update()`` adapts the scale once per step (one scaler for every module's
  optimiser). Its state goes into the checkpoint (key "grad_scaler", only for float16 runs), so resume
  stays exact. On the CPU float16 is refused: CPU fp16 matmuls/convs are slow without AMX-FP16 and
  would need a scaler too, while bfloat16 is the CPU's mixed precision.

Checkpoints are otherwise unchanged (parameters and optimiser state are fp32 either way): a run can
resume with or without autocast. Evaluation, probes and analyses do not read this option (fp32).
The random draws are those of an fp32 run: the reparameterisation noise is drawn in fp32 and cast to the
activations' dtype (modules._normal), so the generator stream (negatives, crops) is the same as well.
"""
from __future__ import annotations

import contextlib

import torch

from sim_models.config import AUTOCAST_DTYPES

__all__ = ["MixedPrecision", "autocast_dtype", "AUTOCAST_DTYPES"]

_DTYPES = {name: getattr(torch, name) for name in AUTOCAST_DTYPES}  # "bfloat16" -> torch.bfloat16, ...


def autocast_dtype(name: str | None) -> torch.dtype | None:
    """The torch dtype of a ``train.autocast`` value (None for None); ValueError naming the field otherwise."""
    if name is None:
        return None
    if name not in _DTYPES:
        raise ValueError(f"train.autocast must be None (no autocast) or one of {AUTOCAST_DTYPES}, got {name!r}")
    return _DTYPES[name]


class MixedPrecision:
    """MixedPrecision(name, device): ``train.autocast`` on ``device`` (a torch.device or its name).

    autocast()  the context of a forward: torch.autocast(device.type, dtype), or a no-op for None;
    scaler      a torch.amp.GradScaler for "float16" (CUDA), else None (optim_step.optimizer_step takes it);
    state_dict() / load_state_dict(state)   the scaler's state ({} without one).

    Refuses (ValueError naming train.autocast) "float16" on a device other than CUDA, and any autocast on a
    device type torch.autocast does not support."""

    def __init__(self, name: str | None, device):
        self.name, self.device = name, torch.device(device)
        self.dtype = autocast_dtype(name)
        self.scaler = None
        if self.dtype is None:
            return
        if self.dtype == torch.float16 and self.device.type != "cuda":
            raise ValueError(f"train.autocast='float16' needs a CUDA device (train.device), this run is on "
                             f"{self.device.type!r}: use train.autocast=bfloat16 on the CPU (no loss scaling needed)")
        if not torch.amp.is_autocast_available(self.device.type):
            raise ValueError(f"train.autocast={name!r}: torch.autocast does not support device type {self.device.type!r}")
        if self.dtype == torch.float16:
            self.scaler = torch.amp.GradScaler(self.device.type)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self):
        """The context a step's forward and losses (and validation's) run in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def state_dict(self) -> dict:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

    def __repr__(self):
        return f"MixedPrecision({self.name!r}, device={str(self.device)!r})"
