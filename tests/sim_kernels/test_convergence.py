"""Liger-style convergence check: a few optimiser steps of a small encoder trained with
SmoothInfoNCELoss give the same losses and parameters with every backend."""
import pytest
import torch
from torch import nn

from sim_kernels import SmoothInfoNCELoss


def _train(backend, steps=6):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Conv1d(1, 12, 8, stride=4, padding=2), nn.ReLU(), nn.Conv1d(12, 2 * 12, 1))
    loss_fn = SmoothInfoNCELoss(12, prediction_steps=4, negative_samples=5, beta=0.05, backend=backend)
    params = list(enc.parameters()) + list(loss_fn.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    audio = torch.randn(3, 1, 160, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    losses = []
    for _ in range(steps):
        h = enc(audio).transpose(1, 2)  # (B, T, 2C)
        mu, logvar = h.chunk(2, dim=-1)
        eps = torch.randn(mu.shape, generator=gen)
        z = mu + (0.5 * logvar).exp() * eps
        loss = loss_fn(z, z, mu, logvar, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return torch.stack(losses), [p.detach().clone() for p in params]


@pytest.mark.parametrize("backend", ["native", "triton"])
def test_training_matches_reference(backend):
    ref_losses, ref_params = _train("reference")
    losses, params = _train(backend)
    assert ref_losses[-1] < ref_losses[0]
    torch.testing.assert_close(losses, ref_losses, rtol=1e-4, atol=1e-5)
    for a, b in zip(params, ref_params):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
