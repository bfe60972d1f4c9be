"""torch.export of a model holding the loss, strict and non-strict, with a dynamic length; torch.jit.trace
refused by name. Every backend the machine runs (the ``backend`` fixture).

Non-strict export (torch's default) hands the Python checks symbolic sizes (torch.SymInt): a check that
asks for ``isinstance(T, int)`` refused them with an error about an argument the user never passed.
The model passes its negatives (neg_idx): the samplers draw with torch.randint / randperm over the
length, which torch.export cannot keep dynamic.
"""
from __future__ import annotations

import pytest
import torch

from sim_kernels import SmoothInfoNCELoss

B, C, K, N = 2, 3, 2, 4
LENGTHS = (9, 13)  # the example's length and another one


class Model(torch.nn.Module):
    """An encoder (a linear layer) and the loss, as a user's model holds it."""

    def __init__(self, backend):
        super().__init__()
        self.encoder = torch.nn.Linear(C, C)
        self.loss = SmoothInfoNCELoss(C, C, prediction_steps=K, negative_samples=N, beta=0.5, backend=backend)

    def forward(self, x, logvar, neg_idx):
        mu = self.encoder(x)
        return self.loss(mu, mu, mu, logvar, neg_idx=neg_idx)


def _args(T, device, seed=0):
    g = torch.Generator().manual_seed(seed + T)
    x = torch.randn(B, T, C, generator=g)
    logvar = 0.1 * torch.randn(B, T, C, generator=g)
    neg_idx = torch.randint(0, B * T, (K, B, T, N), generator=g)
    return tuple(a.to(device) for a in (x, logvar, neg_idx))


def _dynamic_length():
    T = torch.export.Dim("T", min=K + 2, max=256)
    return {"x": {1: T}, "logvar": {1: T}, "neg_idx": {2: T}}


@pytest.mark.parametrize("strict", [False, True], ids=["non-strict", "strict"])
def test_export_with_a_dynamic_length_matches_eager_at_two_lengths(backend, strict):
    model = Model(str(backend)).to(backend.device)
    program = torch.export.export(model, _args(LENGTHS[0], backend.device), dynamic_shapes=_dynamic_length(),
                                  strict=strict)
    exported = program.module()
    for T in LENGTHS:
        args = _args(T, backend.device, seed=1)
        torch.testing.assert_close(exported(*args), model(*args))


def test_jit_trace_is_refused_naming_the_alternatives(backend):
    model = Model(str(backend)).to(backend.device)
    with pytest.raises(RuntimeError, match=r"torch\.jit\.trace.*torch\.export\.export"):
        torch.jit.trace(model, _args(LENGTHS[0], backend.device), check_trace=False)
