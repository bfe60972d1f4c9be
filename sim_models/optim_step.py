"""The optimiser step every trainer takes: zero the unit's gradients, back-propagate, step.

Gradients are isolated between training units (each module's input is detached), so the sum of the
losses of several units reaches each unit's parameters with that unit's loss only.
"""
from __future__ import annotations

__all__ = ["optimizer_step"]


def optimizer_step(optimizers, results) -> None:
    """Zero the gradients of ``optimizers`` (set to None), back-propagate the sum of ``results``' losses
    (StageResults with a scalar ``loss``; nothing to back-propagate when empty) and step every optimiser."""
    for o in optimizers:
        o.zero_grad(set_to_none=True)
    if results:
        sum(r.loss for r in results).backward()
    for o in optimizers:
        o.step()
