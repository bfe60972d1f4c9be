"""The timed things: the four loss providers and the GEMM floor, in two modes.

Providers (all call the public sim_kernels.smooth_infonce; there is no second reference here):
    eager     backend="reference", plain PyTorch eager
    compiled  torch.compile(dynamic=False) around smooth_infonce(..., backend="reference")
    native    backend="native": the fused C++ kernel on CPU tensors, the fused CUDA kernel on CUDA
              tensors (skipped when the kernel for the device is not built)
    triton    backend="triton": the Triton kernels (CUDA tensors only; skipped on the CPU)
Modes:
    fwd       the loss under torch.no_grad()
    fwd+bwd   loss.backward() into fresh .grad buffers (the grads are cleared before each round)
"""
from __future__ import annotations

from typing import Callable

import torch

from ._shapes import BETA, FloorOperands, LossInputs

__all__ = ["PROVIDERS", "MODES", "FLOOR", "LABELS", "unavailable_reason", "make_step", "make_floor_step"]

PROVIDERS = ("eager", "compiled", "native", "triton")
MODES = ("fwd", "fwd+bwd")
FLOOR = "gemm_floor"
LABELS = {"eager": "reference (eager)", "compiled": "reference (torch.compile)", "native": "native",
          "triton": "Triton", FLOOR: "GEMM floor"}


def unavailable_reason(provider: str, device: str = "cpu") -> str | None:
    """None when ``provider`` can run on ``device`` ("cpu" or "cuda") here, else a one-line reason for pytest.skip."""
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {PROVIDERS}, got {provider!r}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        return "--sim-device=cuda but torch.cuda.is_available() is False (no GPU or a CPU-only torch)"
    if provider == "native":
        from sim_kernels import available_backends, registry

        if "native" not in available_backends(device):
            why = (registry.get("native").unavailable_reason()
                   or f"sim_kernels._C loaded but registers no {device.upper()} kernel for the sim_kernels ops")
            return (f"native provider skipped: no native {device} kernel: {why}. Build it with "
                    "`pip install --no-build-isolation -e .` (make build; FORCE_CUDA=1 for the CUDA kernel)")
    if provider == "triton":
        if device != "cuda":
            return "triton provider skipped: the Triton kernels need CUDA tensors (--sim-device=cuda)"
        try:
            from sim_kernels.triton.ops import _interpreted
        except ImportError as e:
            return f"triton provider skipped: sim_kernels.triton does not import ({e})"
        if _interpreted():
            return "triton provider skipped: triton runs in its interpreter (TRITON_INTERPRET=1 is set)"
    return None


def _reference_loss(context, targets, weight, neg_idx, mu, logvar):
    from sim_kernels import smooth_infonce

    return smooth_infonce(context, targets, weight, neg_idx, mu, logvar, beta=BETA, backend="reference")


def _loss_fn(provider: str) -> Callable:
    from sim_kernels import smooth_infonce

    if provider == "eager":
        return _reference_loss
    if provider in ("native", "triton"):
        return lambda c, z, w, idx, mu, lv: smooth_infonce(c, z, w, idx, mu, lv, beta=BETA, backend=provider)
    if provider == "compiled":
        # A fresh cache per (shape, mode): one code object compiled for many static shapes would
        # otherwise hit dynamo's recompile limit and silently fall back to eager.
        torch._dynamo.reset()
        return torch.compile(_reference_loss, dynamic=False)
    raise ValueError(f"provider must be one of {PROVIDERS}, got {provider!r}")


def make_step(provider: str, mode: str, x: LossInputs) -> Callable[[], torch.Tensor]:
    """A no-argument callable running one ``mode`` step of ``provider`` on ``x``; returns the loss.

    For "fwd+bwd" the inputs must require grad and the caller clears the grads between calls
    (``x.clear_grads``, the pedantic setup), so every round writes fresh .grad buffers.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    fn = _loss_fn(provider)
    args = (x.context, x.targets, x.weight, x.neg_idx, x.mu, x.logvar)
    if mode == "fwd":
        def step():
            with torch.no_grad():
                return fn(*args)
    else:
        if not x.context.requires_grad:
            raise ValueError("make_step: mode 'fwd+bwd' needs inputs built with requires_grad=True")

        def step():
            loss = fn(*args)
            loss.backward()
            return loss.detach()
    return step


def make_floor_step(mode: str, ops: FloorOperands) -> Callable[[], None]:
    """The GEMM floor of ``mode``: the forward projection ("fwd") or all three GEMMs ("fwd+bwd")."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return ops.forward if mode == "fwd" else ops.forward_backward
