"""The optimiser step every trainer takes: zero the unit's gradients, back-propagate, step.

Gradients are isolated between training units (each module's input is detached), so the sum of the
losses of several units reaches each unit's parameters with that unit's loss only.

With a ``torch.amp.GradScaler`` (``train.autocast="float16"``, sim_models/training/mixed_precision.py) the summed
loss is scaled before the backward, each optimiser steps through the scaler (skipped when its gradients
hold inf/NaN) and the scale is updated once. The backward always runs outside autocast (the caller's
forward ran inside it).
"""
from __future__ import annotations

__all__ = ["optimizer_step"]


def optimizer_step(optimizers, results, scaler=None) -> None:
    """Zero the gradients of ``optimizers`` (set to None), back-propagate the sum of ``results``' losses
    (StageResults with a scalar ``loss``; nothing to back-propagate when empty) and step every optimiser.
    scaler: None, or a torch.amp.GradScaler (float16 autocast) that scales the loss and steps the optimisers."""
    for o in optimizers:
        o.zero_grad(set_to_none=True)
    if scaler is None:
        if results:
            sum(r.loss for r in results).backward()
        for o in optimizers:
            o.step()
        return
    if not results:
        return
    scaler.scale(sum(r.loss for r in results)).backward()
    for o in optimizers:
        scaler.step(o)
    scaler.update()
