"""The reference backend: the plain-PyTorch oracle of sim_kernels/reference.py, autograd for gradients.
Every device and dtype; the lowest priority, so "auto" lands here (with one warning) when nothing
fused supports the tensors."""
from __future__ import annotations

from ..reference import per_anchor_terms
from ..registry import Backend, register

__all__ = ["REFERENCE"]


def _fwd(context, targets, weight, neg_idx, mu, logvar, spec):
    return per_anchor_terms(context, targets, weight, neg_idx, mu, logvar, spec.t_begin, spec.t_end, spec.common,
                            first_step=spec.first_step)


def _value_and_grad(context, targets, weight, neg_idx, mu, logvar, loss_weight, kl_weight, spec):
    loss, correct, kl = _fwd(context, targets, weight, neg_idx, mu, logvar, spec)
    value = (loss_weight * loss).sum()
    if kl is not None:
        value = value + (kl_weight * kl).sum()
    return value, loss, correct, kl


REFERENCE = register(Backend("reference", 0, _fwd, _value_and_grad, kernel_skips_index_check=True,
                             fallback=True, plain_autograd=True))
